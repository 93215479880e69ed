import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  applyObjectChanges,
  applyObjectChangesAtomically,
  changesSince,
  getDir,
  getObject,
  listDates,
  listDir,
  type ObjectChange,
} from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import {
  createIndexer,
  type HeadFn,
  type IndexerDeps,
  indexBatch,
} from '../../../functions/handlers/indexer.ts';
import type { S3EventName } from '../../../local/s3-events.ts';
import { startTestDb, type TestDb } from './db.ts';
import { BUCKET, deleteEvent, PREFIX, putEvent, sqsRecord } from './s3-events.ts';
import { versionEvent, versionedBucket } from './versioned-bucket.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
/** A HEAD that describes whatever etag is asked about; counts calls; `gone` keys answer 404. */
const heads: string[] = [];
const gone = new Set<string>();
const head: HeadFn = async (key) => {
  heads.push(key);
  if (gone.has(key)) return undefined;
  return {
    etag: etags.get(key) ?? 'unknown',
    contentType: 'text/plain',
    metadata: { owner: 'me', 'strata-date': '2024-02-29' },
  };
};
const etags = new Map<string, string>();

beforeAll(async () => {
  db = await startTestDb();
  deps = {
    config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
    pool: db.pool,
    head,
    redis: new RedisGuard(undefined),
  };
});
afterAll(async () => {
  await db?.stop();
});
beforeEach(async () => {
  await db.pool.query('TRUNCATE objects, dir_rollups, day_rollups, change_batches');
  heads.length = 0;
  gone.clear();
  etags.clear();
});

const run = (bodies: string[]) =>
  indexBatch(
    deps,
    bodies.map((b) => sqsRecord(b)),
  );

