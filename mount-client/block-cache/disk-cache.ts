/**
 * Persistent block cache on local disk (NVMe on compute nodes).
 *
 * Design note: one file per block under `<cacheDir>/v3/blocks/<2 hex>/<blockKey>.blk` (256-way
 * fan-out keeps directories small at 100k+ blocks). Each file is a checksummed header + payload
 * (format.ts). Writes go to `v3/tmp/` and are renamed into place, so a crash never leaves a torn
 * file under a valid name. The in-memory index (key → size, in LRU order) is rebuilt on startup by
 * scanning the directory, ordered by file mtime, which is what lets a remount serve cached blocks
 * with zero S3 GETs. A block that fails verification is a miss: it is deleted and counted, never
 * served. Eviction is LRU under a byte cap and also keeps a free-disk floor on the filesystem, so a
 * shared NVMe is never filled by the cache. `v3/lock` holds the owning PID: two live processes must
 * not share one cache directory (each would evict the other's files behind its index).
 *
 * Small random reads use getRange(): one pread for the header, one for the covering sub-blocks,
 * and only those sub-blocks are verified (format.ts). The directory name is the layout/format
 * version: blocks of an older format are never read (a miss), and an older layout directory not
 * owned by a live process is deleted at open so it does not hold disk space forever.
 *
 * Block files are written with O_DIRECT (see put): the kernel DMAs from our buffer to the disk
 * instead of copying every byte into the page cache first. A cold read fills the cache with new
 * files, and those page-cache writes cost 2–3.5 system CPU-s/GiB — the largest remaining cost of
 * a cold read — against ~0.1 direct (bench/mount/cache-write.ts, docs/benchmarks/mount-data.md).
 * Nothing is lost by skipping the page cache: a block is written while it sits in the memory tier,
 * which serves it while it is hot.
 *
 * Whole-block reads (get with a pool buffer: the data path's read-ahead of a warm sequential
 * stream) are O_DIRECT too, for the same reason: the disk DMAs the payload straight into the
 * block buffer, ~0.06 CPU-s/GiB, where a buffered read of a block file that is not in the page
 * cache costs ~2 system CPU-s/GiB in this VM (first touch of fresh page-cache memory) and then a
 * copy. So the disk tier does not depend on the page cache at all: a warm stream is served from
 * memory, prefetched from disk ahead of the reader. Small random reads stay buffered
 * (readSliceSync's verified preads): they read 128 KiB, not a block, and the page cache is what
 * keeps a random working set hot.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { blockKey } from './block-key.ts';
import { DIRECT_IO_PHASE } from './block-pool.ts';
import {
  alignUp,
  checkHeader,
  encodeHeader,
  FILE_ALIGN,
  fileLength,
  headerLength,
  isZero,
  type ParsedHeader,
  parseHeader,
  verifySlice,
} from './format.ts';
import { rememberSubBlockCrcs } from './payload-crcs.ts';
import { type BlockId, type BlockStore, blockLength } from './types.ts';

export const CACHE_LAYOUT = 'v3';
/** Layout directories of earlier formats (removed at open when no live process owns them). */
const OLD_LAYOUTS = ['v1', 'v2'];

export interface DiskCacheOptions {
  dir: string;
  capacityBytes: number;
  /**
   * Keep at least this many bytes free on the cache filesystem. Default: 5% of the filesystem,
   * at least 1 GiB — the NVMe is usually shared with job scratch space and logs, and a full disk
   * fails unrelated work.
   */
  minFreeBytes?: number;
  /** Observers for metrics; all optional. */
  onEvict?: (bytes: number, reason: 'capacity' | 'disk-floor') => void;
  onCorrupt?: (reason: string) => void;
  /**
   * Inspect without owning: no lock, no temp-file cleanup, no eviction, no writes. Used by
   * `strata cache stats|verify` next to a running mount.
   */
  readOnly?: boolean;
  /** Sub-block size for new block files (default format.ts SUB_BLOCK_BYTES); tests use small ones. */
  subBlockBytes?: number;
  /**
   * Write block files, and read whole blocks into pool buffers, with O_DIRECT (default true).
   * Where the filesystem refuses it (tmpfs before Linux 6.6, overlay: EINVAL) the store falls
   * back to the page cache by itself, once, with one log line; false forces buffered I/O
   * (`--cache-writes buffered`; benchmarks compare the two).
   */
  directIo?: boolean;
  /**
   * Warnings (the O_DIRECT fallback, cache writes failing or skipped) and the matching recovery
   * line. Default: one JSON line on stderr, like the mount's log.
   */
  log?: (level: 'warn' | 'info', msg: string, fields: Record<string, unknown>) => void;
}

/** How block files were written (DiskCacheStats.writeModes). */
export interface WriteModes {
  /** O_DIRECT straight from the caller's buffer (a pool block on a 4 KiB boundary): no copy. */
  direct: number;
  /** O_DIRECT from the store's aligned buffer after a copy (a short last block, an unaligned buffer). */
  staged: number;
  /** Through the page cache (O_DIRECT refused by the filesystem, or turned off). */
  buffered: number;
}

/** How whole blocks were read by get() (DiskCacheStats.readModes). */
export interface ReadModes {
  /** O_DIRECT straight into the caller's (pool) buffer: no page cache, no copy. */
  direct: number;
  /** Through the page cache (no pool buffer given, O_DIRECT off or refused, an unaligned buffer). */
  buffered: number;
}

export interface DiskCacheStats {
  dir: string;
  entries: number;
  bytes: number;
  capacityBytes: number;
  minFreeBytes: number;
  hits: number;
  misses: number;
  corrupt: number;
  evictions: number;
  evictedBytes: number;
  writes: number;
  writeModes: WriteModes;
  readModes: ReadModes;
  /** Whether block files are written (and whole blocks read) with O_DIRECT (false after a fallback). */
  directIo: boolean;
  /** Block writes that failed (ENOSPC, EROFS, EACCES, EIO …); each block is then served uncached. */
  writeErrors: number;
  /** Block writes not attempted: the free-disk floor left no room even with the cache emptied. */
  writesBelowFloor: number;
  /** 'ok', 'below-floor', or the errno code of the failing writes (the state logged once). */
  writeState: string;
}

export class CacheLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `cache directory ${dir} is in use by process ${pid}; stop that mount or pass a different --cache-dir`,
    );
    this.name = 'CacheLockedError';
  }
}

