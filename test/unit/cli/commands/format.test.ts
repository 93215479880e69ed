import { describe, expect, it } from 'vitest';
import { displayName, parseDuration } from '../../../../mount-client/cli/commands/format.ts';

describe('parseDuration (strata token create --expires)', () => {
  it('reads seconds, minutes, hours and days', () => {
    expect(parseDuration('3600')).toBe(3600);
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('12h')).toBe(43_200);
    expect(parseDuration('30d')).toBe(2_592_000);
  });

  it('refuses zero on the command line (the API answered "body.expiresInSeconds: Too small")', () => {
    expect(() => parseDuration('0s')).toThrow(/invalid duration "0s": it must be longer than 0/);
    expect(() => parseDuration('soon')).toThrow(/use e\.g\. 3600s, 15m, 12h or 30d/);
  });
});

describe('displayName (strata ls, strata stat)', () => {
  it('escapes characters that hide or reorder what a terminal shows, and leaves the rest alone', () => {
    expect(displayName('invoice\u202Efdp.exe')).toBe('invoice\\u{202E}fdp.exe');
    expect(displayName('a\u200Bb\u2028c\uFEFF')).toBe('a\\u{200B}b\\u{2028}c\\u{FEFF}');
    expect(displayName('plain näme 名前 \u05E9\u05DC\u05D5\u05DD.txt')).toBe(
      'plain näme 名前 \u05E9\u05DC\u05D5\u05DD.txt',
    );
  });
});