describe('indexer', () => {
  it('indexes puts with HEAD metadata, ignores keys outside the prefix and test events', async () => {
    etags.set('data/a b/c+d%.txt', 'e1');
    const { failed, stats } = await run([
      putEvent('data/a b/c+d%.txt', 1, 10, 'e1'),
      putEvent('elsewhere/x', 1, 5, 'e9'),
      JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: BUCKET }),
    ]);
    expect(failed.size).toBe(0);
    expect(stats).toMatchObject({ applied: 1, ignored: 2 });
    const obj = await getObject(db.pool, '/a b/c+d%.txt');
    expect(obj).toMatchObject({
      state: 'active',
      size: 10,
      etag: 'e1',
      contentType: 'text/plain',
      day: '2024-02-29',
    });
    expect(obj?.metadata).toEqual({ owner: 'me' });
    expect(await getDir(db.pool, '/a b')).toMatchObject({ files: 1, bytes: 10 });
    expect(await getDir(db.pool, '/')).toMatchObject({ files: 1, bytes: 10 });
    expect(await listDates(db.pool)).toEqual([{ date: '2024-02-29', files: 1, bytes: 10 }]);
  });

  it('guards by sequencer: older events change nothing and spend no HEAD; deletes leave tombstones', async () => {
    etags.set('data/k', 'new');
    await run([putEvent('data/k', 5, 20, 'new')]);
    heads.length = 0;
    await run([putEvent('data/k', 3, 7, 'old'), deleteEvent('data/k', 4)]);
    expect(heads).toEqual([]);
    expect(await getObject(db.pool, '/k')).toMatchObject({ state: 'active', etag: 'new', size: 20 });
    await run([deleteEvent('data/k', 6)]);
    expect(await getObject(db.pool, '/k')).toMatchObject({ state: 'deleted' });
    await run([putEvent('data/k', 5, 20, 'new')]); // redelivered duplicate after the delete
    expect(await getObject(db.pool, '/k')).toMatchObject({ state: 'deleted' });
    expect(await getDir(db.pool, '/')).toBeUndefined();
    const { changes } = await changesSince(db.pool, 0, 100);
    expect(changes.map((c) => c.op)).toEqual(['put', 'delete']);
  });

  it('a version deleted for good in a versioned bucket leaves the current one indexed (or the previous one, or none)', async () => {
    // Prepare: S3's current version per key, as HEAD (no versionId) answers it.
    const { current, heads, head } = versionedBucket();
    const versionedDeps: IndexerDeps = { ...deps, head };
    const event = (eventName: S3EventName, key: string, sequencer: number, versionId?: string) =>
      versionEvent(eventName, key, sequencer, versionId ? { versionId } : {});
    const runV = (bodies: string[]) =>
      indexBatch(
        versionedDeps,
        bodies.map((b) => sqsRecord(b)),
      );
    current.set('data/v/a', { etag: 'e2', size: 20, versionId: 'v2' });
    current.set('data/v/b', { etag: 'e2', size: 20, versionId: 'v2' });
    await runV([
      event('ObjectCreated:Put', 'data/v/a', 2, 'v2'),
      event('ObjectCreated:Put', 'data/v/b', 2, 'v2'),
    ]);

    // Act 1: the noncurrent v1 of /v/a expires (lifecycle) and is deleted by hand: /v/a stays v2,
    // and nothing is journaled (mounts keep their cached entry).
    const journaled = async () =>
      (await db.pool.query('SELECT coalesce(sum(n), 0)::int AS n FROM change_batches')).rows[0].n as number;
    const entries = await journaled();
    const headsAtStart = heads.length;
    const first = await runV([
      event('LifecycleExpiration:Delete', 'data/v/a', 3, 'v1'),
      event('ObjectRemoved:Delete', 'data/v/a', 4, 'v1'),
    ]);
    expect(first.failed.size).toBe(0);
    expect(await getObject(db.pool, '/v/a')).toMatchObject({
      state: 'active',
      etag: 'e2',
      size: 20,
      versionId: 'v2',
    });
    expect(await journaled()).toBe(entries);
    expect(heads.length - headsAtStart).toBe(2); // one "which version is current?" per event, nothing more

    // Act 2: the current v2 of /v/a is deleted for good: v1's successor v0 is current again.
    current.set('data/v/a', { etag: 'e0', size: 7, versionId: 'v0' });
    const headsBeforeRestore = heads.length;
    await runV([event('ObjectRemoved:Delete', 'data/v/a', 5, 'v2')]);
    expect(await getObject(db.pool, '/v/a')).toMatchObject({
      state: 'active',
      etag: 'e0',
      size: 7,
      versionId: 'v0',
      contentType: 'text/plain',
    });
    expect(heads.length - headsBeforeRestore).toBe(1); // the one HEAD that found v0 also described it

    // Act 3: the last version goes; and /v/b's current version expires behind a delete marker.
    current.set('data/v/a', undefined);
    current.set('data/v/b', undefined);
    const headsBefore = heads.length;
    await runV([
      event('ObjectRemoved:Delete', 'data/v/a', 6, 'v0'),
      event('LifecycleExpiration:DeleteMarkerCreated', 'data/v/b', 3, 'marker-1'),
    ]);
    expect((await getObject(db.pool, '/v/a'))?.state).toBe('deleted');
    expect((await getObject(db.pool, '/v/b'))?.state).toBe('deleted');
    expect(heads.length - headsBefore).toBe(1); // a delete marker needs no HEAD

    // An unversioned lifecycle expiration (no versionId) is a plain delete.
    current.set('data/v/c', { etag: 'e2', size: 20, versionId: 'v2' });
    await runV([event('ObjectCreated:Put', 'data/v/c', 2)]);
    await runV([event('LifecycleExpiration:Delete', 'data/v/c', 3)]);
    expect((await getObject(db.pool, '/v/c'))?.state).toBe('deleted');
  });

  it('treats HEAD 404 as gone, not as an error', async () => {
    gone.add('data/vanished');
    const { failed, stats } = await run([putEvent('data/vanished', 1, 1, 'x')]);
    expect(failed.size).toBe(0);
    expect(stats.gone).toBe(1);
    expect(await getObject(db.pool, '/vanished')).toBeUndefined();
  });

  it('reports a malformed message alone and indexes the rest', async () => {
    etags.set('data/ok', 'e');
    const bad = sqsRecord('{"not":"an event"}', 'bad-1');
    const good = sqsRecord(putEvent('data/ok', 1, 3, 'e'), 'good-1');
    const res = await createIndexer(() => deps)({ Records: [bad, good] });
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'bad-1' }]);
    expect(await getObject(db.pool, '/ok')).toMatchObject({ state: 'active' });
  });

  it('isolates a record that hits a database error: only it is reported', async () => {
    await db.pool.query(`CREATE OR REPLACE FUNCTION strata_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.path = '/poison' AND NEW.state = 'active' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$`);
    await db.pool.query(
      'CREATE TRIGGER strata_test_poison BEFORE INSERT OR UPDATE ON objects FOR EACH ROW EXECUTE FUNCTION strata_test_poison()',
    );
    try {
      for (const k of ['a', 'poison', 'b']) etags.set(`data/${k}`, k);
      const records = ['a', 'poison', 'b'].map((k) => sqsRecord(putEvent(`data/${k}`, 1, 1, k), `m-${k}`));
      const res = await createIndexer(() => deps)({ Records: records });
      expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'm-poison' }]);
      expect(await getObject(db.pool, '/a')).toMatchObject({ state: 'active' });
      expect(await getObject(db.pool, '/b')).toMatchObject({ state: 'active' });
    } finally {
      await db.pool.query('DROP TRIGGER strata_test_poison ON objects');
    }
  });

  it('lists files and directories merged in byte order with keyset pages', async () => {
    const names = ['b', 'a/x', 'a', 'A', 'é', 'z z', '+', '%41', '🙂', 'ab/c'];
    const bodies = names.map((n, i) => {
      etags.set(`data/d/${n}`, `e${i}`);
      return putEvent(`data/d/${n}`, 1, i + 1, `e${i}`);
    });
    await run(bodies);
    const all: string[] = [];
    let cursor: Parameters<typeof listDir>[3];
    for (;;) {
      const page = await listDir(db.pool, '/d', 3, cursor);
      all.push(...page.entries.map((e) => `${e.type}:${e.name}`));
      if (!page.next) break;
      cursor = page.next;
    }
    const expected = ['%41', '+', 'A', 'a', 'a', 'ab', 'b', 'z z', 'é', '🙂'];
    expect(all.map((s) => s.slice(s.indexOf(':') + 1))).toEqual(expected);
    expect(all).toContain('dir:a');
    expect(all).toContain('file:a');
    expect(all.indexOf('dir:a')).toBeLessThan(all.indexOf('file:a'));
  });
});