/**
 * Block files kept open for readSliceSync. 64: the read-ahead windows of a few streams plus a
 * working set of random-read blocks; each costs one fd and its parsed header (~1 KiB), and
 * reopening a block costs an open + header pread + header verification (~20 µs), so the cap only
 * needs to cover the blocks being read now.
 */
const OPEN_BLOCKS = 64;

/** An open block file whose header has been read and verified once. */
interface OpenBlock {
  fd: number;
  header: ParsedHeader;
  /** 1 = sub-block i verified through this open file (see readSliceSync). */
  verified: Uint8Array;
  /** The file's ctime and size when opened: a change means it was written in place. */
  ctimeMs: number;
  size: number;
}

/**
 * A block file's verification is remembered (readSliceSync) only once its ctime is at least this
 * old at the fstat before the read. File timestamps come from the kernel's coarse clock (one tick,
 * 1-10 ms, on kernels before 6.13's fine-grained timestamps and on filesystems without them), so an
 * in-place write in the same tick as the file's last change leaves ctime as it was and the fstat
 * guard cannot see it; once ctime is older than a tick, any later write moves it. 100 ms covers
 * the coarsest tick (HZ=100) tenfold; a freshly written block is only re-verified for that long.
 */
const CTIME_SETTLE_MS = 100;

/**
 * Block writes must go this long without trouble before the episode is logged as over (see
 * noteWrite): 30 s spans the turnover of a full cache disk without hiding a real recovery long.
 */
const WRITE_QUIET_MS = 30_000;

/** Disk usage sampling interval: statfs is cheap but not free, and free space moves slowly. */
const STATFS_INTERVAL_MS = 1000;

/**
 * Aligned write buffers kept per store (each holds a padded header, and a block's copy when it
 * must be staged). 2: one write in the kernel while the next is prepared keeps one cache disk
 * busy; more would only queue on the same device and hold up to a block each.
 */
const MAX_ARENAS = 2;
/** First size of an arena: any header (a 1 KiB key, a long crc table) fits without regrowing. */
const ARENA_MIN = 64 * 1024;
/**
 * Read arenas carved from one probed buffer (each ARENA_MIN: a padded header, a short block's
 * tail page, one page to detect an over-long file). 16: the read-ahead windows of two full
 * streams in flight at once (8 blocks each). One probe for all of them: a probe is a synchronous
 * O_DIRECT write on the event loop (~6 ms on this VM's disk), and probing one arena per
 * concurrent read stalled the first warm read by ~50 ms. A 17th concurrent read probes its own.
 */
const READ_ARENAS = 16;

/** A write buffer that starts where O_DIRECT accepts it (probed: JS cannot see addresses). */
interface Arena {
  buf: Buffer;
}

/**
 * Why block writes stopped, in words a user can act on; `dir` is the --cache-dir. One line per
 * episode (see DiskBlockStore.noteWrite), so a full or read-only cache disk does not flood the log.
 */
function writeTrouble(state: string, dir: string): string {
  switch (state) {
    case 'below-floor':
      return `block cache disabled: the filesystem of ${dir} has less free space than the free-disk floor (--cache-min-free) even with the cache emptied; reads go to S3 uncached until space returns. Free space there, put --cache-dir on a larger filesystem, or lower --cache-min-free`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `block cache writes fail: the filesystem of ${dir} is full (${state}); reads go to S3 uncached until space returns. Free space there, lower --cache-size, or put --cache-dir on a larger filesystem`;
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
      return `block cache writes fail: ${dir} is not writable (${state}); reads go to S3 uncached (cached blocks are still served). Make it writable again (remount it read-write, fix its permissions) or restart the mount with another --cache-dir`;
    default:
      return `block cache writes fail at ${dir} (${state}); reads go to S3 uncached until writes succeed. Check the cache disk (dmesg, df ${dir})`;
  }
}

function defaultLog(level: string, msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

const ZERO_PAGE = Buffer.alloc(FILE_ALIGN);

const mib = (n: number) => Math.round(n / 1024 / 1024);

/** writev at `position` until every byte is written (a short write continues where it stopped). */
async function writeFully(fh: fs.FileHandle, bufs: Buffer[], position = 0): Promise<void> {
  let rest = bufs.filter((b) => b.length > 0);
  let pos = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    if (bytesWritten <= 0) throw new Error(`block file write made no progress at byte ${pos}`);
    pos += bytesWritten;
    let n = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (n >= b.length) n -= b.length;
      else {
        next.push(n > 0 ? b.subarray(n) : b);
        n = 0;
      }
    }
    rest = next;
  }
}

/** getDirect's "nothing read, read buffered instead" (distinct from a miss: undefined). */
const REFUSED = Symbol('direct read refused');

function isEinval(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'EINVAL';
}

export class DiskBlockStore implements BlockStore {
  readonly root: string;
  private readonly blocksDir: string;
  private readonly tmpDir: string;
  /** key → file size (header + payload); Map order is LRU order (oldest first). */
  private readonly index = new Map<string, number>();
  private bytes = 0;
  private minFree: number;
  private freeSample?: { at: number; free: number };
  private readonly counters = { hits: 0, misses: 0, corrupt: 0, evictions: 0, evictedBytes: 0, writes: 0 };
  private readonly writeModes: WriteModes = { direct: 0, staged: 0, buffered: 0 };
  private readonly readModes: ReadModes = { direct: 0, buffered: 0 };
  /** Idle aligned buffers for direct reads (headers and tails); see getDirect. */
  private readonly readArenas: Arena[] = [];
  /** Whether the READ_ARENAS have been carved (once, lazily, at the first direct read). */
  private readArenasMade = false;
  /** Still trying O_DIRECT; false once the filesystem refused it (or when turned off). */
  private direct: boolean;
  private readonly arenas: Arena[] = [];
  private arenaCount = 0;
  private readonly arenaWaiters: (() => void)[] = [];
  /**
   * Per caller ArrayBuffer, whether a direct write from a view starting at a given offset (mod
   * FILE_ALIGN) was accepted. Learned from the first write at each phase, so a pool whose stores
   * are not aligned costs one refused syscall per phase, then a copy per block.
   */
  private readonly viewPhases = new WeakMap<ArrayBuffer, Map<number, boolean>>();
  private locked = false;
  /**
   * Fan-out directories known to exist: a mkdir per block write was ~2% of a cold read's CPU
   * (a thread-pool round trip each), for at most 256 directories.
   */
  private readonly madeDirs = new Set<string>();
  /** key → open block file, Map order = LRU (readSliceSync). Closed when the key is dropped. */
  private readonly openBlocks = new Map<string, OpenBlock>();
  /** Reused for slices that do not map 1:1 onto the caller's buffer (unaligned / partial reads). */
  private scratch = Buffer.alloc(0);
  /** See noteWrite: the state of block writes, logged on change only. */
  private writeState = 'ok';
  private writeTroubleSince = 0;
  private lastTroubleAt = 0;
  private writeErrors = 0;
  private writesBelowFloor = 0;

