import { describe, expect, it } from 'vitest';
import { generateToken, hashSecret, parseToken, secretMatches } from '../../../functions/core/tokens.ts';

describe('tokens', () => {
  it('ids are 12 alphanumerics, so a command line never reads one as an option', () => {
    for (let i = 0; i < 2000; i++) {
      const { id, token } = generateToken();
      expect(id).toMatch(/^[A-Za-z0-9]{12}$/);
      expect(parseToken(token)?.id).toBe(id);
    }
  });

  it('still parses ids issued in the older base64url form', () => {
    const parsed = parseToken(`stk_-qL7XWNZAkGI_${'a'.repeat(43)}`);
    expect(parsed).toEqual({ id: '-qL7XWNZAkGI', secret: 'a'.repeat(43) });
  });

  it('rejects malformed tokens and compares secrets by hash', () => {
    expect(parseToken('stk_short_secret')).toBeUndefined();
    expect(parseToken('Bearer stk_x')).toBeUndefined();
    const { secret } = generateToken();
    expect(secretMatches(secret, hashSecret(secret))).toBe(true);
    expect(secretMatches(`${secret}x`, hashSecret(secret))).toBe(false);
  });
});
