/**
 * Clients and adapters shared by the three reconcile Lambdas (planner, worker, API), created once
 * per execution environment on top of the HTTP edge's deps (pool, S3, config), and injectable for
 * tests with setReconcileWiring().
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { S3ReconcileListing } from '../adapters/aws/reconcile-listing.ts';
import { SqsShardQueue } from '../adapters/aws/reconcile-queue.ts';
import { PgReconcileIndex, PgRunLedger } from '../adapters/pg/reconcile-store.ts';
import type { ServerConfig } from '../config.ts';
import type { ReconcileListing, ShardQueue } from '../core/reconcile/ports.ts';
import { metadataCache } from './http/cache.ts';
import { deps } from './http/index.ts';

export interface ReconcileWiring {
  config: ServerConfig;
  listing: ReconcileListing;
  index: PgReconcileIndex;
  ledger: PgRunLedger;
  queue: ShardQueue;
}

let current: Partial<ReconcileWiring> = {};

export function reconcileWiring(): ReconcileWiring {
  const d = deps();
  current.config ??= d.config;
  const cfg = current.config;
  current.listing ??= new S3ReconcileListing(d.s3, { bucket: cfg.bucket });
  current.index ??= new PgReconcileIndex(d.pool, {
    dataPrefix: cfg.dataPrefix,
    // Heals invalidate the metadata cache exactly as the indexer's batches do.
    onApplied: (paths, dirs) =>
      metadataCache(d.redis, cfg.env.STRATA_CACHE_TTL_MS, cfg.cacheNamespace, d.pool).invalidate(paths, dirs),
  });
  current.ledger ??= new PgRunLedger(d.pool, cfg.dataPrefix);
  if (!current.queue) {
    const url = cfg.env.STRATA_RECONCILE_QUEUE_URL;
    if (!url) {
      throw new Error(
        'STRATA_RECONCILE_QUEUE_URL is not set: the reconcile Lambdas need the reconcile queue (set by CDK, or by the local stack)',
      );
    }
    const sqs = new SQSClient({
      region: cfg.region,
      ...(cfg.sqsEndpoint ? { endpoint: cfg.sqsEndpoint } : {}),
    });
    current.queue = new SqsShardQueue(sqs, url);
  }
  return current as ReconcileWiring;
}

export function setReconcileWiring(overrides: Partial<ReconcileWiring>): void {
  current = { ...current, ...overrides };
}

export function resetReconcileWiring(): void {
  current = {};
}
