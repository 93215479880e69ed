/**
 * The mount client's one Prometheus registry. Every module (data path, FUSE, peers) registers its
 * metrics here through the get-or-create helpers, so creating a second DataPath in one process
 * (tests, remount) reuses the same series instead of throwing "already registered".
 * `--metrics-port` serves `mountRegistry.metrics()`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const mountRegistry = new Registry();

type Labels<L extends string> = readonly L[];

export function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L> = [],
): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ name, help, labelNames: [...labelNames], registers: [registry] });
}

export function gauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L> = [],
): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge<L>({ name, help, labelNames: [...labelNames], registers: [registry] });
}

export function histogram<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  buckets: number[],
  labelNames: Labels<L> = [],
): Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram<L>;
  return new Histogram<L>({ name, help, buckets, labelNames: [...labelNames], registers: [registry] });
}

export type Tier = 'memory' | 'disk' | 'peer' | 's3';

/** The data path's series. */
export function dataPathMetrics(registry: Registry = mountRegistry) {
  return {
    /** result=hit|miss per tier; s3 only ever counts hits (or errors below). */
    blockRequests: counter(registry, 'strata_block_requests_total', 'Block lookups per tier and result', [
      'tier',
      'result',
    ] as const),
    // Not bytes read: a memory hit counts its whole block on every lookup (a 128 KiB read of an
    // 8 MiB block adds 8 MiB), so the help says what is counted; readers' bytes are strata_read_bytes_total.
    blockBytes: counter(
      registry,
      'strata_block_bytes_total',
      'Block bytes per tier: the whole block per memory hit and per peer/S3 fetch, the slice per disk hit (bytes read: strata_read_bytes_total)',
      ['tier'] as const,
    ),
    readBytes: counter(registry, 'strata_read_bytes_total', 'Bytes returned to file readers'),
    s3Gets: counter(registry, 'strata_s3_get_requests_total', 'Ranged S3 GET attempts by outcome', [
      'outcome',
    ] as const),
    s3Latency: histogram(
      registry,
      'strata_s3_get_duration_seconds',
      'Duration of successful ranged S3 GETs (whole body)',
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    s3Retries: counter(registry, 'strata_s3_retries_total', 'S3 GET retries by reason', ['reason'] as const),
    s3Errors: counter(registry, 'strata_s3_errors_total', 'S3 reads that failed for good, by class', [
      'class',
    ] as const),
    evictions: counter(registry, 'strata_cache_evictions_total', 'Disk cache evictions by reason', [
      'reason',
    ] as const),
    evictedBytes: counter(registry, 'strata_cache_evicted_bytes_total', 'Bytes evicted from the disk cache'),
    corrupt: counter(
      registry,
      'strata_cache_corrupt_blocks_total',
      'Cached blocks that failed verification',
      ['reason'] as const,
    ),
    cacheBytes: gauge(registry, 'strata_cache_bytes', 'Bytes held by the cache', ['tier'] as const),
    prefetchWindow: histogram(
      registry,
      'strata_prefetch_window_bytes',
      'Read-ahead window size when a prefetch is issued',
      [1, 2, 4, 8, 16, 32, 64, 128].map((m) => m * 1024 * 1024),
    ),
    prefetchInflight: gauge(registry, 'strata_prefetch_inflight_bytes', 'Bytes of prefetches in flight'),
    prefetchDropped: counter(
      registry,
      'strata_prefetch_dropped_total',
      'Prefetches skipped because the global prefetch memory budget was full',
    ),
  };
}

export type DataPathMetrics = ReturnType<typeof dataPathMetrics>;
