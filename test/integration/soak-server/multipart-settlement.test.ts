/**
 * Which put event settles a multipart upload session (found by the server soak: 19 abandoned
 * sessions ended `completed` and 19 real uploads kept 159 MB reserved). Settlement matched the
 * oldest open session of the key and size, pending multipart ones included, so a completed
 * upload's event settled an older abandoned session of the same path: that session was never
 * expired (its S3 upload never aborted), and a later /complete of it answered `completed` without
 * completing it in S3. An event now settles a multipart session only by the ETag its /complete
 * recorded; an event that comes first is remembered and /complete settles then. Real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjectChanges } from '../../../functions/adapters/pg/index-store.ts';
import {
  getQuota,
  getSession,
  markCompleted,
  setQuota,
} from '../../../functions/adapters/pg/uploads-store.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { type HeadFn, type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, putEvent, seq, sqsRecord } from '../index/s3-events.ts';
import { openMultipart } from '../upload/sessions.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
/** ETag of the object each key holds now, as HeadObject answers it. */
const current = new Map<string, string>();
const head: HeadFn = async (key) => {
  const etag = current.get(key);
  return etag === undefined ? undefined : { etag, contentType: 'application/octet-stream' };
};

beforeAll(async () => {
  db = await startTestDb();
  const config = parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' });
  deps = { config, pool: db.pool, head, redis: new RedisGuard(undefined) };
}, 60_000);

afterAll(async () => {
  await db?.stop();
});

async function state(id: string): Promise<string> {
  const s = await getSession(db.pool, id);
  return `${s?.state}/${s?.reservedBytes}`;
}

describe('multipart session settlement', () => {
  it('an upload event settles no pending session; /complete settles by the ETag the index saw', async () => {
    // Prepare: two multipart sessions of one path and size; the older one abandoned after a part,
    // the newer one completed in S3 — its put event is indexed before its /complete's update.
    await setQuota(db.pool, PREFIX, '/q1', 1000);
    const abandoned = await openMultipart(db.pool, '/q1/a', 9);
    const real = await openMultipart(db.pool, '/q1/a', 9);
    current.set(`${PREFIX}q1/a`, 'etag-real');
    // Act 1
    const { failed } = await indexBatch(deps, [sqsRecord(putEvent(`${PREFIX}q1/a`, 1, 9, 'etag-real'))]);
    // Assess 1: neither session is completed (a /complete answered from that state skips S3).
    expect(failed.size).toBe(0);
    expect([await state(abandoned), await state(real)]).toEqual(['pending/9', 'pending/9']);
    // Act 2: the real upload's /complete records the ETag S3 returned (quoted, as S3 sends it).
    expect(await markCompleted(db.pool, real, '"etag-real"')).toBe(true);
    // Assess 2: only the real upload settled; the abandoned one still pending, for the cleanup job.
    expect([await state(abandoned), await state(real)]).toEqual(['pending/9', 'completed/0']);
    expect(await getQuota(db.pool, '/q1')).toMatchObject({ reservedBytes: 9, usedBytes: 9 });
  });

  it('a put superseded within its batch before /complete settles at /complete', async () => {
    // Prepare: the upload's object and an overwrite of it (another size) reach one batch.
    await setQuota(db.pool, PREFIX, '/q2', 1000);
    const id = await openMultipart(db.pool, '/q2/b', 9);
    current.set(`${PREFIX}q2/b`, 'etag-over');
    // Act 1
    const { failed } = await indexBatch(deps, [
      sqsRecord(putEvent(`${PREFIX}q2/b`, 1, 9, 'etag-up')),
      sqsRecord(putEvent(`${PREFIX}q2/b`, 2, 4, 'etag-over')),
    ]);
    // Assess 1
    expect(failed.size).toBe(0);
    expect(await state(id)).toBe('pending/9');
    // Act 2: a /complete that got another ETag settles nothing; the upload's own one does.
    const other = await openMultipart(db.pool, '/q2/b', 9);
    expect(await markCompleted(db.pool, other, '"etag-elsewhere"')).toBe(true);
    expect(await markCompleted(db.pool, id, '"etag-up"')).toBe(true);
    // Assess 2: the bytes never entered `used` (the object was replaced); the reservation is gone.
    expect([await state(id), await state(other)]).toEqual(['completed/0', 'completed/9']);
    expect(await getQuota(db.pool, '/q2')).toMatchObject({ reservedBytes: 9, usedBytes: 4 });
  });

  it('a /complete racing the batch that indexes its object waits for it and settles', async () => {
    // Prepare: an indexer transaction has applied the upload's put (locking its session) and not
    // yet committed.
    await setQuota(db.pool, PREFIX, '/q3', 1000);
    const id = await openMultipart(db.pool, '/q3/c', 9);
    const batch = await db.pool.connect();
    let completing: Promise<boolean> | undefined;
    try {
      await batch.query('BEGIN');
      await applyObjectChanges(
        batch,
        [
          {
            kind: 'put',
            key: `${PREFIX}q3/c`,
            path: '/q3/c',
            size: 9,
            etag: 'etag-c',
            sequencer: seq(1),
            lastModified: new Date(),
          },
        ],
        { source: 'event' },
      );
      // Act: /complete's update waits for the session row; commit once it does.
      completing = markCompleted(db.pool, id, '"etag-c"');
      const deadline = Date.now() + 20_000;
      for (;;) {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE upload_sessions%'`,
        );
        if (rows.length > 0) break;
        if (Date.now() > deadline) throw new Error('markCompleted never waited for the batch lock');
        await new Promise((r) => setTimeout(r, 20));
      }
      await batch.query('COMMIT');
    } finally {
      batch.release();
    }
    // Assess
    expect(await completing).toBe(true);
    expect(await state(id)).toBe('completed/0');
    expect(await getQuota(db.pool, '/q3')).toMatchObject({ reservedBytes: 0, usedBytes: 9 });
  });
});
