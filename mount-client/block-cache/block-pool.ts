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
 *
 * Slab (`reserveBytes`): the first `reserveBytes` of block stores are carved out of ONE ArrayBuffer
 * allocated on first use, and those stores are never given back to the GC (they always return to
 * the free list). Why: a cold read fills the empty memory tier with fresh blocks, and each fresh
 * 8 MiB ArrayBuffer is reported to V8 as new external memory — V8 answered with a full
 * mark-compact every few blocks (~20 full GCs/GiB on a cold read, docs/benchmarks/mount-data.md).
 * One reservation is one report. The reservation is virtual memory: pages become resident only
 * when a block is first written into them, so resident memory still grows only as the tiers fill,
 * and never beyond `reserveBytes` + what the per-block stores above hold. data-path.ts sizes the
 * reserve to the memory tier, the one holder that keeps that many blocks for the mount's lifetime.
 */

/**
 * Offset at which block stores start inside their ArrayBuffer, so that (usually) they sit on a
 * 4 KiB boundary and the disk cache can write them with O_DIRECT straight from the pool, with no
 * copy (disk-cache.ts). Why 4080: JS cannot see addresses, but a block-sized ArrayBuffer is a
 * glibc calloc served by mmap, and glibc puts its 16-byte chunk header at the start of the
 * page-aligned mapping, so the bytes start 16 past a page boundary (probed on this VM: every
 * ArrayBuffer from 1 to 300 MiB had its first O_DIRECT-aligned byte at the same phase). It is
 * only a hint: the disk cache checks alignment itself (a refused direct write from a view is
 * retried from its own probed, aligned buffer), so a wrong guess costs one copy per block, never
 * correctness. Costs 4 KiB per ArrayBuffer.
 */
export const DIRECT_IO_PHASE = 4096 - 16;

/** A backing store: a whole ArrayBuffer, or one block-sized piece of the slab. */
interface Store {
  ab: ArrayBuffer;
  off: number;
  /** Piece of the slab: kept forever (bounded by reserveBytes), never dropped to the GC. */
  slab: boolean;
}

interface Lease {
  store: Store;
  refs: number;
}

export class BlockPool {
  /** Idle whole-ArrayBuffer stores (at most maxFree). */
  private readonly free: Store[] = [];
  /** Idle slab pieces: reused first, their pages are already resident. */
  private readonly freeSlab: Store[] = [];
  private quarantine: Store[] = [];
  private flushScheduled = false;
  private readonly leases = new WeakMap<Buffer, Lease>();
  private slab: ArrayBuffer | undefined;
  /** Pieces of the slab handed out so far (carved lazily, lowest offset first). */
  private carved = 0;
  private readonly slabPieces: number;
  readonly counts = { allocated: 0, reused: 0, recycled: 0, dropped: 0, slabPieces: 0 };

  /**
   * @param blockSize every backing store has this size; shorter blocks (a file's tail) are views.
   * @param maxFree idle backing stores kept for reuse. Default 8 (64 MiB at 8 MiB blocks): in a
   *   steady stream each eviction frees one store as each new block takes one, so a handful
   *   suffices; bursts beyond that (a cache clear) are released to the GC. Slab pieces do not
   *   count against it.
   * @param reserveBytes bytes of block stores carved from one slab (see the module note); rounded
   *   down to whole blocks. 0 (the default) = every store is its own ArrayBuffer.
   */
  constructor(
    readonly blockSize: number,
    readonly maxFree = 8,
    readonly reserveBytes = 0,
  ) {
    this.slabPieces = Math.max(0, Math.floor(reserveBytes / blockSize));
  }

  /** A view of `length` bytes (≤ blockSize) with one reference; contents are garbage. */
  acquire(length: number): Buffer {
    // Under half a block (a small file, a short tail) gets a buffer of its own size, not a store:
    // a pooled view pins a whole block (8 MiB) while the memory tier counts only its length, so a
    // mount reading many small files held a block of memory per file — 256 MiB of 4 KiB files
    // is 65,536 stores (bench/mount/soak.ts). Not pooled, it is an ordinary GC'd buffer.
    if (length > this.blockSize || length <= 0 || length * 2 < this.blockSize)
      return Buffer.allocUnsafe(length);
    // Reuse before carving: a carved piece's pages are fresh, and the first write to a fresh page
    // faults (0.6–0.9 CPU-s/GiB of system time in this VM, docs/benchmarks/mount-data.md).
    let store = this.freeSlab.pop() ?? this.free.pop();
    if (store) this.counts.reused++;
    else if (this.carved < this.slabPieces) {
      // Lazily reserved, so a mount that never reads pays nothing; calloc'd pages stay untouched
      // (zero pages are mapped on first write), so the reservation is not resident memory.
      this.slab ??= new ArrayBuffer(DIRECT_IO_PHASE + this.slabPieces * this.blockSize);
      store = { ab: this.slab, off: DIRECT_IO_PHASE + this.carved++ * this.blockSize, slab: true };
      this.counts.slabPieces++;
    } else {
      store = { ab: new ArrayBuffer(DIRECT_IO_PHASE + this.blockSize), off: DIRECT_IO_PHASE, slab: false };
      this.counts.allocated++;
    }
    const view = Buffer.from(store.ab, store.off, length);
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
    return this.free.length + this.freeSlab.length;
  }

  private flush(): void {
    this.flushScheduled = false;
    const q = this.quarantine;
    this.quarantine = [];
    for (const store of q) {
      if (store.slab) {
        // Never dropped: bounded by reserveBytes, and dropping would only re-fault the pages.
        this.freeSlab.push(store);
        this.counts.recycled++;
      } else if (this.free.length < this.maxFree) {
        this.free.push(store);
        this.counts.recycled++;
      } else this.counts.dropped++;
    }
  }

  /** Drops idle stores and the slab reference (close); leased views keep their memory alive. */
  clear(): void {
    this.free.length = 0;
    this.freeSlab.length = 0;
    this.quarantine = [];
    this.slab = undefined;
    this.carved = this.slabPieces;
  }
}
