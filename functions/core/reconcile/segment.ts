/**
 * One segment of a shard: what a reconcile worker does with one queue message.
 *
 * Page by page: list up to `pageSize` keys, read the index rows covering exactly the same key span
 * (after the previous page's last key, up to this page's last key — or to the shard's end on the
 * last page), merge-join them, decide heals, apply them in one transaction. Memory is one page plus
 * one index batch, whatever the shard holds.
 *
 * Between pages the worker checks its time budget; when too little is left it sends the next
 * segment (same shard, `after` = last reconciled key, the S3 continuation token) and stops.
 *
 * Exactly one chain per shard: the segment is claimed (a lease in the ledger) before any work, so
 * a second delivery of the same message — SQS delivers at least once — acks without work while
 * the first holds the lease, and finds the segment recorded afterwards. The continuation is
 * recorded with the segment's counts in one transaction and sent after it (an outbox): a crash
 * between the commit and the send is repaired by the redelivered message, which re-sends that
 * very continuation instead of re-running the segment with a different resume point. A crash
 * before the commit leaves only the lease, which expires with the worker Lambda's timeout —
 * before the queue's visibility timeout brings the message back.
 */
import { pathForKey } from '../paths.ts';
import { mergeJoin } from './diff.ts';
import { decideHeal, type HealAction, tally } from './heal.ts';
import { compareKeys, startAfterFor } from './key-order.ts';
import type { Heal, ReconcileIndex, ReconcileListing, RunLedger, Sample, ShardQueue } from './ports.ts';
import { inRange } from './shards.ts';
import { emptyCounts, type ListedObject, type ReconcileCounts, type ShardMessage } from './types.ts';

export interface SegmentOptions {
  dataPrefix: string;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000; tests use a handful to exercise paging). */
  pageSize: number;
  /** Milliseconds the invocation has left (Lambda context.getRemainingTimeInMillis). */
  remainingMs: () => number;
  /** Stop and re-enqueue when less than this is left: room for one more page and its heals. */
  reserveMs: number;
  /** Samples of changes kept per segment for the run report. */
  maxSamples?: number;
  /**
   * How long a claim on the segment holds: the worker Lambda's timeout, the longest one delivery
   * can run. Shorter would let a duplicate delivery run concurrently; longer than the queue's
   * visibility timeout would make the redelivery after a crash find the dead claim and drop it.
   */
  leaseMs: number;
}

export interface SegmentDeps {
  listing: ReconcileListing;
  index: ReconcileIndex;
  ledger: RunLedger;
  queue: ShardQueue;
}

export interface SegmentResult {
  /**
   * Another delivery holds or has recorded this segment, or the run is over: nothing was done
   * (except re-sending a recorded continuation, see `resent`).
   */
  duplicate: boolean;
  /** A recorded continuation that had not been picked up, sent again (crash after commit). */
  resent?: ShardMessage;
  counts: ReconcileCounts;
  pages: number;
  /** The message sent to continue this shard, when the budget ran out. */
  next?: ShardMessage;
}

export async function runSegment(
  message: ShardMessage,
  deps: SegmentDeps,
  options: SegmentOptions,
): Promise<SegmentResult> {
  const counts = emptyCounts();
  const claim = await deps.ledger.claimSegment(message, options.leaseMs);
  if (claim.status !== 'claimed') {
    if (claim.status === 'done' && claim.resend) {
      await deps.queue.send([claim.resend]);
      return { duplicate: true, counts, pages: 0, resent: claim.resend };
    }
    return { duplicate: true, counts, pages: 0 };
  }
  try {
    return await work(message, deps, options, counts);
  } catch (err) {
    // Give the claim back so the retried delivery can take it at once (best effort: the lease
    // expires on its own anyway).
    await deps.ledger.releaseSegment(message, claim.lease).catch(() => undefined);
    throw err;
  }
}