describe('journal written by the batch function', () => {
  it('journals names with quotes, backslashes and non-ASCII exactly, and commits the batch', async () => {
    const names = ["it's", 'back\\slash', '$1 and $$', 'quote"d', 'é 🙂', "E'x'", 'semi;COMMIT'];
    const bodies = names.map((n, i) => {
      etags.set(`data/j/${n}`, `e'${i}`);
      return putEvent(`data/j/${n}`, 1, i + 1, `e'${i}`);
    });
    const r = await run(bodies);
    expect(r.failed.size).toBe(0);
    const journal = await changesSince(db.pool, 0, 100);
    expect(journal.changes.map((c) => c.path).sort()).toEqual(names.map((n) => `/j/${n}`).sort());
    expect(new Set(journal.changes.map((c) => c.etag))).toEqual(new Set(names.map((_, i) => `e'${i}`)));
    // Committed: visible from another connection, and no transaction was left open on the pool.
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM objects WHERE parent = '/j'");
    expect(rows[0].n).toBe(names.length);
    const open = await db.pool.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'idle in transaction' AND datname = current_database()",
    );
    expect(open.rows[0].n).toBe(0);
  });
});

describe('rows reconcile healed (no sequencer)', () => {
  it("ignore older events for other versions, and take the sequencer from the healed version's own event", async () => {
    // Prepare: reconcile found v2 in S3 (LastModified 12:00) that the index never heard of.
    const healedAt = new Date('2024-03-01T12:00:00Z');
    await withTransaction(db.pool, (c) =>
      applyObjectChanges(
        c,
        [{ kind: 'put', key: 'data/h/f', path: '/h/f', size: 2, etag: 'v2', lastModified: healedAt }],
        { source: 'drift', runId: 'r1' },
      ),
    );
    // Act: the lost events arrive late — v1's put and a delete, both before 12:00.
    etags.set('data/h/f', 'v2');
    await run([
      putEvent('data/h/f', 1, 1, 'v1', new Date('2024-03-01T11:00:00Z')),
      deleteEvent('data/h/f', 2, new Date('2024-03-01T11:30:00Z')),
    ]);
    // Assess: still v2.
    expect(await getObject(db.pool, '/h/f')).toMatchObject({ state: 'active', etag: 'v2', size: 2 });
    // v2's own event applies: the row gets its sequencer, so the guard orders later events again.
    await run([putEvent('data/h/f', 3, 2, 'v2', new Date('2024-03-01T11:59:59Z'))]);
    const { rows } = await db.pool.query("SELECT sequencer, source FROM objects WHERE path = '/h/f'");
    expect(rows[0]).toMatchObject({ sequencer: '3'.padStart(32, '0'), source: 'event' });
    await run([deleteEvent('data/h/f', 2, new Date('2024-03-01T13:00:00Z'))]); // older sequencer
    expect(await getObject(db.pool, '/h/f')).toMatchObject({ state: 'active', etag: 'v2' });
  });
});

