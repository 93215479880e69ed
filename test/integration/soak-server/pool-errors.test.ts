/**
 * Error paths that could leak pool clients, leave transactions open or half-apply a batch (issue 3
 * under adversarial load, bench/index/soak.ts's companion). Real PostgreSQL; handlers called as
 * Lambda would call them, with a pool sized as in Lambda (2 connections).
 */
import pLimit from 'p-limit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, putEvent, sqsRecord } from '../index/s3-events.ts';
import { resolveRequest } from './requests.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

const APP = 'strata-pool-errors';
let db: TestDb;
let pool: Pool;
let token: string;

beforeAll(async () => {
  db = await startTestDb();
  // Lambda sizing; a short statement timeout so 200 timed-out requests take seconds, not minutes.
  pool = createPool({ connectionString: db.url, max: 2, statementTimeoutMs: 50, applicationName: APP });
  token = (await createToken(db.pool, { name: 'pool-errors', scopes: ['read', 'write', 'admin'] })).token;
  setDeps({
    config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, DATABASE_URL: db.url }),
    pool,
    redis: guardRedis(undefined),
  });
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await db?.stop();
});

const resolve = (path: string) => resolveRequest(token, path);

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pool at rest: nothing checked out, nobody waiting, never above its size. */
async function poolAtRest(p: Pool): Promise<void> {
  await until(
    `pool at rest (total ${p.totalCount}, idle ${p.idleCount}, waiting ${p.waitingCount})`,
    () => p.waitingCount === 0 && p.idleCount === p.totalCount,
  );
  expect(p.totalCount).toBeLessThanOrEqual(2);
}

