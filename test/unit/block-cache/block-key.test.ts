import { describe, expect, it } from 'vitest';
import { blockKey, normalizeEtag, versionTag } from '../../../mount-client/block-cache/block-key.ts';
import type { BlockId, ObjectVersion } from '../../../mount-client/block-cache/types.ts';

const v: ObjectVersion = { bucket: 'b', key: 'a/b c✓.bin', size: 100, etag: '"abc"' };
const id = (over: Partial<BlockId> = {}, obj: Partial<ObjectVersion> = {}): BlockId => ({
  object: { ...v, ...obj },
  index: 0,
  blockSize: 8,
  ...over,
});

describe('blockKey', () => {
  it('is a stable 64-hex name', () => {
    expect(blockKey(id())).toMatch(/^[0-9a-f]{64}$/);
    expect(blockKey(id())).toBe(blockKey(id()));
  });

  it('differs when anything that identifies the bytes differs', () => {
    const keys = new Set([
      blockKey(id()),
      blockKey(id({ index: 1 })),
      blockKey(id({ blockSize: 16 })),
      blockKey(id({}, { etag: '"abd"' })),
      blockKey(id({}, { versionId: 'v1' })),
      blockKey(id({}, { key: 'a/b c✓.bin2' })),
      blockKey(id({}, { bucket: 'c' })),
    ]);
    expect(keys.size).toBe(7);
  });

  it('treats quoted and bare etags as the same version; versionId wins over the etag', () => {
    expect(blockKey(id({}, { etag: 'abc' }))).toBe(blockKey(id({}, { etag: '"abc"' })));
    expect(normalizeEtag('W/"x"')).toBe('x');
    expect(versionTag({ ...v, versionId: 'v9' })).toBe('v:v9');
    expect(blockKey(id({}, { versionId: 'v9', etag: '"1"' }))).toBe(
      blockKey(id({}, { versionId: 'v9', etag: '"2"' })),
    );
  });

  it('cannot be confused by separators inside fields', () => {
    expect(blockKey(id({}, { bucket: 'a', key: 'b\0c' }))).not.toBe(
      blockKey(id({}, { bucket: 'a\0b', key: 'c' })),
    );
  });
});
