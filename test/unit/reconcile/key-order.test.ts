import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, prefixEnd, startAfterFor } from '../../../functions/core/reconcile/key-order.ts';

const utf8Order = (a: string, b: string) =>
  Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
// Strings of whole code points (no lone surrogates: S3 keys are valid UTF-8).
const key = fc.string({ unit: 'grapheme', maxLength: 12 });

describe('compareKeys', () => {
  it('agrees with UTF-8 byte order, unlike JavaScript string order', () => {
    // Prepare: U+FF5E (fullwidth tilde) vs U+1F600 (emoji, a surrogate pair in UTF-16)
    const bmp = 'a\uff5e';
    const astral = 'a😀';
    // Assess
    expect(bmp < astral).toBe(false); // UTF-16 code units say the emoji sorts first
    expect(Math.sign(compareKeys(bmp, astral))).toBe(utf8Order(bmp, astral));
    expect(compareKeys(bmp, astral)).toBeLessThan(0);
  });

  it('matches Buffer.compare on arbitrary keys', () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(utf8Order(a, b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('prefixEnd', () => {
  it('bounds exactly the strings that start with the prefix', () => {
    fc.assert(
      fc.property(
        key.filter((p) => p.length > 0),
        key,
        (p, s) => {
          const end = prefixEnd(p) as string;
          const k = p + s;
          expect(compareKeys(k, end)).toBeLessThan(0);
          expect(compareKeys(k, p)).toBeGreaterThanOrEqual(0);
        },
      ),
    );
    expect(prefixEnd('data/')).toBe('data0');
    expect(prefixEnd('')).toBeUndefined();
  });
});

describe('startAfterFor', () => {
  it('sorts before the inclusive start so the start key itself is listed', () => {
    expect(startAfterFor('data/b/')).toBe('data/b');
    expect(compareKeys(startAfterFor('data/b/') as string, 'data/b/')).toBeLessThan(0);
    expect(startAfterFor('x')).toBeUndefined();
    expect(startAfterFor('a😀')).toBe('a');
  });
});
