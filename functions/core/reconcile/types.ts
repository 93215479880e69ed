/**
 * Vocabulary of reconciliation: what a listing and the index say about a key, how a difference is
 * classified, what a run counts, and what travels on the reconcile queue. Pure types and tiny
 * helpers only (no SDK), so the CLI can import the run shape without server dependencies.
 */
import type { ObjectState } from '../api-types.ts';

/** One current object version as S3 lists it. */
export interface ListedObject {
  key: string;
  /** As S3 returns it, quotes included or not; compared through normalizeEtag. */
  etag: string;
  size: number;
  lastModified?: Date;
  /** Present when the bucket is versioned (ListObjectVersions, IsLatest). */
  versionId?: string;
}

/** One row of the index as the reconcile reader sees it (deleted rows included when kept). */
export interface IndexedObject {
  key: string;
  etag?: string;
  size: number;
  versionId?: string;
  state: ObjectState;
  /** When the row last changed (database clock): the in-flight guard compares against it. */
  changedAt: Date;
}

export type DiffItem =
  | { kind: 'added'; key: string; listed: ListedObject }
  | { kind: 'missing'; key: string; indexed: IndexedObject }
  | {
      kind: 'changed';
      key: string;
      listed: ListedObject;
      indexed: IndexedObject;
      /** etag/size/version: content differs; state: the row is not active but S3 has the object. */
      reason: 'etag' | 'size' | 'version' | 'state';
    }
  | { kind: 'unchanged'; key: string; listed: ListedObject; indexed: IndexedObject };

/** Per-run (and per-segment) tallies. Field names are part of the API response. */
export interface ReconcileCounts {
  /** Objects S3 listed inside the run's scope. */
  scanned: number;
  /** Listed, not indexed (or indexed as deleted) → indexed. */
  added: number;
  /** Indexed as active, not listed → marked `missing`. */
  missing: number;
  /** Indexed as `missing` by an earlier run, still not listed → marked `deleted`. */
  deleted: number;
  /** etag/size/version differed → refreshed from HeadObject. */
  refreshed: number;
  unchanged: number;
  /** Differences left alone because the row changed after the listing started (minus grace). */
  skippedRecent: number;
  /** Keys that no Strata path maps to (outside the data prefix, folder markers, non-NFC names). */
  ignored: number;
}

export const COUNT_FIELDS = [
  'scanned',
  'added',
  'missing',
  'deleted',
  'refreshed',
  'unchanged',
  'skippedRecent',
  'ignored',
] as const satisfies ReadonlyArray<keyof ReconcileCounts>;

export function emptyCounts(): ReconcileCounts {
  return {
    scanned: 0,
    added: 0,
    missing: 0,
    deleted: 0,
    refreshed: 0,
    unchanged: 0,
    skippedRecent: 0,
    ignored: 0,
  };
}

export function addCounts(into: ReconcileCounts, more: ReconcileCounts): ReconcileCounts {
  for (const f of COUNT_FIELDS) into[f] += more[f];
  return into;
}

/**
 * A contiguous slice of the key space: keys starting with `prefix`, at or after `from`, before `to`.
 * Shards of one run partition the run's scope with no gap and no overlap.
 */
export interface ShardRange {
  prefix: string;
  from?: string;
  to?: string;
}

/** The body of one reconcile-queue message: one segment of one shard. */
export interface ShardMessage {
  v: 1;
  runId: string;
  shardId: number;
  /** 0 for the planner's message; +1 per re-enqueue. (runId, shardId, segment) is the idempotency key. */
  segment: number;
  range: ShardRange;
  /** Resume point: every key ≤ `after` was already reconciled by earlier segments. */
  after?: string;
  /** S3 continuation token of the listing where the previous segment stopped. */
  continuationToken?: string;
  dryRun: boolean;
  graceSeconds: number;
}

export type RunStatus = 'running' | 'succeeded' | 'failed';

/** GET /v1/reconcile/{id} and POST /v1/reconcile responses. */
export interface ReconcileRun {
  id: string;
  /** Strata path the run covers (`/` = the whole data prefix). */
  scope: string;
  dryRun: boolean;
  graceSeconds: number;
  trigger: 'schedule' | 'api';
  status: RunStatus;
  startedAt: string;
  finishedAt?: string;
  shards: { total: number; done: number };
  counts: ReconcileCounts;
  /** A bounded sample of what changed (or would change, in a dry run). */
  samples?: Array<{ kind: string; path: string }>;
  /** Shards whose message failed on its last allowed receive; any entry makes the run `failed`. */
  failedShards?: Array<{ shardId: number; segment: number; attempts: number; error: string }>;
  error?: string;
}

/** ETags are compared without quotes (S3 quotes them; events and some stores do not). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}
