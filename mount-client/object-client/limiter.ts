/**
 * Concurrency limits for S3 requests: one global limit (bounds sockets, memory in flight and NIC
 * share) and one per bucket (a hot bucket must not starve reads from another, and S3 throttles per
 * prefix). A slot is held for one attempt only, never across a backoff sleep.
 */
import pLimit, { type LimitFunction } from 'p-limit';

export class ConcurrencyLimiter {
  private readonly global: LimitFunction;
  private readonly perBucket = new Map<string, LimitFunction>();

  constructor(
    globalLimit: number,
    private readonly bucketLimit: number,
  ) {
    this.global = pLimit(globalLimit);
  }

  run<T>(bucket: string, fn: () => Promise<T>): Promise<T> {
    let b = this.perBucket.get(bucket);
    if (!b) {
      b = pLimit(this.bucketLimit);
      this.perBucket.set(bucket, b);
    }
    // Bucket slot first: a request waiting on its bucket holds no global slot.
    return b(() => this.global(fn));
  }

  get active(): number {
    return this.global.activeCount;
  }
  get pending(): number {
    return this.global.pendingCount;
  }
}
