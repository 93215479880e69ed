/**
 * Reconcile against the local stack (real PostgreSQL, fauxqs S3 + SQS, notifications off): drift
 * written behind the index is healed through the API → planner → queue → worker path.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ReconcileListing } from '../../../functions/adapters/aws/reconcile-listing.ts';
import { PgReconcileIndex, PgRunLedger } from '../../../functions/adapters/pg/reconcile-store.ts';
import { MemoryQueue } from '../../../functions/core/reconcile/memory.ts';
import { runSegment } from '../../../functions/core/reconcile/segment.ts';
import type { ShardMessage } from '../../../functions/core/reconcile/types.ts';
import {
  deleteObjects,
  type Harness,
  indexAsEvent,
  journalCount,
  keyOf,
  putObjects,
  runAndWait,
  startHarness,
  stateOf,
} from './helpers.ts';

let h: Harness;

beforeAll(async () => {
  // Small pages so every test crosses many page boundaries.
  h = await startHarness('drift', { STRATA_RECONCILE_PAGE_SIZE: '7' });
});
afterAll(async () => {
  await h?.stop();
});

describe('reconcile heals drift', () => {
  it('objects put and deleted directly in S3 are healed after a run; counts are right', async () => {
    // Prepare: 20 objects indexed by a first run, then changed behind the index's back
    const base = Array.from({ length: 20 }, (_, i) => `/drift/d${i % 3}/f${String(i).padStart(2, '0')}.txt`);
    await putObjects(h, base);
    const first = await runAndWait(h, { prefix: '/drift' });
    expect(first.counts).toMatchObject({ scanned: 20, added: 20, missing: 0 });
    await putObjects(h, ['/drift/d0/new one.txt', '/drift/new/😀 #1.txt']);
    await deleteObjects(h, ['/drift/d1/f01.txt', '/drift/d2/f02.txt']);
    await putObjects(h, ['/drift/d0/f03.txt'], () => 'overwritten with different bytes');
    // Act
    const run = await runAndWait(h, { prefix: '/drift' });
    // Assess
    expect(run.counts).toMatchObject({
      scanned: 20,
      added: 2,
      missing: 2,
      refreshed: 1,
      unchanged: 17,
      deleted: 0,
    });
    expect(await stateOf(h, '/drift/new/😀 #1.txt')).toBe('active');
    expect(await stateOf(h, '/drift/d1/f01.txt')).toBe('missing');
    const { rows } = await h.stack.pool.query(
      'SELECT size::int AS size, source, run_id FROM objects WHERE path = $1',
      ['/drift/d0/f03.txt'],
    );
    expect(rows[0]).toEqual({
      size: 'overwritten with different bytes'.length,
      source: 'drift',
      run_id: run.id,
    });
    // Every heal is journalled as a drift event carrying the run id
    const { rows: journal } = await h.stack.pool.query('SELECT op FROM changes WHERE run_id = $1', [run.id]);
    expect(journal).toHaveLength(5);
    expect(journal.every((j) => j.op === 'drift')).toBe(true);
    // A later run confirms the deletions
    const third = await runAndWait(h, { prefix: '/drift' });
    expect(third.counts).toMatchObject({ deleted: 2, missing: 0, added: 0, unchanged: 20 });
    expect(await stateOf(h, '/drift/d1/f01.txt')).toBe('deleted');
  });

  it('a lost event (object exists, no event delivered) is indexed', async () => {
    await putObjects(h, ['/lost/report 2024.csv']);
    expect(await stateOf(h, '/lost/report 2024.csv')).toBeUndefined();
    const run = await runAndWait(h, { prefix: '/lost' });
    expect(run.counts).toMatchObject({ added: 1 });
    expect(await stateOf(h, '/lost/report 2024.csv')).toBe('active');
  });

  it('in-flight race: an object indexed moments ago but absent from the listing is not marked missing', async () => {
    // Prepare: the indexer has just written a row (its object not in this listing snapshot)
    await indexAsEvent(h, '/race/just-now.bin', 'abc', 3);
    // Act: a run with a grace period, as scheduled runs have
    const run = await runAndWait(h, { prefix: '/race', graceSeconds: 60 });
    // Assess
    expect(run.counts).toMatchObject({ missing: 0, skippedRecent: 1 });
    expect(await stateOf(h, '/race/just-now.bin')).toBe('active');
  });

  it('continues across pages and a re-enqueue; redelivering a shard message changes nothing more', async () => {
    // Prepare: 40 objects in one flat directory (one shard), none indexed
    const paths = Array.from({ length: 40 }, (_, i) => `/pages/p${String(i).padStart(3, '0')}`);
    await putObjects(h, paths);
    const ledger = new PgRunLedger(h.stack.pool, h.stack.dev.dataPrefix);
    const runId = await ledger.create({ scope: '/pages', dryRun: false, graceSeconds: 0, trigger: 'api' });
    await ledger.setShards(runId, 1);
    const queue = new MemoryQueue();
    const deps = {
      listing: new S3ReconcileListing(h.stack.s3, { bucket: h.stack.dev.bucket }),
      index: new PgReconcileIndex(h.stack.pool, { dataPrefix: h.stack.dev.dataPrefix, batchSize: 4 }),
      ledger,
      queue,
    };
    const message: ShardMessage = {
      v: 1,
      runId,
      shardId: 0,
      segment: 0,
      range: { prefix: `${keyOf(h, '/pages')}/` },
      dryRun: false,
      graceSeconds: 0,
    };
    // Act: the budget runs out after two pages of 6
    let pagesLeft = 2;
    const opts = {
      dataPrefix: h.stack.dev.dataPrefix,
      pageSize: 6,
      reserveMs: 1000,
      leaseMs: 300_000,
      remainingMs: () => (pagesLeft-- > 0 ? 60_000 : 0),
    };
    const first = await runSegment(message, deps, opts);
    const next = queue.take() as ShardMessage;
    expect(next).toMatchObject({ segment: 1, after: keyOf(h, '/pages/p017') });
    expect(next.continuationToken).toBeTruthy();
    // The continuation goes through the real queue and worker
    await h.stack.sqs.send(
      new SendMessageCommand({ QueueUrl: h.stack.queues.reconcile, MessageBody: JSON.stringify(next) }),
    );
    await h.stack.drain(60_000);
    const journalAfter = await journalCount(h, runId);
    const runAfter = await ledger.get(runId);
    // Redeliver both messages
    for (const m of [message, next]) {
      await h.stack.sqs.send(
        new SendMessageCommand({ QueueUrl: h.stack.queues.reconcile, MessageBody: JSON.stringify(m) }),
      );
    }
    await h.stack.drain(60_000);
    // Assess
    expect(first.pages).toBe(3);
    expect(runAfter).toMatchObject({ status: 'succeeded', counts: { scanned: 40, added: 40 } });
    expect(await journalCount(h, runId)).toBe(journalAfter);
    expect(await ledger.get(runId)).toEqual(runAfter);
    expect(await stateOf(h, '/pages/p039')).toBe('active');
  });

  it('the scheduled planner starts a run over the whole data prefix', async () => {
    const out = (await h.stack.invoke('reconcilePlanner', { source: 'aws.events' })) as {
      runId: string;
      shards: number;
    };
    expect(out.shards).toBeGreaterThan(0);
    await h.stack.drain(60_000);
    const run = await h.api.request<{ status: string; trigger: string; scope: string; graceSeconds: number }>(
      'GET',
      `/v1/reconcile/${out.runId}`,
    );
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'schedule', scope: '/', graceSeconds: 900 });
  });
});
