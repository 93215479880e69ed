import { beforeEach, describe, expect, it } from 'vitest';
import {
  MemoryIndex,
  MemoryLedger,
  MemoryListing,
  MemoryQueue,
} from '../../../functions/core/reconcile/memory.ts';
import { startRun } from '../../../functions/core/reconcile/plan.ts';
import { runSegment, type SegmentOptions } from '../../../functions/core/reconcile/segment.ts';
import type { ReconcileRun, ShardMessage } from '../../../functions/core/reconcile/types.ts';

const HOUR = 3_600_000;
let listing: MemoryListing;
let index: MemoryIndex;
let ledger: MemoryLedger;
let queue: MemoryQueue;
const options = (over: Partial<SegmentOptions> = {}): SegmentOptions => ({
  dataPrefix: 'data/',
  pageSize: 3,
  remainingMs: () => 60_000,
  reserveMs: 1000,
  leaseMs: 300_000,
  ...over,
});
const message = (over: Partial<ShardMessage> = {}): ShardMessage => ({
  v: 1,
  runId: 'run1',
  shardId: 0,
  segment: 0,
  range: { prefix: 'data/' },
  dryRun: false,
  graceSeconds: 60,
  ...over,
});
const deps = () => ({ listing, index, ledger, queue });

beforeEach(() => {
  listing = new MemoryListing();
  index = new MemoryIndex();
  ledger = new MemoryLedger();
  queue = new MemoryQueue();
});

