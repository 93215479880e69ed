/**
 * Token format and hashing. A token is `stk_<id>_<secret>`: the id finds the row, the secret is
 * compared by SHA-256 hash in constant time. Secrets are shown once and never stored or logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ParsedToken {
  id: string;
  secret: string;
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Token ids are 12 alphanumerics: they are typed on command lines (`strata token revoke <id>`),
 * where a base64url id starting with `-` would be read as an option.
 */
function tokenId(): string {
  let id = '';
  while (id.length < 12) {
    for (const byte of randomBytes(16)) {
      // 248 = 4 × 62: reject the top bytes so every character is equally likely.
      if (byte < 248 && id.length < 12) id += ID_ALPHABET[byte % 62];
    }
  }
  return id;
}

export function generateToken(): { id: string; secret: string; token: string } {
  const id = tokenId();
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `stk_${id}_${secret}` };
}

export function parseToken(token: string): ParsedToken | undefined {
  const m = /^stk_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}
