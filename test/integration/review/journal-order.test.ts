/**
 * Review of the journal sequenced by transaction id (migration 0013): a /v1/changes reader must
 * never permanently skip an entry committed late by a concurrent transaction, and a write bigger
 * than the per-transaction journal range (4,096 entries) must not fail or lose data.
 * Real PostgreSQL, two real connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyObjectChanges,
  applyObjectChangesAtomically,
  changesSince,
} from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { PgReconcileIndex } from '../../../functions/adapters/pg/reconcile-store.ts';
import type { ObjectChange } from '../../../functions/core/index-apply.ts';
import type { Heal } from '../../../functions/core/reconcile/ports.ts';
import { normalizeSequencer } from '../../../functions/core/sequencer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

let db: TestDb;
beforeAll(async () => {
  db = await startTestDb();
});
afterAll(async () => {
  await db?.stop();
});

const put = (path: string, etag = 'e1'): ObjectChange => ({
  kind: 'put',
  key: `data${path}`,
  path,
  size: 3,
  etag,
  lastModified: new Date('2026-01-02T00:00:00Z'),
});

describe('journal commit-order cut-off', () => {
  it('an entry committed late by an earlier transaction is not skipped by a reader', async () => {
    const start = (await changesSince(db.pool, 0, 1000)).latest;
    const t1 = await db.pool.connect();
    try {
      await t1.query('BEGIN');
      // T1 writes first (takes the lower xid) but commits last.
      await applyObjectChanges(t1, [put('/race/t1.txt')], { source: 'event' });
      // T2 writes and commits on another connection.
      await applyObjectChangesAtomically(db.pool, [put('/race/t2.txt')], { source: 'event' });

      const first = await changesSince(db.pool, start, 1000);
      const seen = first.changes.map((c) => c.path);
      // T2's entry sits above T1's running xid: not readable yet (else the cursor would pass T1).
      expect(seen).not.toContain('/race/t1.txt');
      expect(seen).not.toContain('/race/t2.txt');
      // The poller moves its cursor exactly as the mount client does.
      const cursor = first.changes.at(-1)?.seq ?? Math.max(start, first.latest);

      await t1.query('COMMIT');
      const second = await changesSince(db.pool, cursor, 1000);
      const paths = second.changes.map((c) => c.path);
      expect(paths).toEqual(['/race/t1.txt', '/race/t2.txt']);
      expect(second.latest).toBe(second.changes.at(-1)?.seq);
    } finally {
      t1.release();
    }
  });

  it('a transaction that takes its xid after a reader snapshot still lands above the cursor', async () => {
    const start = (await changesSince(db.pool, 0, 1000)).latest;
    const t1 = await db.pool.connect();
    try {
      await t1.query('BEGIN');
      await t1.query('SELECT 1'); // open, but no xid yet
      await applyObjectChangesAtomically(db.pool, [put('/late/a.txt')], { source: 'event' });
      const first = await changesSince(db.pool, start, 1000);
      expect(first.changes.map((c) => c.path)).toEqual(['/late/a.txt']);
      await applyObjectChanges(t1, [put('/late/b.txt')], { source: 'event' });
      await t1.query('COMMIT');
      const second = await changesSince(db.pool, first.latest, 1000);
      expect(second.changes.map((c) => c.path)).toEqual(['/late/b.txt']);
    } finally {
      t1.release();
    }
  });
});

/** Waits until `call` has finished or is blocked on a row lock. */
async function finishedOrBlocked(call: Promise<unknown>) {
  let done = false;
  const mark = () => {
    done = true;
  };
  void call.then(mark, mark);
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

describe('journal order of one path', () => {
  // seq comes from the writer's xid, assigned when its statement starts, but rows are locked later:
  // T1 (older xid) can wait on another row while T2 (newer xid) updates and commits path P. Were
  // T1 then to update P, its entry would sort BEFORE T2's and a replaying reader (last entry per
  // path wins) would end on T2's stale etag. strata_apply_changes now fails such a batch with
  // 40001 and the caller retries it under a newer xid.
  it('the last journal entry of a path names the version the index holds', async () => {
    const seqOf = (n: number) => normalizeSequencer(n.toString(16));
    const put2 = (path: string, etag: string, seq: number): ObjectChange => ({
      ...(put(path, etag) as Extract<ObjectChange, { kind: 'put' }>),
      sequencer: seqOf(seq),
    });
    await applyObjectChangesAtomically(db.pool, [put2('/ord/a', 'a1', 1), put2('/ord/p', 'p1', 1)], {
      source: 'event',
    });
    const start = (await changesSince(db.pool, 0, 1)).latest;
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM objects WHERE path = '/ord/a' FOR UPDATE`);
      // T1: takes its xid, then waits on /ord/a (locked in path order before /ord/p).
      const t1 = applyObjectChangesAtomically(db.pool, [put2('/ord/a', 'a3', 3), put2('/ord/p', 'p3', 3)], {
        source: 'event',
      });
      await finishedOrBlocked(t1);
      // T2 (newer xid): an older event for /ord/p, applied and committed while T1 waits.
      await applyObjectChangesAtomically(db.pool, [put2('/ord/p', 'p2', 2)], { source: 'event' });
      await holder.query('COMMIT');
      await t1;
    } finally {
      holder.release();
    }
    const { rows } = await db.pool.query<{ etag: string }>(`SELECT etag FROM objects WHERE path = '/ord/p'`);
    expect(rows[0]?.etag).toBe('p3'); // sequencer 3 won: this part holds
    const feed = await changesSince(db.pool, start, 1000);
    const last = feed.changes.filter((c) => c.path === '/ord/p').at(-1);
    expect(last?.etag).toBe('p3'); // fails today: the journal ends on p2
  });
});

describe('journal entries per transaction', () => {
  it('one transaction refuses more than 4,096 entries with a clear error (callers must chunk)', async () => {
    const many = Array.from({ length: 4097 }, (_, i) => put(`/cap/one/f${String(i).padStart(5, '0')}`));
    await expect(
      withTransaction(db.pool, (c) => applyObjectChanges(c, many, { source: 'drift', runId: 'r0' }), {
        retries: 0,
      }),
    ).rejects.toThrow(/at most 4096/);
  });

  it('a reconcile apply bigger than 4,096 heals applies and journals every one', async () => {
    const index = new PgReconcileIndex(db.pool, { dataPrefix: 'data/' });
    const n = 4_500;
    const heals: Heal[] = Array.from({ length: n }, (_, i) => ({
      op: 'put',
      key: `data/cap/big/f${String(i).padStart(5, '0')}`,
      object: {
        key: `data/cap/big/f${String(i).padStart(5, '0')}`,
        size: 1,
        etag: `"e${i}"`,
        lastModified: new Date('2026-01-02T00:00:00Z'),
      },
    }));
    const before = (await changesSince(db.pool, 0, 1)).latest;
    const { skipped } = await index.apply(heals, { runId: 'big', cutoff: new Date(0) });
    expect(skipped).toEqual([]);
    const { rows } = await db.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM objects WHERE path LIKE '/cap/big/%' AND state = 'active'`,
    );
    expect(Number(rows[0]?.n)).toBe(n);
    // Every heal is journalled, in order, and readable through the changes feed.
    const seen: string[] = [];
    let since = before;
    for (;;) {
      const page = await changesSince(db.pool, since, 1000);
      if (page.changes.length === 0) break;
      seen.push(...page.changes.filter((c) => c.path.startsWith('/cap/big/')).map((c) => c.path));
      since = page.changes.at(-1)?.seq ?? since;
    }
    expect(seen.length).toBe(n);
    expect(new Set(seen).size).toBe(n);
  });
});