describe('runSegment', () => {
  it('heals objects written and deleted behind the index, and counts them', async () => {
    // Prepare: an index an hour old; then S3 changed without events
    for (const k of ['a', 'b', 'c', 'd', 'e']) {
      listing.put(`data/${k}`, 'e1', 10);
      index.set(`data/${k}`, 'e1', 10);
    }
    index.tick(HOUR);
    listing.put('data/new1', 'n', 5); // put directly in S3
    listing.put('data/z/new2', 'n', 5);
    listing.delete('data/b'); // deleted directly in S3
    listing.put('data/c', 'e2', 11); // overwritten directly in S3
    // Act
    const result = await runSegment(message(), deps(), options());
    // Assess
    expect(result.counts).toMatchObject({
      scanned: 6,
      added: 2,
      missing: 1,
      refreshed: 1,
      unchanged: 3,
      deleted: 0,
    });
    expect(index.rows.get('data/new1')).toMatchObject({ state: 'active', etag: 'n', healedBy: 'run1' });
    expect(index.rows.get('data/b')?.state).toBe('missing');
    expect(index.rows.get('data/c')).toMatchObject({ etag: 'e2', size: 11 });
    expect(listing.calls.head).toBe(1); // only the changed object is re-read
    expect(ledger.totals('run1')).toEqual(result.counts);
    expect(index.journal.every((j) => j.runId === 'run1')).toBe(true);
  });

  it('marks a missing row deleted on a later run, once past the grace period', async () => {
    index.set('data/gone', 'e', 1);
    index.tick(HOUR);
    await runSegment(message(), deps(), options());
    expect(index.rows.get('data/gone')?.state).toBe('missing');
    // A second run right away: the row was flagged after its listing started minus grace
    const again = await runSegment(message({ runId: 'run2' }), deps(), options());
    expect(again.counts).toMatchObject({ skippedRecent: 1, deleted: 0 });
    index.tick(HOUR);
    const later = await runSegment(message({ runId: 'run3' }), deps(), options());
    expect(later.counts.deleted).toBe(1);
    expect(index.rows.get('data/gone')?.state).toBe('deleted');
  });

  it('does not race in-flight events: a row indexed moments ago but not listed is left alone', async () => {
    // Prepare: indexed by an event 5 s ago, not (yet) in the listing snapshot; an overwrite indexed
    // 5 s ago with an etag the listing does not show yet
    listing.put('data/old', 'v1', 1);
    index.set('data/fresh', 'e', 1, 'active', new Date(index.clock - 5000));
    index.set('data/old', 'v2', 2, 'active', new Date(index.clock - 5000));
    // Act
    const result = await runSegment(message({ graceSeconds: 60 }), deps(), options());
    // Assess
    expect(result.counts).toMatchObject({ skippedRecent: 2, missing: 0, refreshed: 0 });
    expect(index.rows.get('data/fresh')?.state).toBe('active');
    expect(index.rows.get('data/old')?.etag).toBe('v2');
  });

  it('re-checks the guard at write time when a row changes between read and write', async () => {
    index.set('data/x', 'e', 1, 'active', new Date(index.clock - HOUR));
    const realApply = index.apply.bind(index);
    index.apply = async (heals, ctx) => {
      index.set('data/x', 'e', 1, 'active', new Date(index.clock)); // the indexer wins the race
      return realApply(heals, ctx);
    };
    const result = await runSegment(message(), deps(), options());
    expect(result.counts).toMatchObject({ missing: 0, skippedRecent: 1 });
    expect(index.rows.get('data/x')?.state).toBe('active');
  });

  it('continues across pages and across a re-enqueue, and redelivery changes nothing more', async () => {
    // Prepare: 20 objects in S3, none indexed; the budget runs out after 2 pages
    for (let n = 0; n < 20; n++) listing.put(`data/f${String(n).padStart(2, '0')}`, 'e', n);
    for (let n = 0; n < 20; n += 4)
      index.set(`data/f${String(n).padStart(2, '0')}x`, 'e', 1, 'active', new Date(0));
    let budget = 2;
    const opts = options({ remainingMs: () => (budget-- > 0 ? 60_000 : 0) });
    // Act: segment 0 stops early and enqueues segment 1
    const first = await runSegment(message(), deps(), opts);
    expect(first.next).toMatchObject({ segment: 1, after: 'data/f08' });
    const next = queue.take() as ShardMessage;
    const second = await runSegment(next, deps(), options());
    const redelivered = await runSegment(next, deps(), options());
    // Assess
    expect(first.pages).toBe(3);
    expect(second.next).toBeUndefined();
    expect(redelivered.duplicate).toBe(true);
    const totals = ledger.totals('run1');
    expect(totals).toMatchObject({ scanned: 20, added: 20, missing: 5 });
    expect([...index.rows.values()].filter((r) => r.state === 'active')).toHaveLength(20);
    expect(queue.messages).toHaveLength(0);
  });

  it('dry run reports what would change and writes nothing', async () => {
    listing.put('data/a', 'e', 1);
    listing.put('data/b', 'changed', 1);
    index.set('data/b', 'e', 1, 'active', new Date(0));
    index.set('data/c', 'e', 1, 'active', new Date(0));
    const result = await runSegment(message({ dryRun: true }), deps(), options());
    expect(result.counts).toMatchObject({ added: 1, refreshed: 1, missing: 1 });
    expect(index.calls.apply).toBe(0);
    expect(listing.calls.head).toBe(0);
    expect(index.rows.get('data/c')?.state).toBe('active');
    expect(index.rows.has('data/a')).toBe(false);
  });

  it('ignores keys no Strata path maps to (folder markers, non-NFC names)', async () => {
    listing.put('data/dir/', 'e', 0);
    listing.put('data/cafe\u0301', 'e', 1); // NFD
    listing.put('data/ok', 'e', 1);
    const result = await runSegment(message(), deps(), options());
    expect(result.counts).toMatchObject({ scanned: 3, ignored: 2, added: 1 });
  });

  it('shards of a planned run together cover the bucket exactly once', async () => {
    // Prepare
    const keys = [
      'data/a',
      'data/a/1',
      'data/b.txt',
      'data/b/1',
      'data/b/2',
      'data/c/x/y',
      'data/😀/1',
      'data/\uff5e/1',
    ];
    for (const k of keys) listing.put(k, 'e', 1);
    const runs: ReconcileRun[] = [];
    const recorder = {
      create: async () => 'runP',
      setShards: async (_id: string, total: number) => void runs.push({ shards: { total } } as ReconcileRun),
      fail: async () => {},
      get: async () => undefined,
    };
    // Act
    const { shards } = await startRun(
      { trigger: 'api', graceSeconds: 0 },
      { listing, runs: recorder, queue },
      { dataPrefix: 'data/', maxShards: 3 },
    );
    for (let m = queue.take(); m; m = queue.take()) await runSegment(m, deps(), options({ pageSize: 2 }));
    // Assess
    expect(shards.length).toBe(3);
    expect(ledger.totals('runP')).toMatchObject({ scanned: keys.length, added: keys.length });
    expect(index.journal).toHaveLength(keys.length);
    expect(ledger.shardsDone.size).toBe(3);
  });
});

