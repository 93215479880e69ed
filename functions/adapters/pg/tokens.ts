import type { Pool } from 'pg';
import type { Scope } from '../../core/api-types.ts';
import { generateToken, hashSecret } from '../../core/tokens.ts';

export interface NewToken {
  name: string;
  scopes: Scope[];
  prefixes?: string[];
  expiresAt?: Date;
}

/** Creates a token row and returns the full token string — the only time it exists in clear. */
export async function createToken(db: Pool, spec: NewToken): Promise<{ id: string; token: string }> {
  const { id, secret, token } = generateToken();
  await db.query(
    'INSERT INTO tokens (id, name, secret_hash, scopes, prefixes, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [id, spec.name, hashSecret(secret), spec.scopes, spec.prefixes ?? ['/'], spec.expiresAt ?? null],
  );
  return { id, token };
}

export interface TokenInfo {
  id: string;
  name: string;
  scopes: Scope[];
  prefixes: string[];
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** Every token, newest first, without secrets or hashes. */
export async function listTokens(db: Pick<Pool, 'query'>): Promise<TokenInfo[]> {
  const { rows } = await db.query(
    `SELECT id, name, scopes, prefixes, created_at, expires_at, revoked_at, last_used_at
       FROM tokens ORDER BY created_at DESC, id`,
  );
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    prefixes: r.prefixes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  }));
}

/** Revokes a token (idempotent). Returns false when no such token exists. */
export async function revokeToken(db: Pick<Pool, 'query'>, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1',
    [id],
  );
  return (rowCount ?? 0) > 0;
}
