/**
 * One chain per shard and no endless runs, against real PostgreSQL and the local stack's queue and
 * worker: concurrent deliveries of one segment, a crash between recording and sending the
 * continuation, lease expiry, and a shard whose message fails on its last allowed receive.
 */
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ReconcileListing } from '../../../functions/adapters/aws/reconcile-listing.ts';
import { PgReconcileIndex, PgRunLedger } from '../../../functions/adapters/pg/reconcile-store.ts';
import { MemoryQueue } from '../../../functions/core/reconcile/memory.ts';
import type { ReconcileListing } from '../../../functions/core/reconcile/ports.ts';
import { runSegment, type SegmentOptions } from '../../../functions/core/reconcile/segment.ts';
import type { ReconcileRun, ShardMessage } from '../../../functions/core/reconcile/types.ts';
import { reconcileWiring, setReconcileWiring } from '../../../functions/handlers/reconcile-wiring.ts';
import { MAX_RECEIVE_COUNT } from '../../../functions/handlers/reconcile-worker.ts';
import { type Harness, journalCount, keyOf, putObjects, startHarness, stateOf } from './helpers.ts';

let h: Harness;
let ledger: PgRunLedger;

beforeAll(async () => {
  // A 1 s visibility timeout: a failing message reaches its last receive within seconds.
  h = await startHarness('claims', {}, { visibilityTimeoutSeconds: 1 });
  ledger = new PgRunLedger(h.stack.pool, h.stack.dev.dataPrefix);
});
afterAll(async () => {
  await h?.stop();
});

/** A run over `dir` with one shard, and segment 0 of that shard. */
async function oneShardRun(dir: string): Promise<ShardMessage> {
  const runId = await ledger.create({ scope: dir, dryRun: false, graceSeconds: 0, trigger: 'api' });
  await ledger.setShards(runId, 1);
  return {
    v: 1,
    runId,
    shardId: 0,
    segment: 0,
    range: { prefix: `${keyOf(h, dir)}/` },
    dryRun: false,
    graceSeconds: 0,
  };
}

function segmentDeps(queue: MemoryQueue) {
  return {
    listing: new S3ReconcileListing(h.stack.s3, { bucket: h.stack.dev.bucket }),
    index: new PgReconcileIndex(h.stack.pool, { dataPrefix: h.stack.dev.dataPrefix }),
    ledger,
    queue,
  };
}

/** Options whose budget runs out after `pages` + 1 pages of 4 keys. */
function stopAfter(pages: number): SegmentOptions {
  let budget = pages;
  return {
    dataPrefix: h.stack.dev.dataPrefix,
    pageSize: 4,
    reserveMs: 1000,
    leaseMs: 300_000,
    remainingMs: () => (budget-- > 0 ? 60_000 : 0),
  };
}

