/**
 * Collapses concurrent calls for the same key into one in-flight promise. A `ls -l` of a
 * directory nobody has listed yet issues one getattr per entry in parallel; without this each would
 * cost its own API round trip.
 */
export class Singleflight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Keys in flight (/stats: must return to 0 when the mount is idle). */
  get size(): number {
    return this.inflight.size;
  }

  do(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