  private constructor(private readonly o: DiskCacheOptions) {
    this.root = path.join(o.dir, CACHE_LAYOUT);
    this.blocksDir = path.join(this.root, 'blocks');
    this.tmpDir = path.join(this.root, 'tmp');
    this.minFree = o.minFreeBytes ?? 0;
    this.direct = o.directIo !== false && !o.readOnly;
  }

  static async open(o: DiskCacheOptions): Promise<DiskBlockStore> {
    const s = new DiskBlockStore(o);
    if (o.readOnly) {
      await fs.mkdir(s.blocksDir, { recursive: true });
      await s.scan();
      return s;
    }
    await fs.mkdir(s.blocksDir, { recursive: true });
    // Block files hold object bytes and a mount is private to its user (unless --allow-other):
    // a 0700 root keeps every block out of other local users' reach, whatever the files' modes.
    // EPERM: the root belongs to another user who chose its mode (a shared group cache); keep it.
    await fs.chmod(s.root, 0o700).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPERM') throw err;
    });
    await s.acquireLock();
    // Leftover temp files are writes interrupted by a crash: never valid, always safe to drop.
    await fs.rm(s.tmpDir, { recursive: true, force: true });
    await fs.mkdir(s.tmpDir, { recursive: true });
    await s.removeOldLayouts();
    const st = await fs.statfs(s.root);
    const total = st.blocks * st.bsize;
    if (o.minFreeBytes === undefined) s.minFree = Math.max(1024 ** 3, Math.floor(total * 0.05));
    if (s.minFree > 0 && total <= s.minFree) {
      // Documented behaviour (docs/mount.md): the mount runs, uncached, and says so once here;
      // the floor protects other users of a disk, and a filesystem smaller than it can hold no
      // cache. Refusing to mount would stop reads that S3 can serve without a cache.
      s.writeState = 'below-floor';
      (o.log ?? defaultLog)(
        'warn',
        `block cache disabled: the filesystem of ${o.dir} (${mib(total)} MiB) is not larger than the free-disk floor (${mib(s.minFree)} MiB); reads go to S3 uncached. Pass --cache-min-free with a smaller floor (e.g. --cache-min-free 0 on a dedicated tmpfs) or put --cache-dir on a larger filesystem`,
        { dir: o.dir, filesystemBytes: total, minFreeBytes: s.minFree },
      );
    }
    await s.scan();
    return s;
  }

  private async acquireLock(): Promise<void> {
    const lockPath = path.join(this.root, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(lockPath, String(process.pid), { flag: 'wx' });
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number.parseInt(await fs.readFile(lockPath, 'utf8').catch(() => ''), 10);
        if (pid && pid !== process.pid && isAlive(pid)) throw new CacheLockedError(this.o.dir, pid);
        // Stale lock from a killed process (or our own earlier instance that was not closed).
        await fs.rm(lockPath, { force: true });
      }
    }
    throw new CacheLockedError(this.o.dir, -1);
  }

  private async removeOldLayouts(): Promise<void> {
    for (const old of OLD_LAYOUTS) {
      const dir = path.join(this.o.dir, old);
      const pid = Number.parseInt(await fs.readFile(path.join(dir, 'lock'), 'utf8').catch(() => ''), 10);
      if (pid && isAlive(pid)) continue; // an older mount still runs on it; leave its files alone
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /** Rebuilds the index from the directory; LRU order approximated by mtime (oldest evicted first). */
  private async scan(): Promise<void> {
    const found: { key: string; size: number; mtime: number }[] = [];
    const subdirs = await fs.readdir(this.blocksDir);
    for (const sub of subdirs) {
      const dir = path.join(this.blocksDir, sub);
      const names = await fs.readdir(dir).catch(() => [] as string[]);
      await Promise.all(
        names.map(async (name) => {
          if (!name.endsWith('.blk')) return;
          const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
          if (st?.isFile()) found.push({ key: name.slice(0, -4), size: st.size, mtime: st.mtimeMs });
        }),
      );
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.index.set(f.key, f.size);
      this.bytes += f.size;
    }
    if (!this.o.readOnly) await this.evict();
  }

  private filePath(key: string): string {
    return path.join(this.blocksDir, key.slice(0, 2), `${key}.blk`);
  }

  has(id: BlockId): boolean {
    return this.index.has(blockKey(id));
  }

  hasKey(key: string): boolean {
    return this.index.has(key);
  }

  private sub(id: BlockId): number | undefined {
    return this.o.subBlockBytes === undefined ? undefined : Math.min(this.o.subBlockBytes, id.blockSize);
  }

  /**
   * Bytes [start, end) of a cached block's payload, verifying only the sub-blocks they fall in.
   * A miss, a corrupt header or a corrupt slice → undefined (a corrupt file is deleted and counted).
   */
  async getRange(id: BlockId, key: string, start: number, end: number): Promise<Buffer | undefined> {
    const size = this.index.get(key);
    const len = blockLength(id);
    if (size === undefined || start < 0 || end > len || start >= end) {
      this.counters.misses++;
      return undefined;
    }
    const hl = headerLength(id, this.sub(id));
    const header = Buffer.allocUnsafe(hl);
    let h: ReturnType<typeof checkHeader>;
    let slice: Buffer;
    let firstSub: number;
    try {
      const fh = await fs.open(this.filePath(key), fsc.O_RDONLY);
      try {
        const n = (await fh.read(header, 0, hl, 0)).bytesRead;
        h = checkHeader(header.subarray(0, n), id, len);
        if ('error' in h) return await this.corrupt(key, h.error);
        const sub = h.subBlockSize;
        firstSub = Math.floor(start / sub);
        const from = firstSub * sub;
        const to = Math.min(len, Math.ceil(end / sub) * sub);
        slice = Buffer.allocUnsafe(to - from);
        const got = (await fh.read(slice, 0, slice.length, h.headerLength + from)).bytesRead;
        if (got !== slice.length) return await this.corrupt(key, 'length');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.forget(key);
        this.counters.misses++;
        return undefined;
      }
      throw err;
    }
    if (!verifySlice(h, firstSub, slice)) return this.corrupt(key, 'payload-checksum');
    this.index.delete(key);
    this.index.set(key, size);
    this.counters.hits++;
    const from = firstSub * h.subBlockSize;
    return slice.subarray(start - from, end - from);
  }

  /**
   * The FUSE hot path for a block on disk: bytes [start, end) of its payload read synchronously
   * into `into` (at 0), verifying the sub-blocks they fall in against the header's crc32c table.
   * Returns the byte count, or undefined on a miss or a bad file (dropped and counted as corrupt,
   * so the caller's fallback refetches it).
   *
   * Why synchronous and without the memory tier: a kernel read is 128 KiB, aligned to a 128 KiB
   * sub-block, so it is one pread from the block file straight into the kernel's buffer (no
   * block-sized buffer, no copy out of it, no promise or thread-pool hop) and one crc32c over the
   * bytes just read. Loading the whole 8 MiB block into memory first cost a fresh buffer (page
   * faults, V8 external-memory GCs), a second copy and ~3× the CPU per GiB of a memory hit
   * (docs/benchmarks/mount.md). The pread blocks the event loop for a page-cache copy (~10 µs) or
   * one NVMe read (~100 µs, about one FUSE round trip), which the cache disk is sized for.
   *
   * Each sub-block is verified once per open file, not on every read: the first read through an
   * open block file checks its crc32c; later reads of it through the same file trust it (the
   * crc32c was ~60% of this path's CPU, and a re-read paid it again every pass). This is the
   * integrity contract the memory tier always had — verified once, then served from RAM (here the
   * kernel's page cache) for as long as it stays open — with two guards: Strata never writes a
   * block file in place (temp + rename; a replaced, evicted or corrupt block's file is closed), and
   * an fstat per read (~1 µs) catches anyone else's in-place write (ctime or size changed): the
   * file is reopened and every sub-block verified again. A file changed within the last
   * CTIME_SETTLE_MS is verified on every read (a same-tick write would not move its ctime). A
   * file is reopened, and re-verified, after it leaves the OPEN_BLOCKS window and at every mount.
   */
  readSliceSync(id: BlockId, key: string, start: number, end: number, into: Buffer): number | undefined {
    const size = this.index.get(key);
    const len = blockLength(id);
    if (size === undefined || start < 0 || end > len || start >= end || into.length < end - start) {
      return undefined;
    }
    let open = this.openBlocks.get(key);
    if (open) {
      let st: { ctimeMs: number; size: number } | undefined;
      try {
        st = fstatSync(open.fd);
      } catch {
        st = undefined;
      }
      if (!st || st.ctimeMs !== open.ctimeMs || st.size !== open.size) {
        this.closeOpen(key);
        open = undefined;
      }
    }
    open ??= this.openBlock(id, key, len);
    if (!open) return undefined;
    const h = open.header;
    const sub = h.subBlockSize;
    const firstSub = Math.floor(start / sub);
    const from = firstSub * sub;
    const to = Math.min(len, Math.ceil(end / sub) * sub);
    // Aligned whole sub-blocks (every streaming kernel read) land in `into` directly.
    const direct = from === start && to === end;
    if (!direct && this.scratch.length < to - from) this.scratch = Buffer.allocUnsafe(to - from);
    const target = direct ? into : this.scratch;
    let n: number;
    try {
      n = readSync(open.fd, target, 0, to - from, h.headerLength + from);
    } catch {
      this.dropSync(key);
      this.counters.misses++;
      return undefined;
    }
    if (n !== to - from) return this.corruptSync(key, 'length');
    const lastSub = Math.ceil(to / sub) - 1;
    let known = true;
    for (let i = firstSub; i <= lastSub; i++) if (open.verified[i] !== 1) known = false;
    if (!known) {
      if (!verifySlice(h, firstSub, target.subarray(0, n))) return this.corruptSync(key, 'payload-checksum');
      // ctime was fstat'ed just before this pread (here or in openBlock): see CTIME_SETTLE_MS.
      if (Date.now() - open.ctimeMs > CTIME_SETTLE_MS) open.verified.fill(1, firstSub, lastSub + 1);
    }
    if (!direct) target.copy(into, 0, start - from, end - from);
    // Recency: the key and its open file move to the young end.
    this.index.delete(key);
    this.index.set(key, size);
    if (this.openBlocks.size > 1) {
      this.openBlocks.delete(key);
      this.openBlocks.set(key, open);
    }
    this.counters.hits++;
    return end - start;
  }

  /** Opens a block file and verifies its header (once per open); undefined on a miss or a bad file. */
  private openBlock(id: BlockId, key: string, len: number): OpenBlock | undefined {
    let fd: number;
    try {
      fd = openSync(this.filePath(key), fsc.O_RDONLY);
    } catch (err) {
      // Gone (deleted behind us): forget it. Anything else (EMFILE …): a miss, the file stays.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.forget(key);
      this.counters.misses++;
      return undefined;
    }
    const hl = headerLength(id, this.sub(id));
    const buf = Buffer.allocUnsafe(hl);
    let h: ReturnType<typeof checkHeader>;
    try {
      h = checkHeader(buf.subarray(0, readSync(fd, buf, 0, hl, 0)), id, len);
    } catch {
      h = { error: 'short' };
    }
    if ('error' in h) {
      closeSync(fd);
      return this.corruptSync(key, h.error);
    }
    let st: { ctimeMs: number; size: number };
    try {
      st = fstatSync(fd);
    } catch {
      closeSync(fd);
      this.counters.misses++;
      return undefined;
    }
    if (this.openBlocks.size >= OPEN_BLOCKS) {
      const [oldest, o] = this.openBlocks.entries().next().value as [string, OpenBlock];
      this.openBlocks.delete(oldest);
      closeSync(o.fd);
    }
    const open: OpenBlock = {
      fd,
      header: h,
      verified: new Uint8Array(h.subCrcs.length),
      ctimeMs: st.ctimeMs,
      size: st.size,
    };
    this.openBlocks.set(key, open);
    return open;
  }

  /** Closes a key's open file, if any (its file is being removed or replaced). */
  private closeOpen(key: string): void {
    const o = this.openBlocks.get(key);
    if (!o) return;
    this.openBlocks.delete(key);
    closeSync(o.fd);
  }

  /** Drops a key now (index and open file) and deletes its file in the background. */
  private dropSync(key: string): void {
    this.forget(key);
    fs.rm(this.filePath(key), { force: true }).catch(() => undefined);
  }

  private corruptSync(key: string, reason: string): undefined {
    this.counters.corrupt++;
    this.counters.misses++;
    this.o.onCorrupt?.(reason);
    this.dropSync(key);
    return undefined;
  }

  private async corrupt(key: string, reason: string): Promise<undefined> {
    this.counters.corrupt++;
    this.counters.misses++;
    this.o.onCorrupt?.(reason);
    await this.remove(key);
    return undefined;
  }

  /**
   * A whole cached block, verified (every sub-block's crc32c, once). With `into` (a buffer of
   * exactly the block's length, e.g. from the block pool) the payload is read straight into it —
   * one preadv of header, payload, its zero padding and one byte past the end (to detect a longer,
   * wrong file) — and
   * `into` itself is returned; without, a new buffer. A miss or a corrupt file → undefined.
   */
  async get(id: BlockId, key = blockKey(id), into?: Buffer): Promise<Buffer | undefined> {
    const size = this.index.get(key);
    if (size === undefined) {
      this.counters.misses++;
      return undefined;
    }
    const len = blockLength(id);
    if (into && into.length !== len) throw new RangeError(`into is ${into.length} bytes, block is ${len}`);
    if (into && this.direct) {
      const got = await this.getDirect(id, key, size, len, into);
      if (got !== REFUSED) return got;
    }
    const hl = headerLength(id, this.sub(id));
    const header = Buffer.allocUnsafe(hl);
    const payload = into ?? Buffer.allocUnsafe(len);
    const pad = alignUp(len) - len;
    const extra = Buffer.allocUnsafe(pad + 1);
    let n: number;
    try {
      const fh = await fs.open(this.filePath(key), fsc.O_RDONLY);
      try {
        n = (await fh.readv([header, payload, extra], 0)).bytesRead;
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.forget(key);
        this.counters.misses++;
        return undefined;
      }
      throw err;
    }
    const h = checkHeader(header.subarray(0, Math.min(n, hl)), id, len);
    if ('error' in h) return this.corrupt(key, h.error);
    if (h.headerLength !== hl || n !== fileLength(hl, len)) return this.corrupt(key, 'length');
    if (!verifySlice(h, 0, payload)) return this.corrupt(key, 'payload-checksum');
    if (!isZero(extra.subarray(0, pad))) return this.corrupt(key, 'padding');
    // Verified: a peer answering for this block, or a later write, reuses the table.
    rememberSubBlockCrcs(payload, h.subBlockSize, h.subCrcs);
    this.index.delete(key);
    this.index.set(key, size);
    this.counters.hits++;
    this.readModes.buffered++;
    return payload;
  }

  /**
   * get() with O_DIRECT: one preadv of [header → read arena, payload's whole pages → `into`,
   * the short last page → arena, one more page → arena]. The payload lands in `into` by DMA,
   * with no page-cache copy; only a short block's last partial page (< 4 KiB) is copied. The
   * extra page must come back empty: a longer file is a bad file (as the buffered read's extra
   * byte checks). Verified exactly like the buffered read (header, every sub-block's crc32c, zero
   * padding), so a corrupt block is still a miss, deleted, never served.
   *
   * REFUSED (nothing read, the caller reads buffered) when `into` is not on an O_DIRECT boundary
   * (learned once per buffer phase, like writes) or the filesystem refuses O_DIRECT (then
   * turned off for the store, with the one log line of disableDirect).
   */
  private async getDirect(
    id: BlockId,
    key: string,
    size: number,
    len: number,
    into: Buffer,
  ): Promise<Buffer | undefined | typeof REFUSED> {
    const ab = into.buffer as ArrayBuffer;
    const phase = into.byteOffset % FILE_ALIGN;
    if (this.viewPhases.get(ab)?.get(phase) === false) return REFUSED;
    const hl = headerLength(id, this.sub(id));
    const whole = len - (len % FILE_ALIGN);
    const tail = alignUp(len) - whole;
    const arena = this.takeReadArena(hl + tail + FILE_ALIGN);
    if (!arena) return REFUSED;
    try {
      const header = arena.buf.subarray(0, hl);
      const tailPage = arena.buf.subarray(hl, hl + tail);
      const extra = arena.buf.subarray(hl + tail, hl + tail + FILE_ALIGN);
      let fh: fs.FileHandle;
      try {
        fh = await fs.open(this.filePath(key), fsc.O_RDONLY | fsc.O_DIRECT);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          this.forget(key);
          this.counters.misses++;
          return undefined;
        }
        if (code !== 'EINVAL') throw err;
        this.disableDirect(err, 'open');
        return REFUSED;
      }
      let n: number;
      try {
        const iov = [header, into.subarray(0, whole), tailPage, extra].filter((b) => b.length > 0);
        n = (await fh.readv(iov, 0)).bytesRead;
      } catch (err) {
        if (!isEinval(err)) throw err;
        // Alignment is checked before any I/O: `into` sits at a phase the kernel refuses (the
        // arena was probed), so this buffer's phase reads buffered from now on.
        this.rememberPhase(ab, phase, false);
        return REFUSED;
      } finally {
        await fh.close();
      }
      this.rememberPhase(ab, phase, true);
      const h = checkHeader(header.subarray(0, Math.min(n, hl)), id, len);
      if ('error' in h) return await this.corrupt(key, h.error);
      if (h.headerLength !== hl || n !== fileLength(hl, len)) return await this.corrupt(key, 'length');
      if (tail > 0) tailPage.copy(into, whole, 0, len - whole);
      if (!verifySlice(h, 0, into)) return await this.corrupt(key, 'payload-checksum');
      if (!isZero(tailPage.subarray(len - whole))) return await this.corrupt(key, 'padding');
      rememberSubBlockCrcs(into, h.subBlockSize, h.subCrcs);
      this.index.delete(key);
      this.index.set(key, size);
      this.counters.hits++;
      this.readModes.direct++;
      return into;
    } finally {
      this.giveReadArena(arena);
    }
  }

  /** An aligned buffer of at least `bytes` for a direct read; undefined = read buffered. */
  private takeReadArena(bytes: number): Arena | undefined {
    if (!this.direct || bytes > ARENA_MIN) return undefined;
    if (!this.readArenasMade) {
      this.readArenasMade = true;
      // ARENA_MIN is a multiple of FILE_ALIGN, so every piece of an aligned buffer is aligned too.
      const all = this.makeArena(READ_ARENAS * ARENA_MIN);
      if (!all) return undefined;
      for (let i = 0; i < READ_ARENAS; i++) {
        this.readArenas.push({ buf: all.buf.subarray(i * ARENA_MIN, (i + 1) * ARENA_MIN) });
      }
    }
    return this.readArenas.pop() ?? this.makeArena(ARENA_MIN);
  }

  private giveReadArena(a: Arena): void {
    if (this.direct && this.readArenas.length < READ_ARENAS) this.readArenas.push(a);
  }

  /**
   * Writes a block file: temp file + rename, so a crash never leaves a torn file under a valid
   * name. With O_DIRECT (see the module note) every write offset, length and buffer address must
   * sit on the device's block boundary: the header is built padded in an aligned arena, and the
   * payload goes straight from `data` when it is a whole number of 4 KiB pages on a 4 KiB
   * boundary (a pool block, block-pool.ts), else it is copied into the arena behind the header
   * with its zero padding (a file's short last block, a buffer from elsewhere). A filesystem that
   * refuses O_DIRECT (EINVAL at open or for an aligned buffer) turns it off for this store, with
   * one log line, and the write is redone through the page cache.
   */
  async put(id: BlockId, data: Buffer, key = blockKey(id)): Promise<void> {
    if (this.o.readOnly) throw new Error(`cache ${this.o.dir} was opened read-only`);
    if (data.length !== blockLength(id)) {
      throw new Error(
        `block ${id.index} of ${id.object.key}: ${data.length} bytes, expected ${blockLength(id)}`,
      );
    }
    // A block the floor would evict at once (the filesystem is smaller than the floor, or others
    // filled it) is not written: writing it only to delete it cost a block of disk I/O per read.
    if (!(await this.roomFor(data.length))) {
      this.writesBelowFloor++;
      this.noteWrite('below-floor');
      return;
    }
    try {
      await this.write(id, data, key);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.writeErrors++;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        // A full disk (the floor is 0 or below what others wrote since the last statfs): give
        // back the oldest blocks, room for a few more, so the cache keeps turning over (LRU)
        // instead of freezing with what it held when the disk filled; and sample free space
        // again so the floor check sees the truth at the next write.
        this.freeSample = undefined;
        await this.evictOldest(data.length * 4).catch(() => undefined);
      }
      this.noteWrite(code, err);
      throw err;
    }
    this.noteWrite('ok');
  }

  /**
   * Whether a block of `bytes` can be kept above the free-disk floor, counting what evicting the
   * whole cache would free. False only when even an empty cache would sit below the floor.
   */
  private async roomFor(bytes: number): Promise<boolean> {
    if (this.minFree <= 0) return true;
    let free: number;
    try {
      free = await this.freeBytes();
    } catch {
      return true; // statfs failed (the directory is gone): the write itself reports what is wrong
    }
    return free + this.bytes - bytes >= this.minFree;
  }

  /**
   * Logs trouble with block writes once per episode: a full, read-only or removed cache disk fails
   * every block write, and a line per block would bury the log. The episode ends (one 'resumed'
   * line) at the first good write after WRITE_QUIET_MS without trouble: a full disk the cache
   * keeps turning over (put evicts on ENOSPC) alternates good and failed writes, and must not
   * log a pair of lines per block.
   */
  private noteWrite(state: string, err?: unknown): void {
    const now = Date.now();
    const log = this.o.log ?? defaultLog;
    if (state === 'ok') {
      if (this.writeState === 'ok' || now - this.lastTroubleAt < WRITE_QUIET_MS) return;
      log('info', `block cache writes resumed at ${this.o.dir}`, {
        dir: this.o.dir,
        after: this.writeState,
        seconds: Math.round((now - this.writeTroubleSince) / 1000),
      });
      this.writeState = 'ok';
      return;
    }
    this.lastTroubleAt = now;
    if (this.writeState !== 'ok') return;
    this.writeState = state;
    this.writeTroubleSince = now;
    log('warn', writeTrouble(state, this.o.dir), {
      dir: this.o.dir,
      state,
      ...(err ? { error: (err as Error).message } : {}),
      minFreeBytes: this.minFree,
    });
  }

  /** put() proper: temp file, rename, index, evict. */
  private async write(id: BlockId, data: Buffer, key: string): Promise<void> {
    const tmp = path.join(this.tmpDir, `${key}.${randomBytes(6).toString('hex')}.tmp`);
    const final = this.filePath(key);
    let size: number;
    try {
      size = await this.writeTemp(id, data, tmp).catch(async (err: NodeJS.ErrnoException) => {
        // The cache directory was removed while mounted (`rm -rf` of it, a wiped scratch disk):
        // recreate it once and go on caching, instead of failing every write until a remount.
        if (err.code !== 'ENOENT') throw err;
        await this.recreate();
        return this.writeTemp(id, data, tmp);
      });
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    const sub = path.dirname(final);
    if (!this.madeDirs.has(sub)) {
      await fs.mkdir(sub, { recursive: true });
      this.madeDirs.add(sub);
    }
    try {
      await fs.rename(tmp, final);
    } catch (err) {
      // The fan-out directory was removed behind us (`strata cache clear`): recreate it once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fs.mkdir(sub, { recursive: true });
      await fs.rename(tmp, final);
    }
    const old = this.index.get(key);
    if (old !== undefined) this.bytes -= old;
    this.closeOpen(key);
    this.index.delete(key);
    this.index.set(key, size);
    this.bytes += size;
    this.counters.writes++;
    if (this.freeSample) this.freeSample.free -= size;
    await this.evict();
  }

  private async writeTemp(id: BlockId, data: Buffer, tmp: string): Promise<number> {
    return (
      (this.direct && (await this.writeDirect(id, data, tmp))) || (await this.writeBuffered(id, data, tmp))
    );
  }

  /**
   * Recreates the layout directory and its lock after the cache directory was deleted under a
   * running mount (one log line, however many writes found it gone at once); the caller retries
   * its write once. Blocks the index still lists are gone with it: each is forgotten when a read
   * or an eviction finds its file missing.
   */
  private recreate(): Promise<void> {
    this.recreating ??= (async () => {
      const gone = await fs.stat(this.tmpDir).then(
        () => false,
        () => true,
      );
      if (!gone) return;
      await fs.mkdir(this.tmpDir, { recursive: true });
      await fs.mkdir(this.blocksDir, { recursive: true });
      await fs.chmod(this.root, 0o700).catch(() => undefined);
      if (this.locked) await fs.writeFile(path.join(this.root, 'lock'), String(process.pid));
      this.madeDirs.clear();
      this.freeSample = undefined;
      (this.o.log ?? defaultLog)(
        'warn',
        `the cache directory ${this.o.dir} was removed while mounted; recreated it (its cached blocks are fetched again as they are read)`,
        { dir: this.o.dir },
      );
    })().finally(() => {
      this.recreating = undefined;
    });
    return this.recreating;
  }
  private recreating?: Promise<void>;

  /** The page-cache write (the fallback): header, payload and zero padding in one writev. */
  private async writeBuffered(id: BlockId, data: Buffer, tmp: string): Promise<number> {
    const header = encodeHeader(id, data, this.sub(id));
    const pad = ZERO_PAGE.subarray(0, alignUp(data.length) - data.length);
    const fh = await fs.open(tmp, 'w');
    try {
      await writeFully(fh, [header, data, pad]);
    } finally {
      await fh.close();
    }
    this.writeModes.buffered++;
    return header.length + data.length + pad.length;
  }

  /**
   * The O_DIRECT write; the file's size, or 0 when O_DIRECT was refused (now turned off: the
   * caller writes buffered).
   */
  private async writeDirect(id: BlockId, data: Buffer, tmp: string): Promise<number> {
    const sub = this.sub(id);
    const hl = headerLength(id, sub);
    const padded = alignUp(data.length);
    // Sized for the staged case too: an arena is virtual memory (calloc'd), and only the pages a
    // write touches become resident — just the header's when the payload goes from `data`.
    const arena = await this.takeArena(hl + padded);
    if (!arena) return 0;
    try {
      const header = encodeHeader(id, data, sub, arena.buf);
      let fh: fs.FileHandle;
      try {
        fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_DIRECT);
      } catch (err) {
        if (!isEinval(err)) throw err;
        this.disableDirect(err, 'open');
        return 0;
      }
      try {
        const ab = data.buffer as ArrayBuffer;
        const phase = data.byteOffset % FILE_ALIGN;
        if (padded === data.length && this.viewPhases.get(ab)?.get(phase) !== false) {
          try {
            await writeFully(fh, [header, data]);
            this.rememberPhase(ab, phase, true);
            this.writeModes.direct++;
            return hl + padded;
          } catch (err) {
            if (!isEinval(err)) throw err;
            // Refused before any byte was written (alignment is checked up front). Whether the
            // buffer or the filesystem was at fault, the aligned arena's write below decides.
            this.rememberPhase(ab, phase, false);
          }
        }
        const body = arena.buf.subarray(hl, hl + padded);
        data.copy(body);
        body.fill(0, data.length);
        try {
          await writeFully(fh, [arena.buf.subarray(0, hl + padded)]);
        } catch (err) {
          if (!isEinval(err)) throw err;
          this.disableDirect(err, 'write');
          return 0;
        }
        this.writeModes.staged++;
        return hl + padded;
      } finally {
        await fh.close();
      }
    } finally {
      this.giveArena(arena);
    }
  }

  private rememberPhase(ab: ArrayBuffer, phase: number, ok: boolean): void {
    const m = this.viewPhases.get(ab) ?? new Map<number, boolean>();
    m.set(phase, ok);
    this.viewPhases.set(ab, m);
  }

  /** An aligned arena of at least `bytes`, waiting for one if MAX_ARENAS are busy; undefined = buffered. */
  private async takeArena(bytes: number): Promise<Arena | undefined> {
    for (;;) {
      if (!this.direct) return undefined;
      const a = this.arenas.pop();
      if (a) {
        if (a.buf.length >= bytes) return a;
        this.arenaCount--; // too small (a bigger block size or a longer header): replace it
      }
      if (this.arenaCount < MAX_ARENAS) {
        // Headroom: the next block's header may be a little longer (a longer key).
        const made = this.makeArena(Math.max(ARENA_MIN, bytes + ARENA_MIN));
        if (made) this.arenaCount++;
        return made;
      }
      await new Promise<void>((resolve) => this.arenaWaiters.push(resolve));
    }
  }

  private giveArena(a: Arena): void {
    if (this.direct) this.arenas.push(a);
    else this.arenaCount--;
    this.arenaWaiters.shift()?.();
  }

  /**
   * A buffer of `size` bytes on an O_DIRECT boundary. JS cannot see addresses, so the boundary is
   * found by probing: one 4 KiB O_DIRECT write from candidate offsets until the kernel accepts
   * one (a misaligned one is refused with EINVAL before any I/O). The pool's phase is tried first
   * (usually right), then every 16 bytes (allocations are 16-aligned). Done once per arena.
   */
  private makeArena(size: number): Arena | undefined {
    const ab = new ArrayBuffer(size + FILE_ALIGN);
    const probe = path.join(this.tmpDir, `direct-probe.${process.pid}`);
    let fd: number;
    try {
      fd = openSync(probe, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_DIRECT);
    } catch (err) {
      if (!isEinval(err)) throw err;
      this.disableDirect(err, 'open');
      return undefined;
    }
    try {
      const candidates = [DIRECT_IO_PHASE];
      for (let off = 0; off < FILE_ALIGN; off += 16) if (off !== DIRECT_IO_PHASE) candidates.push(off);
      for (const off of candidates) {
        try {
          writeSync(fd, Buffer.from(ab, off, FILE_ALIGN), 0, FILE_ALIGN, 0);
          return { buf: Buffer.from(ab, off, size) };
        } catch (err) {
          if (!isEinval(err)) throw err;
        }
      }
    } finally {
      closeSync(fd);
      try {
        unlinkSync(probe);
      } catch {
        // already gone: nothing to clean
      }
    }
    const err = Object.assign(new Error('no offset of a 4 KiB-padded buffer took an O_DIRECT write'), {
      code: 'EINVAL',
    });
    this.disableDirect(err, 'probe');
    return undefined;
  }

  /** Turns O_DIRECT off for this store (the filesystem refused it), with one log line. */
  private disableDirect(err: unknown, at: 'open' | 'write' | 'probe'): void {
    if (!this.direct) return;
    this.direct = false;
    this.arenaCount -= this.arenas.length;
    this.arenas.length = 0;
    this.readArenas.length = 0;
    (this.o.log ?? defaultLog)(
      'warn',
      'the cache filesystem refused O_DIRECT; block files are written and read through the page cache from now on (costs more CPU per cached byte; put --cache-dir on ext4 or xfs to avoid it)',
      { dir: this.o.dir, at, code: (err as NodeJS.ErrnoException)?.code, error: (err as Error)?.message },
    );
    for (const wake of this.arenaWaiters.splice(0)) wake();
  }

  private forget(key: string): void {
    this.closeOpen(key);
    const size = this.index.get(key);
    if (size === undefined) return;
    this.index.delete(key);
    this.bytes -= size;
  }

  private async remove(key: string): Promise<void> {
    this.forget(key);
    await fs.rm(this.filePath(key), { force: true });
  }

  private async freeBytes(): Promise<number> {
    const now = Date.now();
    if (!this.freeSample || now - this.freeSample.at > STATFS_INTERVAL_MS) {
      const st = await fs.statfs(this.root);
      this.freeSample = { at: now, free: st.bavail * st.bsize };
    }
    return this.freeSample.free;
  }

  private async evict(): Promise<void> {
    while (this.index.size > 0) {
      let reason: 'capacity' | 'disk-floor';
      if (this.bytes > this.o.capacityBytes) reason = 'capacity';
      // No floor (--cache-min-free 0): the free-space estimate, which each write lowers between
      // statfs samples, can dip below zero on a full disk and must not evict the cache then.
      else if (this.minFree > 0 && (await this.freeBytes()) < this.minFree) reason = 'disk-floor';
      else return;
      const [key, size] = this.index.entries().next().value as [string, number];
      await this.remove(key);
      this.counters.evictions++;
      this.counters.evictedBytes += size;
      if (this.freeSample) this.freeSample.free += size;
      this.o.onEvict?.(size, reason);
    }
  }

  /** Evicts the oldest blocks until `bytes` are freed (a full cache disk: see put). */
  private async evictOldest(bytes: number): Promise<void> {
    let freed = 0;
    while (freed < bytes && this.index.size > 0) {
      const [key, size] = this.index.entries().next().value as [string, number];
      await this.remove(key);
      freed += size;
      this.counters.evictions++;
      this.counters.evictedBytes += size;
      this.o.onEvict?.(size, 'disk-floor');
    }
  }

  /**
   * Reads and checks every block file (`strata cache verify`); bad ones are deleted. Returns the
   * counts and the reasons.
   */
  async verify(): Promise<{
    checked: number;
    bad: number;
    removed: number;
    reasons: Record<string, number>;
  }> {
    let checked = 0;
    let bad = 0;
    let removed = 0;
    const reasons: Record<string, number> = {};
    for (const key of [...this.index.keys()]) {
      checked++;
      const reason = await this.verifyFile(this.filePath(key));
      if (reason) {
        bad++;
        reasons[reason] = (reasons[reason] ?? 0) + 1;
        this.counters.corrupt++;
        // Read-only (a mount owns the directory): report only; the mount drops bad blocks on read.
        if (!this.o.readOnly) {
          await this.remove(key);
          removed++;
        }
      }
    }
    return { checked, bad, removed, reasons };
  }

  private async verifyFile(file: string): Promise<string | undefined> {
    const buf = await fs.readFile(file).catch(() => undefined);
    if (!buf) return 'unreadable';
    const h = parseHeader(buf);
    if ('error' in h) return h.error;
    if (buf.length !== fileLength(h.headerLength, h.payloadLength)) return 'length';
    const payloadEnd = h.headerLength + h.payloadLength;
    if (!verifySlice(h, 0, buf.subarray(h.headerLength, payloadEnd))) return 'payload-checksum';
    if (!isZero(buf.subarray(payloadEnd))) return 'padding';
    return undefined;
  }

  /** Deletes every cached block (`strata cache clear`). */
  async clear(): Promise<{ entries: number; bytes: number }> {
    if (this.o.readOnly) throw new Error(`cache ${this.o.dir} was opened read-only`);
    const r = { entries: this.index.size, bytes: this.bytes };
    for (const key of [...this.openBlocks.keys()]) this.closeOpen(key);
    this.index.clear();
    this.bytes = 0;
    await fs.rm(this.blocksDir, { recursive: true, force: true });
    await fs.mkdir(this.blocksDir, { recursive: true });
    this.madeDirs.clear();
    return r;
  }

  /** Whether the store does O_DIRECT I/O now (false when turned off or after a fallback). */
  get directIo(): boolean {
    return this.direct;
  }

  stats(): DiskCacheStats {
    return {
      dir: this.o.dir,
      entries: this.index.size,
      bytes: this.bytes,
      capacityBytes: this.o.capacityBytes,
      minFreeBytes: this.minFree,
      ...this.counters,
      writeModes: { ...this.writeModes },
      readModes: { ...this.readModes },
      directIo: this.direct,
      writeErrors: this.writeErrors,
      writesBelowFloor: this.writesBelowFloor,
      writeState: this.writeState,
    };
  }

  async close(): Promise<void> {
    for (const key of [...this.openBlocks.keys()]) this.closeOpen(key);
    if (this.locked) {
      this.locked = false;
      await fs.rm(path.join(this.root, 'lock'), { force: true });
    }
  }
}

/** PID of the live process that owns a cache directory, if any (for `strata cache`). */
export async function cacheOwner(dir: string): Promise<number | undefined> {
  const pid = Number.parseInt(
    await fs.readFile(path.join(dir, CACHE_LAYOUT, 'lock'), 'utf8').catch(() => ''),
    10,
  );
  return pid && isAlive(pid) ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
