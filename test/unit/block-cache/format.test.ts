import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBlock, encodeHeader, headerLength } from '../../../mount-client/block-cache/format.ts';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';

const id: BlockId = {
  object: { bucket: 'b', key: 'k/ü.bin', size: 1000, etag: '"e"' },
  index: 2,
  blockSize: 400,
};
const file = (payload: Buffer, forId = id) => Buffer.concat([encodeHeader(forId, payload), payload]);

describe('block file format', () => {
  it('round-trips and predicts its header length (one pread)', () => {
    const payload = Buffer.alloc(200, 9);
    const f = file(payload);
    expect(f.length).toBe(headerLength(id) + 200);
    const r = decodeBlock(f, id, 200);
    expect(r.ok && r.payload.equals(payload)).toBe(true);
  });

  it('rejects any single flipped bit, a truncation, extra bytes and a different block', () => {
    const payload = Buffer.alloc(200, 3);
    const good = file(payload);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: good.length * 8 - 1 }), (bit) => {
        const f = Buffer.from(good);
        f[bit >> 3] = (f[bit >> 3] as number) ^ (1 << (bit & 7));
        expect(decodeBlock(f, id, 200).ok).toBe(false);
      }),
    );
    expect(decodeBlock(good.subarray(0, good.length - 1), id, 200)).toEqual({ ok: false, reason: 'length' });
    expect(decodeBlock(Buffer.concat([good, Buffer.alloc(1)]), id, 200)).toEqual({
      ok: false,
      reason: 'length',
    });
    expect(decodeBlock(good, { ...id, index: 1 }, 200)).toEqual({ ok: false, reason: 'mismatch' });
    expect(decodeBlock(good, { ...id, object: { ...id.object, etag: '"f"' } }, 200)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(decodeBlock(Buffer.alloc(10), id, 200)).toEqual({ ok: false, reason: 'short' });
  });
});
