/**
 * A bounded pool of block-sized buffers, reused across blocks, with reference counts.
 *
 * Why: every block used to be a fresh 8 MiB Buffer (an S3 body, a disk-cache read). V8 counts such
 * backing stores as external memory and runs a full mark-compact each time it grows by a few tens
 * of MiB — ~24 full GCs per GiB streamed, measured in docs/benchmarks/mount.md. Here a block that
 * leaves every tier (memory LRU eviction, disk write done) hands its backing store back, and the
 * next block is read into it: in a steady stream no new backing store is allocated at all.
 *
 * Rules (what must stay true, or a reader sees another block's bytes):
 * - `acquire` returns a view with one reference. Every holder that keeps a view across an event-loop
 *   turn holds its own reference: `retain` when it starts keeping it, `release` exactly once when
 *   it stops. The memory LRU, the pending disk write, a multi-block read and the singleflight
 *   (until it settles) are the holders in data-path.ts.
 * - A view whose count reaches zero is not reused in the same turn: its backing store is
 *   quarantined until setImmediate. So a consumer that receives a view from a promise and copies it
 *   out in the same turn (microtasks included) needs no reference of its own — the FUSE read path.
 * - Views handed outside the data path (DataPath.loadBlock, used by the peer server, which streams
 *   a block asynchronously) are copies, never pooled views.
 * - Buffers the pool did not make (a peer's response) pass through retain/release untouched.
 *
 * Bounded: at most `maxFree` idle backing stores are kept (the rest are left to the GC); buffers
 * in use are bounded by the tiers holding them (memory cap, prefetch budget, write backlog).
 */

interface Lease {
  store: ArrayBuffer;
  refs: number;
}

export class BlockPool {
  private readonly free: ArrayBuffer[] = [];
  private quarantine: ArrayBuffer[] = [];
  private flushScheduled = false;
  private readonly leases = new WeakMap<Buffer, Lease>();
  readonly counts = { allocated: 0, reused: 0, recycled: 0, dropped: 0 };

  /**
   * @param blockSize every backing store has this size; shorter blocks (a file's tail) are views.
   * @param maxFree idle backing stores kept for reuse. Default 8 (64 MiB at 8 MiB blocks): in a
   *   steady stream each eviction frees one store as each new block takes one, so a handful
   *   suffices; bursts beyond that (a cache clear) are released to the GC.
   */
  constructor(
    readonly blockSize: number,
    readonly maxFree = 8,
  ) {}

  /** A view of `length` bytes (≤ blockSize) with one reference; contents are garbage. */
  acquire(length: number): Buffer {
    if (length > this.blockSize || length <= 0) return Buffer.allocUnsafe(length);
    let store = this.free.pop();
    if (store) this.counts.reused++;
    else {
      store = new ArrayBuffer(this.blockSize);
      this.counts.allocated++;
    }
    const view = Buffer.from(store, 0, length);
    this.leases.set(view, { store, refs: 1 });
    return view;
  }

  /** Whether `b` is a pooled view (it must be copied before it leaves the data path). */
  owns(b: Buffer): boolean {
    return this.leases.has(b);
  }

  retain(b: Buffer): void {
    const l = this.leases.get(b);
    if (l) l.refs++;
  }

  release(b: Buffer): void {
    const l = this.leases.get(b);
    if (!l) return;
    if (l.refs <= 0) throw new Error('block buffer released more often than retained (pool bookkeeping bug)');
    if (--l.refs > 0) return;
    this.leases.delete(b);
    this.quarantine.push(l.store);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Idle backing stores ready for reuse. */
  get idle(): number {
    return this.free.length;
  }

  private flush(): void {
    this.flushScheduled = false;
    const q = this.quarantine;
    this.quarantine = [];
    for (const store of q) {
      if (this.free.length < this.maxFree) {
        this.free.push(store);
        this.counts.recycled++;
      } else this.counts.dropped++;
    }
  }

  /** Drops idle stores (close). */
  clear(): void {
    this.free.length = 0;
    this.quarantine = [];
  }
}
