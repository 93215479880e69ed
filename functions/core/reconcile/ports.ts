/**
 * Ports the reconcile core needs, defined here by their user and kept minimal. Adapters:
 * adapters/aws/reconcile-listing.ts (S3), adapters/pg/reconcile-store.ts (index, ledger),
 * adapters/aws/reconcile-queue.ts (SQS). In-memory fakes for unit tests live in test/unit/reconcile.
 */
import type { IndexedObject, ListedObject, ReconcileCounts, ShardMessage, ShardRange } from './types.ts';

export interface ListingPage {
  objects: ListedObject[];
  /** Absent on the last page. */
  nextContinuationToken?: string;
}

/** Fresh metadata of one object (HeadObject). */
export interface HeadResult extends ListedObject {
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface ReconcileListing {
  /** One page of current objects under `prefix`, in UTF-8 byte order. */
  listPage(request: {
    prefix: string;
    startAfter?: string;
    continuationToken?: string;
    maxKeys: number;
  }): Promise<ListingPage>;
  /** Common prefixes one level below `prefix` (delimiter `/`), in byte order. */
  commonPrefixes(prefix: string): AsyncIterable<string>;
  /** undefined when the object no longer exists. */
  head(key: string): Promise<HeadResult | undefined>;
}

/** One write reconciliation makes to the index; every one is journalled as a drift event. */
export type Heal =
  | { op: 'put'; key: string; object: HeadResult }
  | { op: 'mark-missing'; key: string }
  | { op: 'mark-deleted'; key: string };

export interface ReconcileIndex {
  /** The database clock: listing start and row change times must come from the same clock. */
  now(): Promise<Date>;
  /**
   * Index rows in `range` with key > `after` and key ≤ `upTo` (both optional), in UTF-8 byte
   * order, streamed in bounded batches. Rows in state `deleted` may be included.
   */
  read(
    range: ShardRange,
    after: string | undefined,
    upTo: string | undefined,
  ): AsyncIterable<IndexedObject[]>;
  /**
   * Applies heals in one transaction through the indexer's write path, journalled with `runId`.
   * Must re-check the in-flight guard at write time: a row changed after `cutoff` is left alone
   * (it may have changed between the read and this write). Returns the keys it left alone so.
   */
  apply(heals: Heal[], context: { runId: string; cutoff: Date }): Promise<{ skipped: string[] }>;
}

export interface Sample {
  kind: string;
  key: string;
}

/**
 * What claiming a segment found: `claimed` — this delivery owns the segment until the lease
 * expires; `busy` — another delivery holds an unexpired lease (ack, do nothing); `done` — the
 * segment was recorded, its shard finished at an earlier segment, or the run is no longer running.
 * A recorded segment whose continuation nobody has picked up yet returns it as `resend`: the
 * continuation may have been lost by a crash between the commit and the send.
 */
export type SegmentClaim =
  | { status: 'claimed'; lease: string }
  | { status: 'busy' }
  | { status: 'done'; resend?: ShardMessage };

/** Run bookkeeping: segment claims, per-segment counts recorded exactly once, shard and run completion. */
export interface RunLedger {
  /** Atomically claims the segment for `leaseMs` (see SegmentClaim). */
  claimSegment(message: ShardMessage, leaseMs: number): Promise<SegmentClaim>;
  /** Gives a claim back after a failure, so the retried message can take it at once. */
  releaseSegment(message: ShardMessage, lease: string): Promise<void>;
  /**
   * Records the segment's counts and its continuation `next` once and, when `final`, marks the
   * shard done and the run finished once every shard is. Returns false when the segment had
   * already been recorded (by a delivery whose lease this one outlived): the caller must then not
   * send its continuation — the recorded one was sent.
   */
  completeSegment(
    message: ShardMessage,
    result: { counts: ReconcileCounts; samples: Sample[]; final: boolean; next?: ShardMessage },
  ): Promise<boolean>;
  /**
   * The shard's message failed on its last allowed receive (the DLQ is next): records the
   * failure and fails the run, so nothing waits on it.
   */
  failShard(message: ShardMessage, failure: { attempts: number; error: string }): Promise<void>;
}

export interface ShardQueue {
  send(messages: ShardMessage[]): Promise<void>;
}
