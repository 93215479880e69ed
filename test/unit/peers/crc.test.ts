import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32cCombine, crcFromTable, SubBlockCrc } from '../../../mount-client/peers/crc.ts';

describe('crc32c combine', () => {
  it('crc(A‖B) from crc(A), crc(B) and |B| for any split', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.nat(), (bytes, at) => {
        // Prepare
        const buf = Buffer.from(bytes);
        const cut = buf.length === 0 ? 0 : at % (buf.length + 1);
        const a = buf.subarray(0, cut);
        const b = buf.subarray(cut);
        // Act
        const combined = crc32cCombine(crc32c(a), crc32c(b), b.length);
        // Assess
        expect(combined).toBe(crc32c(buf));
      }),
    );
  });

  it('whole-block crc32c from a sub-block table, with a short tail', () => {
    const sub = 128 * 1024;
    const payload = randomBytes(3 * sub + 1234);
    const table = Uint32Array.from([0, 1, 2, 3], (i) => crc32c(payload.subarray(i * sub, (i + 1) * sub)));
    expect(crcFromTable(table, sub, payload.length)).toBe(crc32c(payload));
  });

  it('streamed sub-block table matches per-sub-block crc32c whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        // Prepare
        const payload = randomBytes(sizes.reduce((s, n) => s + n, 0));
        const sub = 256;
        const s = new SubBlockCrc(sub, payload.length);
        // Act
        let at = 0;
        for (const n of sizes) {
          s.update(payload.subarray(at, at + n));
          at += n;
        }
        const table = s.finish();
        // Assess
        const expected = Array.from({ length: Math.ceil(payload.length / sub) }, (_, i) =>
          crc32c(payload.subarray(i * sub, (i + 1) * sub)),
        );
        expect([...table]).toEqual(expected);
        expect(crcFromTable(table, sub, payload.length)).toBe(crc32c(payload));
      }),
    );
  });
});
