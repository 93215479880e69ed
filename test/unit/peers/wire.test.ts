import { describe, expect, it } from 'vitest';
import { blockKey } from '../../../mount-client/block-cache/block-key.ts';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';
import { decodeBlockRequest, encodeBlockRequest } from '../../../mount-client/peers/wire.ts';

const id: BlockId = {
  object: { bucket: 'data', key: 'raw/2026/ünï cødé + 100%#?.bin', size: 10_000_000, etag: '"abc-2"' },
  index: 2,
  blockSize: 4 * 1024 * 1024,
};

describe('peer wire format', () => {
  it('round-trips a block id, including awkward keys and a versionId', () => {
    for (const b of [id, { ...id, object: { ...id.object, versionId: 'v/1+2' } }]) {
      const decoded = decodeBlockRequest(encodeBlockRequest(b));
      expect(decoded).toEqual({ ok: true, id: b });
    }
  });

  it('carries a presigned URL for owners that read S3 through URLs', () => {
    const withUrl: BlockId = {
      ...id,
      object: {
        ...id.object,
        url: 'https://s3.example/x?X-Amz-Signature=abc',
        urlExpiresAt: 1_800_000_000_000,
      },
    };
    expect(decodeBlockRequest(encodeBlockRequest(withUrl))).toEqual({ ok: true, id: withUrl });
  });

  it('names the path after the block key', () => {
    expect(encodeBlockRequest(id).startsWith(`/v1/blocks/${blockKey(id)}?`)).toBe(true);
  });

  it('rejects a path key that does not match the query', () => {
    const target = encodeBlockRequest(id).replace(blockKey(id), blockKey({ ...id, index: 1 }));
    expect(decodeBlockRequest(target)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/does not match/),
    });
  });

  it('rejects blocks past the end, oversize blocks and missing fields', () => {
    expect(decodeBlockRequest(encodeBlockRequest({ ...id, index: 3 })).ok).toBe(false);
    expect(decodeBlockRequest(encodeBlockRequest({ ...id, blockSize: 512 * 1024 * 1024, index: 0 })).ok).toBe(
      false,
    );
    const noBucket = encodeBlockRequest(id).replace(/bucket=[^&]*&/, '');
    expect(decodeBlockRequest(noBucket)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/bucket/),
    });
  });
});