describe('journal sequencing without a global lock (migration 0013)', () => {
  const put = (path: string, seq: number, size = 1): ObjectChange => ({
    kind: 'put',
    key: `data${path}`,
    path,
    size,
    etag: `e${seq}`,
    sequencer: String(seq).padStart(32, '0'),
    lastModified: new Date('2024-01-02T03:04:05Z'),
  });

  it('hides a committed entry while an older writer is still open, then shows both in order', async () => {
    // Prepare: the older transaction takes its transaction id first (any write), stays open.
    const older = await db.pool.connect();
    try {
      await older.query('BEGIN');
      await older.query(
        "INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime) VALUES ('/zz', '/', 'zz', 0, 0, now())",
      );
      // Act: a younger batch journals and commits first.
      await applyObjectChangesAtomically(db.pool, [put('/late/b', 1)], { source: 'event' });
      const during = await changesSince(db.pool, 0, 100);
      // Assess: the committed younger entry is not readable yet — its seq is above the cut-off,
      // and the older writer could still journal below it.
      expect(during.changes).toEqual([]);
      expect(during.latest).toBe(0);
      await applyObjectChanges(older, [put('/late/a', 1)], { source: 'event' });
      await older.query('COMMIT');
    } finally {
      older.release();
    }
    const after = await changesSince(db.pool, 0, 100);
    expect(after.changes.map((c) => c.path)).toEqual(['/late/a', '/late/b']);
    expect(after.latest).toBe(after.changes[1]?.seq);
  });

  it('a poller that follows nextSince sees every entry exactly once under concurrent batches', async () => {
    const seen: number[] = [];
    let since = 0;
    let writing = true;
    const poll = async () => {
      do {
        const page = await changesSince(db.pool, since, 50);
        for (const c of page.changes) {
          expect(c.seq).toBeGreaterThan(since);
          seen.push(c.seq);
          since = c.seq;
        }
        await new Promise((r) => setImmediate(r));
      } while (writing || since < (await changesSince(db.pool, since, 1)).latest);
    };
    const poller = poll();
    // 24 batches of 10, 6 at a time, over overlapping paths (some stale, some raced inserts).
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let b = 0; b < 4; b++) {
          const changes = Array.from({ length: 10 }, (_, k) =>
            put(`/conc/d${k % 3}/f${(w * 7 + b * 3 + k) % 25}`, w * 100 + b * 10 + k + 1, k),
          );
          await applyObjectChangesAtomically(db.pool, changes, { source: 'event' });
        }
      }),
    );
    writing = false;
    await poller;
    const { rows } = await db.pool.query<{ seq: string }>('SELECT seq FROM changes ORDER BY seq');
    expect(seen).toEqual(rows.map((r) => Number(r.seq)));
  });

  it('concurrent batches inserting the same unseen paths: newest sequencer wins, rollups exact', async () => {
    const paths = Array.from({ length: 20 }, (_, i) => `/race/d${i % 4}/f${i}`);
    // Each worker writes every path with its own sequencer; worker 5 is the newest everywhere.
    await Promise.all(
      Array.from({ length: 6 }, (_, w) =>
        applyObjectChangesAtomically(
          db.pool,
          paths.map((p, i) => put(p, w * 1000 + i + 1, (w + 1) * 10)),
          { source: 'event' },
        ),
      ),
    );
    for (const p of paths) expect(await getObject(db.pool, p)).toMatchObject({ state: 'active', size: 60 });
    expect(await getDir(db.pool, '/race')).toMatchObject({ files: 20, bytes: 20 * 60 });
    expect(await getDir(db.pool, '/race/d1')).toMatchObject({ files: 5, bytes: 5 * 60 });
  });
});