describe('runSegment claims: one chain per shard', () => {
  /** 20 unindexed objects; the budget runs out after `pages` pages, so segment 0 continues. */
  const prepare = () => {
    for (let n = 0; n < 20; n++) listing.put(`data/f${String(n).padStart(2, '0')}`, 'e', n);
  };
  const stopAfter = (pages: number) => {
    let budget = pages;
    return options({ remainingMs: () => (budget-- > 0 ? 60_000 : 0) });
  };

  it('two concurrent deliveries of the same message: one works, the other acks; one continuation', async () => {
    prepare();
    // Act: the same message delivered twice at once (SQS at-least-once)
    const [a, b] = await Promise.all([
      runSegment(message(), deps(), stopAfter(1)),
      runSegment(message(), deps(), stopAfter(1)),
    ]);
    // Assess
    expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);
    const worker = a.duplicate ? b : a;
    expect(queue.messages).toEqual([worker.next]);
    expect(index.calls.apply).toBe(worker.pages); // only one delivery listed and wrote
    expect(ledger.totals('run1')).toEqual(worker.counts);
    // The chain then completes once
    for (let m = queue.take(); m; m = queue.take()) await runSegment(m, deps(), options());
    expect(ledger.totals('run1')).toMatchObject({ scanned: 20, added: 20 });
    expect(ledger.shardsDone.size).toBe(1);
  });

  it('a crash after recording, before sending: the redelivery re-sends that very continuation, once', async () => {
    prepare();
    const realSend = queue.send.bind(queue);
    queue.send = async () => {
      throw new Error('worker crashed before the send');
    };
    await expect(runSegment(message(), deps(), stopAfter(2))).rejects.toThrow(/crashed/);
    queue.send = realSend;
    const recorded = ledger.segments.get('run1/0/0')?.next;
    expect(recorded).toMatchObject({ segment: 1, after: 'data/f08' });
    // Act: the message is redelivered with a different budget; it must not re-run the segment
    const redelivered = await runSegment(message(), deps(), stopAfter(1));
    // Assess
    expect(redelivered).toMatchObject({ duplicate: true, resent: recorded });
    expect(queue.messages).toEqual([recorded]);
    expect(index.calls.apply).toBe(3); // only the crashed delivery's three pages wrote
    // Once segment 1 is taken, another redelivery of segment 0 sends nothing more
    await runSegment(queue.take() as ShardMessage, deps(), options());
    const again = await runSegment(message(), deps(), options());
    expect(again.resent).toBeUndefined();
    expect(queue.messages).toHaveLength(0);
    expect(ledger.totals('run1')).toMatchObject({ scanned: 20, added: 20 });
  });

  it('a crashed worker’s claim holds until its lease expires, then the redelivery takes over', async () => {
    prepare();
    // A delivery claimed the segment and died without recording anything
    expect(await ledger.claimSegment(message(), 300_000)).toMatchObject({ status: 'claimed' });
    const early = await runSegment(message(), deps(), options());
    expect(early).toMatchObject({ duplicate: true, pages: 0 });
    expect(index.calls.apply).toBe(0);
    ledger.clock += 300_001; // the lease (the worker's timeout) has run out
    const late = await runSegment(message(), deps(), options());
    expect(late).toMatchObject({ duplicate: false, counts: { added: 20 } });
  });

  it('a failed delivery gives its claim back, so the retry works at once', async () => {
    prepare();
    const realList = listing.listPage.bind(listing);
    listing.listPage = async () => {
      throw new Error('S3 throttled');
    };
    await expect(runSegment(message(), deps(), options())).rejects.toThrow(/throttled/);
    listing.listPage = realList;
    const retry = await runSegment(message(), deps(), options());
    expect(retry).toMatchObject({ duplicate: false, counts: { added: 20 } });
  });

  it('segments of a failed run do nothing', async () => {
    prepare();
    await ledger.failShard(message({ shardId: 1 }), { attempts: 5, error: 'boom' });
    const result = await runSegment(message(), deps(), options());
    expect(result).toMatchObject({ duplicate: true, pages: 0 });
    expect(listing.calls.listPage).toBe(0);
  });
});
