/**
 * The one key order reconciliation relies on: S3 lists keys in UTF-8 binary order, PostgreSQL returns
 * them in the same order under `COLLATE "C"` (memcmp of the UTF-8 bytes). JavaScript's `<` compares
 * UTF-16 code units, which disagrees with UTF-8 byte order exactly when one side has a surrogate pair
 * (U+10000 and above, e.g. emoji) and the other a BMP character in U+E000–U+FFFF. A merge-join on a
 * mismatched order silently reports phantom drift, so every comparison goes through here.
 */

/** Negative, zero or positive as `a` sorts before, equal to or after `b` in UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Only code units ≥ U+D800 can disagree: lift surrogates above U+E000–U+FFFF, which turns
    // UTF-16 order into code point order (= UTF-8 byte order).
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The smallest string greater than every string starting with `prefix` (an exclusive upper bound
 * for a prefix range), or undefined for the empty prefix (no bound).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop() as string;
    const cp = last.codePointAt(0) as number;
    if (cp < 0x10ffff) {
      // Skip the surrogate block: it is not a valid scalar value and cannot be encoded as UTF-8.
      const next = cp + 1 === 0xd800 ? 0xe000 : cp + 1;
      return cps.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/**
 * An S3 `StartAfter` value that makes a listing begin at `from` inclusive: `from` without its last
 * character sorts before `from`, and the few keys between the two are filtered by the caller
 * (`compareKeys(key, from) < 0`). S3 has no inclusive start parameter.
 */
export function startAfterFor(from: string): string | undefined {
  if (from === '') return undefined;
  const cps = Array.from(from);
  cps.pop();
  const s = cps.join('');
  return s === '' ? undefined : s;
}
