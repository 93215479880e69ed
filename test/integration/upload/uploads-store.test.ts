/**
 * The upload session store against a real PostgreSQL: quota reservation, idempotency races,
 * release on abort, settlement by the indexer (with and without a session).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../../functions/adapters/pg/migrate.ts';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import {
  getQuota,
  getSession,
  type NewSession,
  openSession,
  openSessions,
  releaseSession,
  setQuota,
  settleDeletes,
  settleUploads,
} from '../../../functions/adapters/pg/uploads-store.ts';
import { QuotaExceededError } from '../../../functions/core/errors.ts';
import { keyForPath } from '../../../functions/core/paths.ts';
import { type LocalPostgres, startPostgres } from '../../../local/postgres.ts';
import { newSession } from './sessions.ts';

const PREFIX = 'data/';
let dir: string;
let pgServer: LocalPostgres;
let pool: Pool;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-upload-store-'));
  pgServer = await startPostgres({
    dataDir: join(dir, 'pg'),
    persist: false,
    databaseUrl: process.env.DATABASE_URL,
    log: () => {},
  });
  pool = createPool({ connectionString: pgServer.url, max: 4 });
  await migrate(pool);
});

afterAll(async () => {
  await pool?.end();
  await pgServer?.stop();
  await rm(dir, { recursive: true, force: true });
});

const session = (path: string, size: number, extra: Partial<NewSession> = {}) =>
  newSession(path, size, extra, PREFIX);

describe('uploads store', () => {
  it('reserves quota at presign, refuses beyond it with the remaining bytes, releases on abort', async () => {
    await setQuota(pool, PREFIX, '/q1', 1000);
    const a = await openSession(pool, session('/q1/a', 600));
    expect('created' in a).toBe(true);
    expect((await getQuota(pool, '/q1'))?.reservedBytes).toBe(600);

    const err = await openSession(pool, session('/q1/b', 500)).catch((e) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect((err as QuotaExceededError).remainingBytes).toBe(400);
    // A sibling with a longer name is not covered by /q1.
    expect('created' in (await openSession(pool, session('/q1-other/b', 5000)))).toBe(true);

    const id = 'created' in a ? a.created.id : '';
    expect(await releaseSession(pool, id, 'aborted')).toBe(true);
    expect(await releaseSession(pool, id, 'aborted')).toBe(false);
    expect((await getQuota(pool, '/q1'))?.reservedBytes).toBe(0);
    expect((await getSession(pool, id))?.state).toBe('aborted');
    expect('created' in (await openSession(pool, session('/q1/b', 500)))).toBe(true);
  });

  it('settles a session: reservation becomes used, declared attributes are returned', async () => {
    await setQuota(pool, PREFIX, '/q2', 10_000);
    const opened = await openSession(
      pool,
      session('/q2/x.csv', 1234, { sha256: 'a'.repeat(64), contentType: 'text/csv', date: '2024-05-01' }),
    );
    if (!('created' in opened)) throw new Error('expected a new session');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const settled = await settleUploads(client, [
        { key: keyForPath(PREFIX, '/q2/x.csv'), size: 1234, etag: '"e1"' },
        { key: keyForPath(PREFIX, '/q2/out-of-band'), size: 10, etag: '"e2"' },
      ]);
      await client.query('COMMIT');
      expect(settled[0]?.session).toEqual({
        id: opened.created.id,
        sha256: 'a'.repeat(64),
        contentType: 'text/csv',
        date: '2024-05-01',
      });
      expect(settled[1]?.session).toBeUndefined();
    } finally {
      client.release();
    }
    expect(await getQuota(pool, '/q2')).toMatchObject({ reservedBytes: 0, usedBytes: 1244 });
    expect((await getSession(pool, opened.created.id))?.state).toBe('completed');
    // A later abort of a settled session changes nothing.
    expect(await releaseSession(pool, opened.created.id, 'aborted')).toBe(false);
    await settleDeletes(pool, [{ key: keyForPath(PREFIX, '/q2/out-of-band'), size: 10 }]);
    expect((await getQuota(pool, '/q2'))?.usedBytes).toBe(1234);
  });

  it('the root quota covers everything; nested quotas are all charged', async () => {
    await setQuota(pool, PREFIX, '/', 1_000_000);
    await setQuota(pool, PREFIX, '/q3', 100);
    const before = (await getQuota(pool, '/'))!.reservedBytes;
    await openSession(pool, session('/q3/deep/file', 100));
    expect((await getQuota(pool, '/'))!.reservedBytes).toBe(before + 100);
    expect((await getQuota(pool, '/q3'))!.reservedBytes).toBe(100);
    await expect(openSession(pool, session('/q3/more', 1))).rejects.toBeInstanceOf(QuotaExceededError);
    await setQuota(pool, PREFIX, '/', 1e15);
  });

  it('concurrent requests with one Idempotency-Key create one session and one reservation', async () => {
    await setQuota(pool, PREFIX, '/q4', 10_000);
    const results = await Promise.all(
      [0, 1, 2, 3].map(() =>
        openSession(pool, session('/q4/f', 100, { idempotencyKey: 'k1', bodyHash: 'h' })),
      ),
    );
    const created = results.filter((r) => 'created' in r);
    const existing = results.filter((r) => 'existing' in r);
    expect(created).toHaveLength(1);
    expect(existing).toHaveLength(3);
    const id = 'created' in created[0]! ? created[0].created.id : '';
    for (const r of existing) expect('existing' in r && r.existing.id).toBe(id);
    expect((await getQuota(pool, '/q4'))?.reservedBytes).toBe(100);
  });

  it('openSessions: one transaction, entries beyond the quota fail alone', async () => {
    await setQuota(pool, PREFIX, '/q5', 100);
    const out = await openSessions(pool, [session('/q5/a', 60), session('/q5/b', 60), session('/q5/c', 40)]);
    expect(out.map((o) => (o instanceof QuotaExceededError ? o.remainingBytes : o.path))).toEqual([
      '/q5/a',
      40,
      '/q5/c',
    ]);
    expect((await getQuota(pool, '/q5'))?.reservedBytes).toBe(100);
    const a = out[0] as { quotaPrefixes: string[] };
    expect(a.quotaPrefixes).toContain('/q5');
  });

  it('openSessions keeps entry order and reserves only in the quotas covering each entry', async () => {
    // (This file's root quota covers everything; the no-quota single-statement path is exercised
    // by the batch test of uploads-api.test.ts.)
    await setQuota(pool, PREFIX, '/q6', 10);
    const out = await openSessions(pool, [session('/free/b', 5), session('/q6/x', 8), session('/free/a', 7)]);
    expect(out.map((o) => (o instanceof QuotaExceededError ? o.message : [o.path, o.reservedBytes]))).toEqual(
      [
        ['/free/b', 5],
        ['/q6/x', 8],
        ['/free/a', 7],
      ],
    );
    expect((out[0] as { quotaPrefixes: string[] }).quotaPrefixes).not.toContain('/q6');
    expect((out[1] as { quotaPrefixes: string[] }).quotaPrefixes).toContain('/q6');
    expect((await getQuota(pool, '/q6'))?.reservedBytes).toBe(8);
  });
});
