/**
 * The CloudWatch metrics Strata's functions emit (Powertools EMF), named once. The handlers add
 * them and infra/stacks/observability-stack.ts alarms and graphs them, both through these
 * constants: a CloudWatch alarm matches a metric only on the exact namespace, name and dimension
 * set, and one that names a metric nobody emits never fires — so the two sides must not drift
 * (test/infra/observability.test.ts checks every alarm against this module and the emitted EMF).
 */
import type { ReconcileCounts } from './reconcile/types.ts';

/**
 * Namespace when POWERTOOLS_METRICS_NAMESPACE is unset (the local stack, tests). Deployed
 * functions get `metricsNamespace(<stage prefix>)`, so two stages in one account never feed each
 * other's alarms: the dimensions alone (service) cannot tell them apart.
 */
export const DEFAULT_METRICS_NAMESPACE = 'Strata';

/** The namespace a deployed stage's functions write to and its alarms read. */
export function metricsNamespace(stagePrefix: string): string {
  return `Strata/${stagePrefix}`;
}

/**
 * The `service` dimension Powertools adds to every metric (and the `service` field of every log
 * line). The same for all functions: a metric is the fleet's total, the log group says which
 * function wrote a line. The only dimension Strata metrics carry.
 */
export const METRICS_SERVICE = 'strata';

/** Every metric name Strata emits (Reconcile_<count field> aside: see reconcileCountMetric). */
export const Metric = {
  /** API: requests that failed with an unexpected error (answered 500, logged "request failed"). */
  ApiErrors: 'ApiErrors',
  /** Any function: a Redis call failed or timed out and PostgreSQL served instead. */
  RedisFailures: 'RedisFailures',
  /** Indexer, per batch: S3 events received. */
  IndexerEvents: 'IndexerEvents',
  /** Indexer: index rows written. */
  IndexerUpserts: 'IndexerUpserts',
  /** Indexer: events outside the data prefix, test events. */
  IndexerIgnored: 'IndexerIgnored',
  /** Indexer: events older than what the index holds (S3 events are unordered). */
  IndexerStale: 'IndexerStale',
  /** Indexer: puts whose object was already gone at HEAD time. */
  IndexerGone: 'IndexerGone',
  /** Indexer: HeadObject calls made. */
  IndexerHeads: 'IndexerHeads',
  /** Indexer: messages reported failed in the batch (SQS redelivers them; DLQ after 5 receives). */
  IndexerFailures: 'IndexerFailures',
  /** Indexer: the batch's largest delay from the S3 event time to its index commit. */
  IndexLagMs: 'IndexLagMs',
  /** Reconcile planner: runs started by the schedule. */
  ReconcileRunsStarted: 'ReconcileRunsStarted',
  /** Reconcile planner: shards queued for a run. */
  ReconcileShards: 'ReconcileShards',
  /** Reconcile worker: shard messages that did not parse (reported failed, end in the DLQ). */
  ReconcileMalformedMessages: 'ReconcileMalformedMessages',
  /** Reconcile worker: redeliveries of a segment already claimed or done (harmless). */
  ReconcileDuplicateSegments: 'ReconcileDuplicateSegments',
  /** Reconcile worker: segments completed. */
  ReconcileSegments: 'ReconcileSegments',
  /** Reconcile worker: segment attempts that threw (SQS retries them). */
  ReconcileSegmentFailures: 'ReconcileSegmentFailures',
  /** Reconcile worker: shards given up on the last allowed receive (the run is marked failed). */
  ReconcileShardFailures: 'ReconcileShardFailures',
} as const;

export type MetricName = (typeof Metric)[keyof typeof Metric];

/** Reconcile worker: a segment's count of one kind (scanned, added, missing, ...), when non-zero. */
export function reconcileCountMetric(field: keyof ReconcileCounts): string {
  return `Reconcile_${field}`;
}
