/**
 * Singleflight: concurrent loads of the same key share one in-flight promise, so N readers (or a
 * reader and the prefetcher) racing for one block cost one S3 GET. The entry is dropped as soon as
 * the promise settles: a failure is not cached, the next caller retries.
 */
export class Singleflight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Number of keys currently loading (for metrics and tests). */
  get size(): number {
    return this.inflight.size;
  }

  has(key: string): boolean {
    return this.inflight.has(key);
  }

  do(key: string, load: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = (async () => {
      try {
        return await load();
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, p);
    return p;
  }
}