async function work(
  message: ShardMessage,
  deps: SegmentDeps,
  options: SegmentOptions,
  counts: ReconcileCounts,
): Promise<SegmentResult> {
  const { range, runId, dryRun } = message;
  const maxSamples = options.maxSamples ?? 20;
  const samples: Sample[] = [];
  // Listing start on the database clock, minus grace: rows changed later are left alone.
  const listingStart = await deps.index.now();
  const cutoff = new Date(listingStart.getTime() - message.graceSeconds * 1000);

  let after = message.after;
  let token = message.continuationToken;
  let pages = 0;
  for (;;) {
    const page = await deps.listing.listPage({
      prefix: range.prefix,
      ...(token ? { continuationToken: token } : {}),
      ...(!token && (after ?? startAfterFor(range.from ?? '')) !== undefined
        ? { startAfter: (after ?? startAfterFor(range.from ?? '')) as string }
        : {}),
      maxKeys: options.pageSize,
    });
    pages++;
    const listed: ListedObject[] = [];
    let pastEnd = false;
    for (const o of page.objects) {
      if (after !== undefined && compareKeys(o.key, after) <= 0) continue;
      if (!inRange(range, o.key)) {
        if (range.to !== undefined && compareKeys(o.key, range.to) >= 0) pastEnd = true;
        continue;
      }
      counts.scanned++;
      if (pathForKey(options.dataPrefix, o.key) === undefined) {
        counts.ignored++;
        continue;
      }
      listed.push(o);
    }
    const more = page.nextContinuationToken !== undefined && !pastEnd;
    const lastKey = page.objects[page.objects.length - 1]?.key;
    // The span this page settles: (after, lastKey] while more pages follow, (after, shard end] on
    // the last one. An empty non-final page settles nothing.
    const upTo = more ? lastKey : undefined;
    if (!more || lastKey !== undefined) {
      const heals: Heal[] = [];
      const healCount = new Map<string, keyof ReconcileCounts>();
      const record = (action: HealAction) => {
        tally(counts, action);
        if (action.do !== 'none') {
          healCount.set(action.key, action.count);
          if (samples.length < maxSamples) samples.push({ kind: action.count, key: action.key });
        }
      };
      await mergeJoin(listed, deps.index.read(range, after, upTo), (item) => {
        const action = decideHeal(item, cutoff);
        if (dryRun || action.do === 'none') return record(action);
        if (action.do !== 'refresh') {
          heals.push(
            action.do === 'put'
              ? { op: 'put', key: action.key, object: action.object }
              : { op: action.do, key: action.key },
          );
          return record(action);
        }
        // Only refreshes pay a round trip: HeadObject for the fresh metadata.
        return deps.listing.head(action.key).then((fresh) => {
          if (!fresh) {
            // Deleted between the listing and now: its delete event is in flight; leave it to that.
            counts.skippedRecent++;
            return;
          }
          heals.push({ op: 'put', key: action.key, object: fresh });
          record(action);
        });
      });
      if (heals.length > 0) {
        const { skipped } = await deps.index.apply(heals, { runId, cutoff });
        // Rows that changed between our read and the write were left alone by the store.
        for (const key of skipped) {
          const kind = healCount.get(key);
          if (kind) counts[kind]--;
          counts.skippedRecent++;
        }
      }
      if (upTo !== undefined) after = upTo;
    }
    token = page.nextContinuationToken;
    if (!more) {
      const recorded = await deps.ledger.completeSegment(message, { counts, samples, final: true });
      return { duplicate: !recorded, counts, pages };
    }
    if (options.remainingMs() < options.reserveMs) {
      const next: ShardMessage = { ...message, segment: message.segment + 1 };
      if (after !== undefined) next.after = after;
      if (token !== undefined) next.continuationToken = token;
      // Record first, then send: see the file comment (outbox).
      if (!(await deps.ledger.completeSegment(message, { counts, samples, final: false, next }))) {
        return { duplicate: true, counts, pages };
      }
      await deps.queue.send([next]);
      return { duplicate: false, counts, pages, next };
    }
  }
}
