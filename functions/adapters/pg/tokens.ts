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
