/**
 * Sequential detection and the read-ahead window of one open file handle.
 *
 * Design note: the kernel hands FUSE 128 KiB reads (design.md §4), so "sequential" means the next
 * read starts where the last one ended, give or take a little reordering. Each sequential read
 * doubles the window from `initialBytes` up to `maxBytes`; a read elsewhere (a seek) drops it to
 * zero, so random 4 KiB readers never pay for read-ahead they do not use, and the next sequential
 * run starts small again. The window is in bytes past the end of the current read; the data path
 * turns it into blocks and bounds the bytes in flight across all handles (PrefetchBudget).
 */

export interface ReadAheadOptions {
  /**
   * 1 MiB: a first sequential read may be a header probe (`file`, `head -c`), so start with a
   * window well under one block and let a real stream earn the big window in a few reads.
   */
  initialBytes: number;
  /**
   * 64 MiB: 8 blocks of 8 MiB in flight per stream, which is what saturates a single S3 stream
   * (the raw-GET ceiling in bench/mount/ceilings.ts uses 8 concurrent 8 MiB ranges).
   */
  maxBytes: number;
  /**
   * 2 MiB of slack either side of where the run has reached: the kernel keeps up to
   * max_background (12) reads of 128 KiB in flight (1.5 MiB), and FUSE threads hand them to
   * JavaScript in any order, so the next read to arrive may start up to that far ahead (or behind)
   * and must not count as a seek. 256 KiB was enough while every read came through JavaScript one
   * after the other; with lent blocks the first read JavaScript sees of a block is any of the
   * block's first few, and ~1 block in 8 reset the window (measured, docs/benchmarks/mount.md).
   */
  toleranceBytes: number;
}

export const DEFAULT_READ_AHEAD: ReadAheadOptions = {
  initialBytes: 1024 * 1024,
  maxBytes: 64 * 1024 * 1024,
  toleranceBytes: 2 * 1024 * 1024,
};

/**
 * 16 MiB: how far behind the run's end a read may still be one of its own, late. The addon answers
 * reads only inside the blocks a handle has lent (fuse/lender.ts: two, 8 MiB each by default), so
 * a read still on its way to JavaScript is at most about two blocks behind what it served.
 */
const LATE_READ_BYTES = 16 * 1024 * 1024;

export class ReadAhead {
  private lastEnd = 0;
  /** Where the current run began (its first read's offset). */
  private runStart = 0;
  private window = 0;
  private started = false;

  constructor(private readonly o: ReadAheadOptions = DEFAULT_READ_AHEAD) {}

  /** Records a read and returns how many bytes past its end to prefetch (0 = none). */
  onRead(offset: number, length: number): number {
    const sequential = this.continues(offset);
    this.started = true;
    if (!sequential) {
      this.window = 0;
      this.runStart = offset;
      this.lastEnd = offset + length;
      return 0;
    }
    if (this.window === 0) this.runStart = Math.min(offset, this.lastEnd);
    this.lastEnd = Math.max(this.lastEnd, offset + length);
    this.window = this.window === 0 ? this.o.initialBytes : Math.min(this.o.maxBytes, this.window * 2);
    return this.window;
  }

  /**
   * Reads served elsewhere within the current run (the FUSE addon, from a lent block: fuse/lender.ts),
   * up to `end`: the run continues from there, and the window grows as if each had come through onRead.
   */
  absorb(end: number, reads: number): void {
    if (this.window === 0 || end <= this.lastEnd) return;
    this.lastEnd = end;
    for (let i = 0; i < reads && this.window < this.o.maxBytes; i++) {
      this.window = Math.min(this.o.maxBytes, this.window * 2);
    }
  }

  /**
   * Whether a read at `offset` would continue the current run (onRead's test; no state change):
   * it starts near where the run has reached, or — while a run is open — inside the stretch the
   * run already covered, at most LATE_READ_BYTES behind its end. The latter is a kernel read that
   * arrived late: the kernel has up to max_background (12) reads in flight, FUSE threads hand them
   * to JavaScript in any order, and with lent blocks the addon may have answered reads well past
   * one still on its way here (measured: a block's first four reads arrive in any order, and a
   * late one used to reset the window and restart read-ahead from 1 MiB once every few blocks).
   * Further back is a seek: a reader looking records up in a file it streamed must not keep the
   * window (each 4 KiB lookup would get read-ahead and a whole-block load, data-path.ts).
   */
  continues(offset: number): boolean {
    if (!this.started) return offset === 0;
    if (offset >= this.lastEnd - this.o.toleranceBytes && offset <= this.lastEnd + this.o.toleranceBytes)
      return true;
    return (
      this.window > 0 &&
      offset >= Math.max(this.runStart, this.lastEnd - LATE_READ_BYTES) &&
      offset < this.lastEnd
    );
  }

  get windowBytes(): number {
    return this.window;
  }
}

/**
 * Global cap on prefetch bytes in flight. A prefetch that does not fit is skipped, never queued:
 * read-ahead is an optimisation, and the demand read will fetch the block when it gets there.
 */
export class PrefetchBudget {
  private used = 0;
  constructor(readonly capacityBytes: number) {}

  tryAcquire(bytes: number): boolean {
    if (this.used + bytes > this.capacityBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  get inflightBytes(): number {
    return this.used;
  }
}

/**
 * The read-ahead window a stream may grow to. Prefetched blocks wait in the memory tier until the
 * reader reaches them; a window larger than half the tier evicts its own blocks before they are
 * read, and each is fetched again (measured with `--peer-keep never` and a 64 MiB tier under the
 * default 64 MiB window: 143 peer fetches for 32 blocks). So with a tier the window is capped at
 * half of it (never below one block); without one (`--memory-cache 0`) prefetched blocks go to the
 * disk cache and the requested window stands.
 */
export function effectiveReadAheadMax(requested: number, memoryBytes: number, blockSize: number): number {
  if (!(memoryBytes > 0)) return requested;
  return Math.min(requested, Math.max(blockSize, Math.floor(memoryBytes / 2)));
}
