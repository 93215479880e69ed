/**
 * Upload sessions as POST /v1/uploads opens them, for tests that drive the store or the indexer
 * directly (no S3 behind them).
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from '../../../functions/adapters/pg/pool.ts';
import { type NewSession, openSession } from '../../../functions/adapters/pg/uploads-store.ts';
import { keyForPath } from '../../../functions/core/paths.ts';

/** A single-PUT session of `path` (under data prefix `prefix`) expiring in a minute; `extra` overrides. */
export function newSession(
  path: string,
  size: number,
  extra: Partial<NewSession> = {},
  prefix = 'data/',
): NewSession {
  return {
    id: randomUUID(),
    path,
    key: keyForPath(prefix, path),
    size,
    sha256: null,
    contentType: 'application/octet-stream',
    date: null,
    metadata: null,
    mode: 'single',
    s3UploadId: null,
    partSize: null,
    partCount: null,
    tokenId: 'tok',
    idempotencyKey: null,
    bodyHash: null,
    expiresAt: new Date(Date.now() + 60_000),
    ...extra,
  };
}

/** Opens a pending one-part multipart session (reserving quota) and returns its id. */
export async function openMultipart(
  pool: Pool,
  path: string,
  size: number,
  prefix = 'data/',
): Promise<string> {
  const s = newSession(
    path,
    size,
    { mode: 'multipart', partSize: size, partCount: 1, expiresAt: new Date(Date.now() + 600_000) },
    prefix,
  );
  await openSession(pool, { ...s, s3UploadId: `mpu-${s.id}` });
  return s.id;
}
