/**
 * Review of quota release under concurrency (real PostgreSQL, two connections): a session's
 * reservation must leave the quota exactly once — never lost (quota shrinks for good), never twice.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyObjectChanges } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import {
  getQuota,
  releaseAbortedAfterExpiry,
  releaseUnsettled,
  setQuota,
  settleUploads,
} from '../../../functions/adapters/pg/uploads-store.ts';
import type { ObjectChange } from '../../../functions/core/index-apply.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

let db: TestDb;
beforeAll(async () => {
  db = await startTestDb();
});
afterAll(async () => {
  await db?.stop();
});

const put = (path: string, etag: string, size: number): ObjectChange => ({
  kind: 'put',
  key: `data${path}`,
  path,
  size,
  etag,
  lastModified: new Date('2026-01-02T00:00:00Z'),
});

const longAgo = new Date('2026-01-01T00:00:00Z');

async function session(id: string, state: string, reserved: number, key = 'data/q/f.bin') {
  await db.pool.query(
    `INSERT INTO upload_sessions (id, path, key, size, content_type, mode, state, quota_prefixes,
                                  reserved_bytes, created_at, expires_at, completed_at)
     VALUES ($1, '/q/f.bin', $4, 100, 'application/octet-stream', 'single', $2, ARRAY['/q'], $3,
             $5, $5, CASE WHEN $2 = 'completed' THEN $5::timestamptz END)`,
    [id, state, reserved, key, longAgo],
  );
}

/** Waits until `call` has finished or is blocked on a row lock (reached its locking statement). */
async function finishedOrBlocked(call: Promise<unknown>) {
  let done = false;
  void call.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  // A deadline, not a count of polls: each poll is a query, and on a loaded machine 500 of them
  // could end before the call reached its lock.
  const deadline = Date.now() + 30_000;
  while (!done && Date.now() < deadline) {
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`,
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  if (!done) throw new Error('the concurrent call neither finished nor blocked on a lock');
}

const quota = async () =>
  (
    await db.pool.query<{ r: string; u: string }>(
      `SELECT reserved_bytes::text AS r, used_bytes::text AS u FROM upload_quotas WHERE prefix = '/q'`,
    )
  ).rows[0];

beforeEach(async () => {
  await db.pool.query('DELETE FROM upload_sessions');
  await db.pool.query('DELETE FROM upload_quotas');
  await db.pool.query(
    `INSERT INTO upload_quotas (prefix, key_prefix, limit_bytes, reserved_bytes) VALUES ('/q', 'data/q/', 1000, 100)`,
  );
});

describe('quota release races', () => {
  it('releaseUnsettled never zeroes a session it skipped (locked by a concurrent settlement)', async () => {
    await session('s1', 'completed', 100);
    const settler = await db.pool.connect();
    try {
      // The indexer settles another object of the same key (a different size: someone else's
      // overwrite), which locks every open session of that key without taking s1.
      await settler.query('BEGIN');
      await settleUploads(settler, [{ key: 'data/q/f.bin', size: 7, etag: 'x' }]);
      // The cleanup job runs meanwhile: s1 is skipped (locked)...
      const released = releaseUnsettled(db.pool, new Date());
      // Before the fix its UPDATE re-ran the predicate and waited for s1's row lock here.
      await finishedOrBlocked(released);
      await settler.query('COMMIT');
      await released;
    } finally {
      settler.release();
    }
    // ...so either it was released by this run or it still holds its bytes for the next run — but
    // the session's reservation and the quota's must agree.
    const s = await db.pool.query<{ r: string }>(
      `SELECT reserved_bytes::text AS r FROM upload_sessions WHERE id = 's1'`,
    );
    const q = await quota();
    expect(Number(q?.r)).toBe(Number(s.rows[0]?.r));
    // And a later run finishes the job.
    await releaseUnsettled(db.pool, new Date());
    expect(await quota()).toMatchObject({ r: '0', u: '7' });
  });

  it('an aborted single PUT whose object arrives is charged once; the expiry release then skips it', async () => {
    await session('s2', 'aborted', 100);
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await settleUploads(c, [{ key: 'data/q/f.bin', size: 100, etag: 'x' }]);
      // SKIP LOCKED: the expiry release passes over s2 while the settlement holds it.
      expect(await releaseAbortedAfterExpiry(db.pool, new Date())).toBe(0);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    await releaseAbortedAfterExpiry(db.pool, new Date());
    expect(await quota()).toMatchObject({ r: '0', u: '100' });
  });
});

describe('a quota set on a tree that already holds files', () => {
  it('starts with used = the bytes stored beneath it, so deleting an old file keeps new ones counted', async () => {
    await db.pool.query('DELETE FROM upload_quotas');
    await withTransaction(db.pool, (c) =>
      applyObjectChanges(c, [put('/old/team/big.bin', 'b', 1000), put('/old/other/x.bin', 'x', 5)], {
        source: 'event',
      }),
    );
    const q = await setQuota(db.pool, 'data/', '/old/team', 10_000);
    expect(q.usedBytes).toBe(1000);
    // A new 100-byte file, then the pre-existing 1000-byte one is deleted.
    await withTransaction(db.pool, (c) =>
      applyObjectChanges(c, [put('/old/team/new.bin', 'n', 100)], { source: 'event' }),
    );
    await withTransaction(db.pool, (c) =>
      applyObjectChanges(c, [{ kind: 'delete', key: 'data/old/team/big.bin', path: '/old/team/big.bin' }], {
        source: 'event',
      }),
    );
    expect((await getQuota(db.pool, '/old/team'))?.usedBytes).toBe(100);
  });
});
