/**
 * Bearer-token authentication: `Authorization: Bearer stk_<id>_<secret>` → the tokens row by id →
 * constant-time hash comparison → a Principal. Missing, malformed, unknown, revoked and expired
 * tokens are all 401 with a message saying which, but never echoing the secret.
 *
 * Verified tokens are cached in-process for a few seconds (a resolve must not pay a second
 * database round-trip); `forgetToken(id)` drops an entry at revocation, so in one process a
 * revocation is immediate and across Lambdas it takes effect within TOKEN_CACHE_TTL_MS. The cache
 * never holds the secret: it is keyed by SHA-256 of the whole presented token, and a hit is
 * confirmed by comparing that digest with the one stored in the entry in constant time (a heap
 * dump shows digests only, and a lookup leaks no timing about how much of a secret matched).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Pool } from '../../adapters/pg/pool.ts';
import { readQuery } from '../../adapters/pg/pool.ts';
import type { Scope } from '../../core/api-types.ts';
import type { Principal } from '../../core/auth.ts';
import { UnauthorizedError } from '../../core/errors.ts';
import { normalizePath } from '../../core/paths.ts';
import { parseToken, secretMatches } from '../../core/tokens.ts';

export type { Principal } from '../../core/auth.ts';
export { assertNavigable, assertVisible, hasScope, isVisible, requireScope } from '../../core/auth.ts';

/** Revocation reaches every warm Lambda within this window. */
export const TOKEN_CACHE_TTL_MS = 5000;
/** last_used_at is bookkeeping: one write per token per minute is plenty. */
const LAST_USED_INTERVAL_MS = 60_000;

interface TokenRow {
  id: string;
  secret_hash: Buffer;
  scopes: Scope[];
  prefixes: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
}

interface CachedToken {
  row: TokenRow;
  /** SHA-256 of the full presented token (the cache key, as bytes). */
  digest: Buffer;
  principal: Principal;
}

/** Keyed by hex SHA-256 of the presented token; 1,000 tokens per warm environment is generous. */
const cache = new LRUCache<string, CachedToken>({ max: 1000, ttl: TOKEN_CACHE_TTL_MS });
const lastUsedWritten = new LRUCache<string, true>({ max: 1000, ttl: LAST_USED_INTERVAL_MS });

export function forgetToken(id: string): void {
  // At most 1,000 entries and revocation is rare: a scan beats maintaining a second index.
  for (const [key, entry] of cache.entries()) if (entry.row.id === id) cache.delete(key);
}

export function bearerToken(headers: Record<string, string | undefined>): string | undefined {
  const value = headers.authorization ?? headers.Authorization;
  if (!value) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return m?.[1];
}

/** Normalizes stored prefixes to directory form (`/`, `/team-a`). */
export function normalizePrefixes(prefixes: string[]): string[] {
  return prefixes.map((p) => normalizePath(p, { directory: true }));
}

export async function authenticate(
  pool: Pool,
  headers: Record<string, string | undefined>,
  now = new Date(),
): Promise<Principal> {
  const raw = bearerToken(headers);
  if (!raw) {
    throw new UnauthorizedError(
      'missing bearer token: send "Authorization: Bearer <token>" (create one with `strata token create`)',
    );
  }
  const parsed = parseToken(raw);
  if (!parsed) throw new UnauthorizedError('malformed token: expected the stk_… string printed at creation');
  const digest = createHash('sha256').update(raw).digest();
  const key = digest.toString('hex');
  let entry = cache.get(key);
  if (!entry || !timingSafeEqual(entry.digest, digest)) {
    const { rows } = await readQuery<TokenRow>(
      pool,
      'SELECT id, secret_hash, scopes, prefixes, expires_at, revoked_at FROM tokens WHERE id = $1',
      [parsed.id],
    );
    const row = rows[0];
    if (!row || !secretMatches(parsed.secret, row.secret_hash)) {
      throw new UnauthorizedError('unknown token: it was never issued here or its secret is wrong');
    }
    entry = {
      row,
      digest,
      // Built once per verification, not per request: prefix normalization is per-request CPU otherwise.
      principal: Object.freeze({
        tokenId: row.id,
        scopes: row.scopes,
        prefixes: normalizePrefixes(row.prefixes),
        ...(row.expires_at ? { expiresAt: row.expires_at } : {}),
      }) as Principal,
    };
    cache.set(key, entry);
  }
  const { row } = entry;
  if (row.revoked_at) throw new UnauthorizedError(`token ${row.id} was revoked; ask an admin for a new one`);
  if (row.expires_at && row.expires_at.getTime() <= now.getTime()) {
    throw new UnauthorizedError(
      `token ${row.id} expired at ${row.expires_at.toISOString()}; create a new one`,
    );
  }
  if (!lastUsedWritten.has(row.id)) {
    lastUsedWritten.set(row.id, true);
    // Fire-and-forget: bookkeeping must never fail or slow a request.
    pool.query('UPDATE tokens SET last_used_at = now() WHERE id = $1', [row.id]).catch(() => {});
  }
  return entry.principal;
}
