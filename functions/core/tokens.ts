/**
 * Token format and hashing. A token is `stk_<id>_<secret>`: the id finds the row, the secret is
 * compared by SHA-256 hash in constant time. Secrets are shown once and never stored or logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ParsedToken {
  id: string;
  secret: string;
}

export function generateToken(): { id: string; secret: string; token: string } {
  const id = randomBytes(9).toString('base64url');
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
