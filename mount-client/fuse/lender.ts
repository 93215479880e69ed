/**
 * Lends in-memory blocks of open handles to the FUSE addon, so a sequential reader's 128 KiB reads
 * are answered on the FUSE thread without a round trip to JavaScript.
 *
 * Why: a warm read is a copy out of a block already in memory, yet each one costs a wake-up of the
 * JavaScript thread, a callback and a semaphore post back — about half of the mount's CPU per GiB
 * on a warm stream, and the reason the mount read at ~0.5× the FUSE ceiling (docs/benchmarks/mount.md,
 * "Session 7"). With the patched addon (scripts/build-fuse-native.mjs) JavaScript still serves the
 * first read of each block — read-ahead, the version checks and the errors stay where they are — and
 * then lends that block; the other reads of the block never leave C.
 *
 * What stays true:
 * - A lent block is a block of the handle's own version (the reader lends it: DataPath's Reader.lend),
 *   so a lent read returns exactly what readInto would have; reads the block does not wholly cover
 *   (past its end, across two blocks, past the handle's own end) go to JavaScript.
 * - The lender keeps each lent buffer referenced (and retained in the block pool) until it takes the
 *   block back, and the addon's unlend returns only once no FUSE thread is copying from it.
 * - Blocks are taken back when the handle lends a third one (two per handle: the block being read
 *   and the one before it, for reads the kernel reorders), when it is released, and at unmount.
 * - At most `maxBlocks` blocks are lent in all (default 64 = 512 MiB of 8 MiB blocks held past a
 *   memory-tier eviction at worst); beyond that reads simply stay in JavaScript.
 * - Reads served from lent blocks are handed to the reader before its next JavaScript read (sync):
 *   its read-ahead sees one continuous stream, and metrics count every byte.
 */
import type { LendingAddon } from './native.ts';

/** A block lent out of the data path: valid until `release()` (idempotent). */
export interface LentBlock {
  /** File offset of the block's first byte. */
  start: number;
  data: Buffer;
  /** The block ends the file: a read running past its end is answered short (end of file). */
  eof: boolean;
  release(): void;
}

/** The filesystem side: StrataFs (a handle number → its reader). */
export interface LendingFs {
  lend(handle: number, offset: number): LentBlock | undefined;
  absorb(handle: number, end: number, reads: number, bytes: number): void;
}

/** Blocks kept lent per handle: the one being read and the one before it. */
const PER_HANDLE = 2;

export class Lender {
  private thread: Buffer | undefined;
  private readonly lent = new Map<number, LentBlock[]>();
  private count = 0;
  private readonly out = new Float64Array(3);
  private readonly totals = { lent: 0, refused: 0, reads: 0, bytes: 0 };

  constructor(
    private readonly addon: LendingAddon,
    private readonly fs: LendingFs,
    private readonly maxBlocks = 64,
  ) {}

  /** The mount's fuse_thread_t buffer, once fuse-native has mounted (no lending before). */
  attach(thread: Buffer): void {
    this.thread = thread;
  }

  /** Before JavaScript serves a read of `fh`: hand the reads the addon served to the reader. */
  sync(fh: number): void {
    const thread = this.thread;
    if (!thread || !this.lent.has(fh)) return;
    this.addon.progress(thread, fh, this.out);
    const [end, reads, bytes] = this.out as unknown as [number, number, number];
    if (reads > 0) {
      this.totals.reads += reads;
      this.totals.bytes += bytes;
      this.fs.absorb(fh, end, reads, bytes);
    }
  }

  /** After JavaScript served a read of `fh` at `offset`: lend the block around it, if it is in memory. */
  offer(fh: number, offset: number): void {
    const thread = this.thread;
    if (!thread) return;
    const mine = this.lent.get(fh);
    if (mine?.some((b) => offset >= b.start && offset < b.start + b.data.length)) return;
    const full = (mine?.length ?? 0) >= PER_HANDLE;
    if (!full && this.count >= this.maxBlocks) return;
    const block = this.fs.lend(fh, offset);
    if (!block) return;
    if (mine && full) this.takeBack(thread, fh, mine.shift() as LentBlock);
    if (!this.addon.lend(thread, fh, block.start, block.data, block.eof)) {
      this.totals.refused++;
      block.release();
      return;
    }
    this.totals.lent++;
    this.count++;
    if (mine) mine.push(block);
    else this.lent.set(fh, [block]);
  }

  /** A handle is being released: count what the addon served, take all of its blocks back. */
  release(fh: number): void {
    const mine = this.lent.get(fh);
    const thread = this.thread;
    if (!mine || !thread) return;
    this.sync(fh);
    this.addon.unlend(thread, fh, -1);
    for (const b of mine) b.release();
    this.count -= mine.length;
    this.lent.delete(fh);
  }

  /** Unmounted: take everything back. */
  close(): void {
    for (const fh of [...this.lent.keys()]) this.release(fh);
  }

  /** Blocks lent now, and totals since mount (lent, refused by the addon, reads and bytes it served). */
  stats(): { blocks: number; lent: number; refused: number; reads: number; bytes: number } {
    return { blocks: this.count, ...this.totals };
  }

  private takeBack(thread: Buffer, fh: number, b: LentBlock): void {
    this.addon.unlend(thread, fh, b.start);
    b.release();
    this.count--;
  }
}
