/**
 * The S3 tier as a BlockFetcher: one block = one ranged GET pinned to the version, under the global
 * and per-bucket concurrency limits, retried with full-jitter backoff. Counts attempts per outcome so
 * tests can assert "zero S3 GETs" and the bench can compare transports.
 */
import type { BlockFetcher, BlockId } from '../block-cache/types.ts';
import { blockLength } from '../block-cache/types.ts';
import type { DataPathMetrics } from '../metrics.ts';
import { NotFoundError, PreconditionFailedError, S3ReadError } from './errors.ts';
import { type ConcurrencyLimiter, DEMAND, type Priority } from './limiter.ts';
import { type RetryPolicy, withRetry } from './retry.ts';
import type { RangeTransport } from './transport.ts';

export interface S3FetcherStats {
  gets: number;
  ok: number;
  retries: number;
  failed: number;
  bytes: number;
}

export class S3BlockFetcher implements BlockFetcher {
  readonly name = 's3';
  readonly counts: S3FetcherStats = { gets: 0, ok: 0, retries: 0, failed: 0, bytes: 0 };

  constructor(
    private readonly transport: RangeTransport,
    private readonly limiter: ConcurrencyLimiter,
    private readonly retry: RetryPolicy,
    private readonly metrics?: DataPathMetrics,
  ) {}

  /**
   * One block by ranged GET. `priority` orders it against other fetches waiting for a slot (a
   * demand read before read-ahead; see limiter.ts); `alloc` supplies the buffer the body is read
   * into (the data path's block pool), default a fresh one.
   */
  async fetch(
    id: BlockId,
    signal?: AbortSignal,
    priority: Priority = DEMAND,
    alloc?: (length: number) => Buffer,
  ): Promise<Buffer> {
    const length = blockLength(id);
    const start = id.index * id.blockSize;
    const o = id.object;
    try {
      return await withRetry(
        `read s3://${o.bucket}/${o.key} block ${id.index}`,
        this.retry,
        (_n, ctx) =>
          this.limiter.run(
            o.bucket,
            async () => {
              ctx.startClock();
              this.counts.gets++;
              const t0 = performance.now();
              try {
                const data = await this.transport.get({
                  object: o,
                  start,
                  length,
                  signal: ctx.signal,
                  alloc,
                });
                this.counts.ok++;
                this.counts.bytes += data.length;
                this.metrics?.s3Gets.inc({ outcome: 'ok' });
                this.metrics?.s3Latency.observe((performance.now() - t0) / 1000);
                return data;
              } catch (err) {
                this.metrics?.s3Gets.inc({ outcome: outcomeOf(err) });
                throw err;
              }
            },
            priority,
          ),
        (err) => {
          this.counts.retries++;
          this.metrics?.s3Retries.inc({ reason: err.reason });
        },
        signal,
      );
    } catch (err) {
      this.counts.failed++;
      this.metrics?.s3Errors.inc({ class: outcomeOf(err) });
      throw err;
    }
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

function outcomeOf(err: unknown): string {
  if (err instanceof PreconditionFailedError) return 'precondition_failed';
  if (err instanceof NotFoundError) return 'not_found';
  if (err instanceof S3ReadError) return 'io_error';
  const r = (err as { reason?: string }).reason;
  return r ?? 'error';
}