const files = (dir: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${dir}/f${String(i).padStart(3, '0')}`);

describe('reconcile segment claims', () => {
  it('two concurrent deliveries of the same message: one does the work, one continuation is sent', async () => {
    // Prepare
    await putObjects(h, files('/twice', 20));
    const message = await oneShardRun('/twice');
    const queue = new MemoryQueue();
    // Act: the same message delivered twice at the same moment
    const [a, b] = await Promise.all([
      runSegment(message, segmentDeps(queue), stopAfter(1)),
      runSegment(message, segmentDeps(queue), stopAfter(1)),
    ]);
    // Assess
    expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);
    const worker = a.duplicate ? b : a;
    expect(queue.messages).toEqual([worker.next]);
    expect(worker.next).toMatchObject({ segment: 1, after: keyOf(h, '/twice/f007') });
    expect(await journalCount(h, message.runId)).toBe(8);
    // The single chain finishes the shard; counts are recorded once
    for (let m = queue.take(); m; m = queue.take()) await runSegment(m, segmentDeps(queue), stopAfter(100));
    expect(await ledger.get(message.runId)).toMatchObject({
      status: 'succeeded',
      shards: { total: 1, done: 1 },
      counts: { scanned: 20, added: 20 },
    });
    expect(await journalCount(h, message.runId)).toBe(20);
  });

  it('a crash between recording a segment and sending its continuation: the redelivery re-sends it once', async () => {
    // Prepare: the first delivery records segment 0 and dies before the send
    await putObjects(h, files('/crash', 12));
    const message = await oneShardRun('/crash');
    const failing = new MemoryQueue();
    failing.send = async () => {
      throw new Error('worker killed before the send');
    };
    await expect(runSegment(message, segmentDeps(failing), stopAfter(1))).rejects.toThrow(/killed/);
    // Act: redelivered, with a different budget (a re-run would stop at a different key)
    const queue = new MemoryQueue();
    const redelivered = await runSegment(message, segmentDeps(queue), stopAfter(0));
    // Assess: the recorded continuation, not a new one
    expect(redelivered.duplicate).toBe(true);
    expect(queue.messages).toEqual([expect.objectContaining({ segment: 1, after: keyOf(h, '/crash/f007') })]);
    const next = queue.take() as ShardMessage;
    await runSegment(next, segmentDeps(queue), stopAfter(100));
    // A further redelivery of segment 0 sends nothing: segment 1 was taken
    await runSegment(message, segmentDeps(queue), stopAfter(100));
    expect(queue.messages).toHaveLength(0);
    expect(await ledger.get(message.runId)).toMatchObject({
      status: 'succeeded',
      counts: { scanned: 12, added: 12 },
    });
  });

  it('an unexpired claim turns a second delivery away; an expired one is retaken', async () => {
    const message = await oneShardRun('/lease');
    const first = await ledger.claimSegment(message, 300_000);
    expect(first.status).toBe('claimed');
    expect(await ledger.claimSegment(message, 300_000)).toEqual({ status: 'busy' });
    // A claim that has expired (a crashed worker's, after the worker timeout) is taken over
    const other = await oneShardRun('/lease2');
    expect((await ledger.claimSegment(other, 0)).status).toBe('claimed');
    expect((await ledger.claimSegment(other, 300_000)).status).toBe('claimed');
    // A released claim is free at once
    if (first.status !== 'claimed') throw new Error('unreachable');
    await ledger.releaseSegment(message, first.lease);
    expect((await ledger.claimSegment(message, 300_000)).status).toBe('claimed');
  });
});

describe('a shard whose message keeps failing', () => {
  it('fails the run on its last allowed receive; the run reports the failed shard', async () => {
    // Prepare: listing under /doomed always fails (S3 access denied on that prefix, say)
    await putObjects(h, ['/doomed/a', '/fine/b']);
    const real = reconcileWiring().listing;
    const doomed = keyOf(h, '/doomed');
    const failing: ReconcileListing = {
      listPage: (r) =>
        r.prefix.startsWith(doomed)
          ? Promise.reject(new Error('AccessDenied on the doomed prefix'))
          : real.listPage(r),
      commonPrefixes: (p) => real.commonPrefixes(p),
      head: (k) => real.head(k),
    };
    setReconcileWiring({ listing: failing });
    try {
      // Act: through the API, the queue and the worker, as `strata reconcile --wait` runs it
      const started = await h.api.request<ReconcileRun>('POST', '/v1/reconcile', {
        body: { prefix: '/doomed', graceSeconds: 0 },
      });
      await h.stack.drain(60_000);
      const run = await h.api.request<ReconcileRun>('GET', `/v1/reconcile/${started.id}`);
      // Assess
      expect(run).toMatchObject({
        status: 'failed',
        failedShards: [{ shardId: 0, segment: 0, attempts: MAX_RECEIVE_COUNT }],
      });
      expect(run.error).toMatch(/shard 0 failed at segment 0 after 5 attempts.*AccessDenied/);
      expect(run.finishedAt).toBeDefined();
      expect(await ledger.running(86_400)).not.toBe(started.id); // the scheduler is not held off
      const dlq = await h.stack.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: h.stack.queues.reconcileDlq, MaxNumberOfMessages: 10 }),
      );
      expect(dlq.Messages?.map((m) => (JSON.parse(m.Body ?? '{}') as ShardMessage).runId)).toContain(
        started.id,
      );
    } finally {
      setReconcileWiring({ listing: real });
    }
    // The failed shard indexed nothing
    expect(await stateOf(h, '/doomed/a')).toBeUndefined();
  });
});