describe('journal stored as one row per batch (migration 0040)', () => {
  const put = (path: string, seq: number, size = 1): ObjectChange => ({
    kind: 'put',
    key: `data${path}`,
    path,
    size,
    etag: `e${seq}`,
    sequencer: String(seq).padStart(32, '0'),
    // Millisecond precision: timestamps travel as epoch milliseconds and must come back exactly.
    lastModified: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678) + seq),
  });
  const del = (path: string, seq: number): ObjectChange => ({
    kind: 'delete',
    key: `data${path}`,
    path,
    sequencer: String(seq).padStart(32, '0'),
  });
  /** Every entry, following nextSince with `limit` per page (what a poller does). */
  const follow = async (limit: number, prefixes?: string[]) => {
    const out: Array<{ seq: number; path: string; op: string; etag?: string; size?: number }> = [];
    let since = 0;
    for (;;) {
      const page = await changesSince(db.pool, since, limit, prefixes);
      expect(page.changes.length).toBeLessThanOrEqual(limit);
      if (page.changes.length === 0) return { entries: out, latest: page.latest };
      for (const c of page.changes) {
        expect(c.seq).toBeGreaterThan(since);
        out.push({ seq: c.seq, path: c.path, op: c.op, etag: c.etag, size: c.size });
        since = c.seq;
      }
    }
  };

  it('pages across batch rows with the limit cutting inside a batch, each entry once, in seq order', async () => {
    // Prepare: batches of 7, 5 and 9 changes (one a delete), and two batches in ONE transaction
    // (two rows in the same transaction's seq range).
    const applied: Array<{ seq: number; path: string }> = [];
    const b1 = Array.from({ length: 7 }, (_, i) => put(`/a/f${i}`, 10 + i, i + 1));
    const b2 = [...Array.from({ length: 4 }, (_, i) => put(`/b/g${i}`, 20 + i, 5)), del('/a/f3', 30)];
    const b3 = Array.from({ length: 9 }, (_, i) => put(`/b/h/k${i}`, 40 + i, 2));
    for (const b of [b1, b2]) {
      applied.push(...(await applyObjectChangesAtomically(db.pool, b, { source: 'event' })).applied);
    }
    await withTransaction(db.pool, async (c) => {
      applied.push(...(await applyObjectChanges(c, b3.slice(0, 4), { source: 'event' })).applied);
      applied.push(...(await applyObjectChanges(c, b3.slice(4), { source: 'event' })).applied);
    });
    const { rows: batchRows } = await db.pool.query<{ n: number }>(
      'SELECT n FROM change_batches ORDER BY seq',
    );
    expect(batchRows.map((r) => r.n)).toEqual([7, 5, 4, 5]);

    // Act: follow the journal with page sizes that cut inside every batch row.
    const whole = await follow(1000);
    // Assess: the seqs the writer reported are the seqs readers see, in the same order.
    expect(whole.entries.map((e) => [e.seq, e.path])).toEqual(applied.map((a) => [a.seq, a.path]));
    expect(whole.latest).toBe(applied[applied.length - 1]?.seq);
    for (const limit of [1, 3, 4, 6]) expect((await follow(limit)).entries).toEqual(whole.entries);
    // Entry fields: a put carries etag and size, a delete size 0 and no etag.
    expect(whole.entries.find((e) => e.path === '/a/f2')).toMatchObject({ op: 'put', etag: 'e12', size: 3 });
    const removed = whole.entries.find((e) => e.path === '/a/f3' && e.op === 'delete');
    expect(removed).toMatchObject({ size: 0 });
    expect(removed?.etag).toBeUndefined();
    // The `changes` view (kept for tools) shows the same entries.
    const { rows } = await db.pool.query<{ seq: string; path: string }>(
      'SELECT seq, path FROM changes ORDER BY seq',
    );
    expect(rows.map((r) => [Number(r.seq), r.path])).toEqual(whole.entries.map((e) => [e.seq, e.path]));
    // Starting inside a batch row returns the rest of that row first.
    const mid = whole.entries[9]?.seq as number;
    const rest = await changesSince(db.pool, mid, 3);
    expect(rest.changes.map((c) => c.seq)).toEqual(whole.entries.slice(10, 13).map((e) => e.seq));
    // Timestamps round-trip to the millisecond.
    expect((await getObject(db.pool, '/a/f2'))?.lastModified?.toISOString()).toBe('2024-01-02T03:04:05.690Z');
  });

  it('round-trips every field through the array literals exactly (braces, commas, NULL, quotes, empty, control)', async () => {
    const names = ['{x}', 'a,b', 'NULL', ' sp ', 'q"\\"', '\\N', 'é🙂'];
    const changes: ObjectChange[] = names.map((n, i) => ({
      kind: 'put',
      key: `data/lit/${n}`,
      path: `/lit/${n}`,
      size: i,
      etag: i === 0 ? '' : `e"${i}\\`,
      sequencer: String(i + 1).padStart(32, '0'),
      lastModified: new Date(Date.UTC(2024, 4, 6, 7, 8, 9, i)),
      // A tab (a control character) sends this column down textArray's escaping path instead of JSON.
      contentType: i === 1 ? 'NULL' : i === 2 ? 'text/plain;\tq="\\"' : 'text/{plain}, "x"',
      metadata: { note: `{"a":[1,"b\\"]}`, empty: '' },
      date: `2024-05-0${1 + (i % 3)}`,
    }));
    const r = await applyObjectChangesAtomically(db.pool, changes, { source: 'event' });
    expect(r.applied).toHaveLength(names.length);
    for (const c of changes) {
      if (c.kind !== 'put') continue;
      expect(await getObject(db.pool, c.path)).toMatchObject({
        key: c.key,
        etag: c.etag,
        size: c.size,
        contentType: c.contentType,
        metadata: c.metadata,
        day: c.date,
        lastModified: c.lastModified,
      });
    }
    const listed = await listDir(db.pool, '/lit', 100);
    expect(listed.entries.map((e) => e.name).sort()).toEqual([...names].sort());
  });

  it('a prefix-limited reader pages only its entries and learns only their latest seq', async () => {
    await applyObjectChangesAtomically(
      db.pool,
      [put('/a/x', 1), put('/b/y', 2), put('/a/z', 3), put('/bb/w', 4)],
      { source: 'event' },
    );
    await applyObjectChangesAtomically(db.pool, [put('/b/v', 5), put('/c/u', 6)], { source: 'event' });
    const all = await follow(100);
    const scoped = await follow(1, ['/b']);
    expect(scoped.entries.map((e) => e.path)).toEqual(['/b/y', '/b/v']);
    expect(scoped.entries.map((e) => e.seq)).toEqual(
      all.entries.filter((e) => e.path.startsWith('/b/')).map((e) => e.seq),
    );
    // `latest` for the token is its own newest entry, not the journal's (which is /c/u).
    const first = await changesSince(db.pool, 0, 1, ['/b']);
    expect(first.latest).toBe(scoped.entries[1]?.seq);
    expect(first.latest).toBeLessThan(all.latest);
  });
});

