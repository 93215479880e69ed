import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  alignUp,
  checkHeader,
  decodeBlock,
  encodeHeader,
  FILE_ALIGN,
  FORMAT_VERSION,
  headerLength,
  parseHeader,
  verifySlice,
} from '../../../mount-client/block-cache/format.ts';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';

const id: BlockId = {
  object: { bucket: 'b', key: 'k/ü.bin', size: 1000, etag: '"e"' },
  index: 2,
  blockSize: 400,
};
/** A block file as the disk cache writes it: padded header, payload, zero padding. */
const file = (payload: Buffer, forId = id, sub?: number) =>
  Buffer.concat([
    encodeHeader(forId, payload, sub),
    payload,
    Buffer.alloc(alignUp(payload.length) - payload.length),
  ]);

describe('block file format', () => {
  it('round-trips and predicts its header length (one pread)', () => {
    const payload = Buffer.alloc(200, 9);
    const f = file(payload);
    // Header and payload each padded to 4 KiB, so the file can be written with O_DIRECT.
    expect(headerLength(id) % FILE_ALIGN).toBe(0);
    expect(f.length).toBe(headerLength(id) + FILE_ALIGN);
    const r = decodeBlock(f, id, 200);
    expect(r.ok && r.payload.equals(payload)).toBe(true);
  });

  it('encodes the header into a caller buffer (an aligned arena) with zeroed padding', () => {
    const payload = Buffer.alloc(200, 4);
    const into = Buffer.alloc(3 * FILE_ALIGN, 0xff);
    const h = encodeHeader(id, payload, undefined, into);
    expect(h.buffer).toBe(into.buffer);
    expect(h.length).toBe(headerLength(id));
    expect(h.equals(encodeHeader(id, payload))).toBe(true);
    expect(() => encodeHeader(id, payload, undefined, Buffer.alloc(100))).toThrow(RangeError);
  });

  it('rejects non-zero padding after the header or the payload (no byte of a file goes unchecked)', () => {
    const good = file(Buffer.alloc(200, 5));
    const h = parseHeader(good);
    if ('error' in h) throw new Error(h.error);
    const inHeaderPad = Buffer.from(good);
    inHeaderPad[h.headerLength - 1] = 1;
    expect(decodeBlock(inHeaderPad, id, 200)).toEqual({ ok: false, reason: 'padding' });
    const inTailPad = Buffer.from(good);
    inTailPad[good.length - 1] = 1;
    expect(decodeBlock(inTailPad, id, 200)).toEqual({ ok: false, reason: 'padding' });
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

  it('checksums each sub-block: a slice verifies on its own, a flipped bit fails only its sub-block', () => {
    const payload = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    const f = file(payload, id, 64);
    expect(f.length).toBe(headerLength(id, 64) + FILE_ALIGN);
    const h = checkHeader(f.subarray(0, headerLength(id, 64)), id, 200);
    if ('error' in h) throw new Error(h.error);
    expect(h.subBlockSize).toBe(64);
    expect(h.subCrcs.length).toBe(4); // 64 + 64 + 64 + 8
    const body = f.subarray(h.headerLength, h.headerLength + 200);
    expect(verifySlice(h, 1, body.subarray(64, 192))).toBe(true);
    expect(verifySlice(h, 3, body.subarray(192))).toBe(true);
    const bad = Buffer.from(body);
    bad[70] = (bad[70] as number) ^ 1;
    expect(verifySlice(h, 0, bad.subarray(0, 64))).toBe(true);
    expect(verifySlice(h, 1, bad.subarray(64, 128))).toBe(false);
    expect(
      decodeBlock(
        Buffer.concat([f.subarray(0, h.headerLength), bad, f.subarray(h.headerLength + 200)]),
        id,
        200,
      ),
    ).toEqual({
      ok: false,
      reason: 'payload-checksum',
    });
    // A slice that does not cover whole sub-blocks is never accepted.
    expect(verifySlice(h, 1, body.subarray(64, 100))).toBe(false);
  });

  it('rejects a block written in another format version (old cache files are misses)', () => {
    const f = file(Buffer.alloc(200, 1));
    f.writeUInt16LE(FORMAT_VERSION - 1, 4);
    expect(decodeBlock(f, id, 200)).toEqual({ ok: false, reason: 'format' });
  });
});
