/**
 * Concurrency limits for S3 requests: one global limit (bounds sockets, memory in flight and NIC
 * share) and one per bucket (a hot bucket must not starve reads from another, and S3 throttles per
 * prefix). A slot is held for one attempt only, never across a backoff sleep.
 *
 * Priority: a reader blocked in a FUSE read must not queue behind read-ahead (a FIFO made a seek
 * wait for up to 64 MiB of another stream's prefetch). Every request carries a Priority ticket;
 * a freed slot goes to the oldest waiting demand request, and only when none waits to the oldest
 * prefetch. The ticket is mutable: a demand read that joins a block already queued as prefetch
 * (singleflight) raises it in place, so the shared fetch jumps the queue too.
 */

/** Mutable priority of one block fetch; `demand` may flip to true while it waits, never back. */
export interface Priority {
  demand: boolean;
}

export const DEMAND: Priority = Object.freeze({ demand: true }) as Priority;

/** A counting semaphore whose waiters are served demand-first, FIFO within a class. */
export class PrioritySemaphore {
  private active = 0;
  private readonly waiting: { p: Priority; go: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit ${limit} must be ≥ 1`);
  }

  acquire(p: Priority): Promise<void> | undefined {
    if (this.active < this.limit && this.waiting.length === 0) {
      this.active++;
      return undefined;
    }
    return new Promise((go) => this.waiting.push({ p, go }));
  }

  release(): void {
    // Waiting lists are short (≤ a few dozen blocks), so a scan per release is cheaper than
    // keeping two queues in sync with tickets that change class while queued.
    let at = this.waiting.findIndex((w) => w.p.demand);
    if (at < 0) at = this.waiting.length > 0 ? 0 : -1;
    if (at < 0) {
      this.active--;
      return;
    }
    const [next] = this.waiting.splice(at, 1);
    next?.go(); // the slot passes straight to the waiter: `active` is unchanged
  }

  get activeCount(): number {
    return this.active;
  }
  get pendingCount(): number {
    return this.waiting.length;
  }
}

export class ConcurrencyLimiter {
  private readonly global: PrioritySemaphore;
  private readonly perBucket = new Map<string, PrioritySemaphore>();

  constructor(
    globalLimit: number,
    private readonly bucketLimit: number,
  ) {
    this.global = new PrioritySemaphore(globalLimit);
  }

  async run<T>(bucket: string, fn: () => Promise<T>, priority: Priority = DEMAND): Promise<T> {
    let b = this.perBucket.get(bucket);
    if (!b) {
      b = new PrioritySemaphore(this.bucketLimit);
      this.perBucket.set(bucket, b);
    }
    // Bucket slot first: a request waiting on its bucket holds no global slot.
    await b.acquire(priority);
    try {
      await this.global.acquire(priority);
      try {
        return await fn();
      } finally {
        this.global.release();
      }
    } finally {
      b.release();
    }
  }

  get active(): number {
    return this.global.activeCount;
  }
  get pending(): number {
    return this.global.pendingCount;
  }
}
