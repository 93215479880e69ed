import { describe, expect, it } from 'vitest';
import { parseBytes, quotaLine } from '../../../../mount-client/cli/commands/quota.ts';

describe('parseBytes', () => {
  it('reads byte counts, binary units (K/M/G/T/P and *iB) and decimal units (*B)', () => {
    expect(parseBytes('1048576')).toBe(1024 * 1024);
    expect(parseBytes('500MiB')).toBe(500 * 1024 ** 2);
    expect(parseBytes('2.5 TiB')).toBe(2.5 * 1024 ** 4);
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('10GB')).toBe(10e9);
    expect(parseBytes('0')).toBe(0);
  });

  it('rejects what is not a size, saying what to write instead', () => {
    for (const bad of ['', '-1', 'ten', '5 XB', '1e9', '9999999PiB']) {
      expect(() => parseBytes(bad), bad).toThrow(/invalid size|too large/);
    }
    expect(() => parseBytes('lots')).toThrow(/e\.g\. 500MiB/);
  });
});

describe('quota list rows', () => {
  it('label the percentage as used (with reservations), not next to "remaining" alone', () => {
    const row = quotaLine({
      prefix: '/ws',
      limitBytes: 1024 ** 3,
      usedBytes: 256 * 1024 ** 2,
      reservedBytes: 256 * 1024 ** 2,
      remainingBytes: 512 * 1024 ** 2,
    } as never);
    expect(row).toBe(
      '/ws  limit 1.0 GiB  used 256.0 MiB  reserved 256.0 MiB  remaining 512.0 MiB (50% used)',
    );
  });
});