describe('migration 0040 on a database that already has a per-change journal', () => {
  it('keeps every earlier entry with its seq, and new entries sort after them', async () => {
    // Prepare: a database migrated up to (not including) 0040, with entries in the old table.
    const { cp, mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { MIGRATIONS_DIR, migrate } = await import('../../../functions/adapters/pg/migrate.ts');
    const older = await mkdtemp(join(tmpdir(), 'strata-mig-'));
    const name = `mig_${process.pid}_${Date.now()}`;
    await db.pool.query(`CREATE DATABASE ${name}`);
    const url = new URL(db.url);
    url.pathname = `/${name}`;
    const { createPool } = await import('../../../functions/adapters/pg/pool.ts');
    const pool = createPool({ connectionString: url.toString(), max: 2, statementTimeoutMs: 30_000 });
    try {
      for (const f of await readdir(MIGRATIONS_DIR))
        if (f < '0040') await cp(join(MIGRATIONS_DIR, f), join(older, f));
      await migrate(pool, { dir: older });
      await pool.query(
        `INSERT INTO changes (seq, op, path, state, etag, size, run_id) VALUES
           (5, 'put', '/old/a', 'active', 'ea', 3, NULL), (9, 'delete', '/old/b', 'deleted', NULL, 0, NULL),
           (12, 'drift', '/old/c', 'missing', NULL, NULL, 'run-1')`,
      );
      // Act: the rest of the migrations, then a new batch.
      await migrate(pool);
      const fresh = await applyObjectChangesAtomically(
        pool,
        [
          {
            kind: 'put',
            key: 'data/new/d',
            path: '/new/d',
            size: 1,
            etag: 'e',
            sequencer: '1',
            lastModified: new Date(),
          },
        ],
        { source: 'event' },
      );
      // Assess
      const journal = await changesSince(pool, 0, 10);
      expect(journal.changes.map((c) => [c.seq, c.op, c.path])).toEqual([
        [5, 'put', '/old/a'],
        [9, 'delete', '/old/b'],
        [12, 'drift', '/old/c'],
        [fresh.applied[0]?.seq, 'put', '/new/d'],
      ]);
      expect(journal.changes[0]).toMatchObject({ etag: 'ea', size: 3 });
      expect(journal.changes[2]).toMatchObject({ runId: 'run-1' });
      expect(journal.changes[2]?.size).toBeUndefined();
      expect((await changesSince(pool, 9, 1)).changes.map((c) => c.seq)).toEqual([12]);
    } finally {
      await pool.end();
      await db.pool.query(`DROP DATABASE ${name}`);
      await rm(older, { recursive: true, force: true });
    }
  });
});

describe('indexer property: the index equals the model (latest by sequencer)', () => {
  it('holds for random put/overwrite/delete sequences, duplicated and shuffled', async () => {
    const keys = ['p/a', 'p/b', 'p/q/c', 'r'];
    const op = fc.record({
      key: fc.constantFrom(...keys),
      kind: fc.constantFrom('put', 'put', 'delete'),
      size: fc.nat(1000),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer(),
        async (ops, dupIdx, batchSize, seed) => {
          await db.pool.query('TRUNCATE objects, dir_rollups, day_rollups, change_batches');
          // Sequencers increase per key in the order the ops happened; etag names the op.
          const events = ops.map((o, i) => ({ ...o, seq: i + 1, etag: `etag-${i}` }));
          const model = new Map<string, { size: number; etag: string } | null>();
          for (const e of events) model.set(e.key, e.kind === 'put' ? { size: e.size, etag: e.etag } : null);
          const delivered = [...events, ...dupIdx.map((i) => events[i % events.length]!)];
          shuffle(delivered, seed);
          etags.clear();
          for (const e of events) if (e.kind === 'put') etags.set(`data/${e.key}`, e.etag); // HEAD sees the latest
          for (let i = 0; i < delivered.length; i += batchSize) {
            const batch = delivered
              .slice(i, i + batchSize)
              .map((e) =>
                e.kind === 'put'
                  ? putEvent(`data/${e.key}`, e.seq, e.size, e.etag)
                  : deleteEvent(`data/${e.key}`, e.seq),
              );
            const { failed } = await run(batch);
            expect(failed.size).toBe(0);
          }
          let files = 0;
          let bytes = 0;
          for (const key of keys) {
            const want = model.get(key);
            const got = await getObject(db.pool, `/${key}`);
            if (want) {
              files++;
              bytes += want.size;
              expect(got).toMatchObject({ state: 'active', size: want.size, etag: want.etag });
            } else {
              expect(got === undefined || got.state === 'deleted').toBe(true);
            }
          }
          const root = await getDir(db.pool, '/');
          expect(root ? { files: root.files, bytes: root.bytes } : { files: 0, bytes: 0 }).toEqual({
            files,
            bytes,
          });
          const top = await listDir(db.pool, '/', 100);
          const expectTop = new Set<string>();
          for (const key of keys) if (model.get(key)) expectTop.add(key.split('/')[0]!);
          expect(new Set(top.entries.map((e) => e.name))).toEqual(expectTop);
        },
      ),
      { numRuns: 40 },
    );
  });
});

function shuffle<T>(items: T[], seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = items.length - 1; i > 0; i--) {
    s = (s * 1664525 + 1013904223) >>> 0;
    const j = s % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