/** Server side: no session of ours is running a statement or sitting in an open transaction. */
async function serverAtRest(): Promise<void> {
  await until('no active or idle-in-transaction backend of the pool', async () => {
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = $1 AND (state = 'active' OR state LIKE 'idle in transaction%')`,
      [APP],
    );
    return rows[0]?.n === 0;
  });
}

describe('pool clients under failing requests', () => {
  it('200 requests hitting the statement timeout answer 503 and leave the pool at its baseline', async () => {
    // Prepare: a lock held elsewhere makes every index read wait past the statement timeout.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE objects IN ACCESS EXCLUSIVE MODE');
    const statuses = new Map<number, number>();
    let example = '';
    try {
      const limit = pLimit(8);
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          limit(async () => {
            const res = await resolve(`/t/${i}`);
            statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
            example = String(res.body);
            expect(res.headers?.['retry-after']).toBe('1');
          }),
        ),
      );
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // Assess: transient, said so, and nothing leaked.
    expect([...statuses]).toEqual([[503, 200]]);
    expect(JSON.parse(example).error.message).toMatch(/statement timeout.*retry/);
    await poolAtRest(pool);
    await serverAtRest();
    expect((await resolve('/t/after')).statusCode).toBe(404);
  });

  it('backends terminated under load (a restart or failover) → requests recover without a new pool', async () => {
    const limit = pLimit(4);
    const codes = new Map<number, number>();
    const unexpected: string[] = [];
    let kills = 0;
    const load = Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        limit(async () => {
          const res = await resolve(`/k/${i}`);
          const code = res.statusCode ?? 0;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (code !== 404 && code !== 503) unexpected.push(`${code} ${res.body}`);
          // Every 40 requests, the server drops every connection of the pool, as a restart does.
          if (i % 40 === 20) {
            kills++;
            await db.pool.query(
              'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
              [APP],
            );
          }
        }),
      ),
    );
    await load;
    expect(kills).toBe(5);
    // Only "not found" (served) or 503 (connection lost mid-request) — never a 500.
    expect(unexpected).toEqual([]);
    await poolAtRest(pool);
    // Right after a restart the pool may still hold clients whose backend is gone: a request must
    // not fail on one (reads are retried on a fresh connection), round after round.
    for (let i = 0; i < 20; i++) {
      await db.pool.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
        [APP],
      );
      const res = await resolve(`/k/again-${i}`);
      expect(`${res.statusCode} ${res.body}`).toMatch(/^404 /);
    }
    await poolAtRest(pool);
    await serverAtRest();
  });
});

describe('indexer batch whose transaction fails after partial work', () => {
  it('applies nothing, leaves the pool at rest, and applies exactly once on redelivery', async () => {
    const ipool = createPool({
      connectionString: db.url,
      max: 2,
      statementTimeoutMs: 10_000,
      applicationName: APP,
    });
    const deps: IndexerDeps = {
      config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
      pool: ipool,
      head: async () => ({ etag: 'e1', contentType: 'text/plain', metadata: {} }),
      redis: new RedisGuard(undefined),
    };
    try {
      // Prepare: an open upload session makes the batch settle inside one transaction (objects,
      // rollups, journal, then the session); the session update is made to fail, i.e. after the
      // index rows were written in that transaction.
      await db.pool.query(
        `INSERT INTO upload_sessions (id, path, key, size, content_type, mode, expires_at)
         VALUES ('s-partial', '/half/a.bin', $1, 5, 'application/octet-stream', 'single', now() + interval '1 hour')`,
        [`${PREFIX}half/a.bin`],
      );
      await db.pool.query(`
        CREATE FUNCTION soak_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure after partial work'; END $$;
        CREATE TRIGGER soak_fail BEFORE UPDATE ON upload_sessions FOR EACH ROW EXECUTE FUNCTION soak_fail();`);
      const before = await snapshot();
      const records = [
        sqsRecord(putEvent(`${PREFIX}half/a.bin`, 1, 5, 'e1'), 'm-1'),
        sqsRecord(putEvent(`${PREFIX}half/sub/b.bin`, 2, 7, 'e2'), 'm-2'),
      ];

      // Act: the failing record is reported alone (the indexer retries a failed batch record by
      // record); nothing of it is half-applied — no object row, journal entry or rollup for a.bin.
      const first = await indexBatch(deps, records);
      expect([...first.failed]).toEqual(['m-1']);
      const failed = await snapshot();
      expect(failed.objects).toEqual(['/half/sub/b.bin|active|7']);
      expect(failed.journal).toEqual(['put /half/sub/b.bin']);
      expect(failed.session).toBe('pending');
      expect(failed.rollups).not.toEqual(before.rollups);
      expect(await rollup('/half')).toEqual({ files: '1', bytes: '7' });
      await poolAtRest(ipool);
      await serverAtRest();

      // Redelivery after the fault is gone: applied once, session settled.
      await db.pool.query('DROP TRIGGER soak_fail ON upload_sessions; DROP FUNCTION soak_fail()');
      const second = await indexBatch(deps, [records[0] as (typeof records)[0]]);
      expect(second.failed.size).toBe(0);
      const redelivered = await indexBatch(deps, records);
      expect(redelivered.stats.applied).toBe(0);
      const after = await snapshot();
      expect(after.objects).toEqual(['/half/a.bin|active|5', '/half/sub/b.bin|active|7']);
      expect(after.journal).toEqual(['put /half/sub/b.bin', 'put /half/a.bin']);
      expect(after.session).toBe('completed');
      expect(await rollup('/half')).toEqual({ files: '2', bytes: '12' });
      await poolAtRest(ipool);
    } finally {
      await ipool.end();
    }
  });
});

/** A directory's rollup: the sum of its delta rows (folded or not). */
async function rollup(dir: string): Promise<{ files: string; bytes: string } | undefined> {
  const { rows } = await db.pool.query<{ files: string; bytes: string }>(
    `SELECT sum(files)::text AS files, sum(bytes)::text AS bytes FROM dir_rollups WHERE dir = $1`,
    [dir],
  );
  return rows[0];
}

async function snapshot(): Promise<{
  objects: string[];
  journal: string[];
  rollups: string[];
  session: string;
}> {
  const objects = await db.pool.query<{ r: string }>(
    `SELECT path || '|' || state || '|' || size AS r FROM objects WHERE path LIKE '/half/%' ORDER BY path`,
  );
  const journal = await db.pool.query<{ r: string }>(
    `SELECT op || ' ' || path AS r FROM changes WHERE path LIKE '/half/%' ORDER BY seq`,
  );
  const rollups = await db.pool.query<{ r: string }>(
    `SELECT dir || ':' || files || ':' || bytes AS r FROM dir_rollups WHERE dir = '/' OR dir LIKE '/half%' ORDER BY 1`,
  );
  const session = await db.pool.query<{ state: string }>(
    `SELECT state FROM upload_sessions WHERE id = 's-partial'`,
  );
  return {
    objects: objects.rows.map((r) => r.r),
    journal: journal.rows.map((r) => r.r),
    rollups: rollups.rows.map((r) => r.r),
    session: session.rows[0]?.state ?? 'none',
  };
}
