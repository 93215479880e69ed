/**
 * Upload sessions whose object S3 stored but whose put event the index did not apply (found by the
 * server soak: 47 of 6,564 acknowledged uploads ended `expired`, and 9 completed multipart
 * sessions still held 75 MB of quota reservation at rest). A put superseded within its batch, or
 * gone by the time of the HEAD, never reached settleUploads, so the session stayed open until
 * expiry (15 min) or the unsettled grace (1 h), holding its reservation. Real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setQuota } from '../../../functions/adapters/pg/uploads-store.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { type HeadFn, type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, putEvent, sqsRecord } from '../index/s3-events.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
/** Keys whose HEAD answers 404 (deleted before the indexer got to them). */
const gone = new Set<string>();
const head: HeadFn = async (key) => (gone.has(key) ? undefined : { etag: 'e', contentType: 'text/plain' });

beforeAll(async () => {
  db = await startTestDb();
  const config = parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' });
  deps = { config, pool: db.pool, head, redis: new RedisGuard(undefined) };
  await setQuota(db.pool, PREFIX, '/q', 1_000_000);
}, 60_000);

afterAll(async () => {
  await db?.stop();
});

/** An open session holding `size` bytes of the /q quota, as POST /v1/uploads leaves it. */
async function session(
  id: string,
  path: string,
  size: number,
  opts: { mode?: 'single' | 'multipart'; completedEtag?: string } = {},
): Promise<void> {
  const multipart = opts.mode === 'multipart';
  await db.pool.query(
    `INSERT INTO upload_sessions (id, path, key, size, content_type, mode, s3_upload_id, part_size, part_count,
       state, completed_etag, completed_at, quota_prefixes, reserved_bytes, created_at, expires_at)
     VALUES ($1, $2, $3, $4, 'application/octet-stream', $5, $6, $7, $8, $9, $10, $11, ARRAY['/q'], $4,
       now() - interval '1 minute', now() + interval '1 hour')`,
    [
      id,
      path,
      PREFIX + path.slice(1),
      size,
      multipart ? 'multipart' : 'single',
      multipart ? 'mpu-1' : null,
      multipart ? size : null,
      multipart ? 1 : null,
      opts.completedEtag ? 'completed' : 'pending',
      opts.completedEtag ?? null,
      opts.completedEtag ? new Date() : null,
    ],
  );
  await db.pool.query(`UPDATE upload_quotas SET reserved_bytes = reserved_bytes + $1 WHERE prefix = '/q'`, [
    size,
  ]);
}

async function states(): Promise<Record<string, string>> {
  const { rows } = await db.pool.query<{ id: string; state: string; reserved: string }>(
    `SELECT id, state, reserved_bytes::text AS reserved FROM upload_sessions ORDER BY id`,
  );
  return Object.fromEntries(rows.map((r) => [r.id, `${r.state}/${r.reserved}`]));
}

async function quota(): Promise<{ reserved: string; used: string }> {
  const { rows } = await db.pool.query<{ reserved: string; used: string }>(
    `SELECT reserved_bytes::text AS reserved, used_bytes::text AS used FROM upload_quotas WHERE prefix = '/q'`,
  );
  return rows[0] as { reserved: string; used: string };
}

describe('sessions of put events the index did not apply', () => {
  it('settle: overwritten within one batch, or gone by the HEAD; in-flight multipart stays open', async () => {
    // Prepare: two single PUTs of one path (same size) both stored before the indexer ran; one
    // single PUT deleted before its HEAD; two completed multipart uploads whose object is gone —
    // one of them this event's object, the other completed with another ETag.
    await session('s1', '/q/a', 5);
    await session('s2', '/q/a', 5);
    await session('s3', '/q/b', 7);
    gone.add(`${PREFIX}q/b`);
    await session('m1', '/q/c', 9, { mode: 'multipart', completedEtag: 'etag-c' });
    await session('m2', '/q/d', 9, { mode: 'multipart', completedEtag: 'another-etag' });
    gone.add(`${PREFIX}q/c`);
    gone.add(`${PREFIX}q/d`);

    // Act: one batch, as SQS delivers it.
    const { failed } = await indexBatch(deps, [
      sqsRecord(putEvent(`${PREFIX}q/a`, 1, 5, 'etag-a1')),
      sqsRecord(putEvent(`${PREFIX}q/a`, 2, 5, 'etag-a2')),
      sqsRecord(putEvent(`${PREFIX}q/b`, 3, 7, 'etag-b')),
      sqsRecord(putEvent(`${PREFIX}q/c`, 4, 9, 'etag-c')),
      sqsRecord(putEvent(`${PREFIX}q/d`, 5, 9, 'etag-d')),
    ]);

    // Assess: every stored upload settled; only the current /q/a counts as used; the multipart
    // upload whose completion is not this object keeps its reservation.
    expect(failed.size).toBe(0);
    expect(await states()).toEqual({
      m1: 'completed/0',
      m2: 'completed/9',
      s1: 'completed/0',
      s2: 'completed/0',
      s3: 'completed/0',
    });
    expect(await quota()).toEqual({ reserved: '9', used: '5' });
  });
});
