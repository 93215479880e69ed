/**
 * The mount client's data path: bytes of an object version, by offset, through the tiers
 * memory → disk cache → peer (optional) → S3.
 *
 * Interface (what the FUSE layer and the peer tier code against):
 *
 *   createDataPath(o: DataPathOptions): Promise<DataPath>
 *   DataPath.open(v: ObjectVersion): FileReader      — one per open file handle (own read-ahead state)
 *   FileReader.read(offset, length): Promise<Buffer> — short only at EOF; empty past EOF. The buffer
 *                                                     may be a view into a pooled block: read-only,
 *                                                     copy it out in the turn it resolves (before any
 *                                                     await of I/O or a timer), never keep it.
 *   FileReader.close(): void
 *   DataPath.loadBlock(id, { viaPeer? }): Promise<Buffer> — one whole block (read-only; a private
 *        copy when the block is pooled, so it may be kept and streamed).
 *        viaPeer:false skips the peer tier: the peer owner uses it to read through without asking
 *        peers again.
 *   DataPath.stats(): DataPathStats;  DataPath.close(): Promise<void> (flushes pending cache writes)
 *   DataPath.blockSize
 *
 * Errors (mapped to errno once, in mount-client/fuse/errno.ts): PreconditionFailedError → ESTALE
 * (the object changed since it was resolved; no mixed bytes are ever returned), NotFoundError →
 * ENOENT, S3ReadError → EIO (after the retry budget), CacheLockedError at startup.
 *
 * Design note: every block goes through one singleflight keyed by block-key.ts, so a demand read, a
 * prefetch and a peer's read-through of the same block cost one fetch. A block fetched from S3 or a
 * peer is served from memory at once and written to disk in the background (held in `pending`
 * until the rename lands, so it is never fetched twice in between). Peer results are length-checked
 * here (the peer tier verifies its own checksum); any peer failure falls through to S3.
 *
 * Memory: block buffers come from a BlockPool (block-cache/block-pool.ts) and are reused once no
 * tier holds them, so a stream allocates no new 8 MiB backing stores (each used to cost V8 a share
 * of a full GC). Holders with references: the memory LRU, `pending`, the singleflight until it
 * settles, a multi-block read until it has copied. `pending` is bounded (writeBacklogBytes): when
 * the disk falls that far behind, read-ahead stops issuing (backpressure) and a demand-fetched
 * block is served without being cached (counted in stats().disk.writesSkipped), so memory never
 * grows with a slow disk.
 *
 * Deadlines: a FUSE read fails with EIO (ReadDeadlineError) after readDeadlineMs, before
 * fuse-native's own 15 s op timeout; the block fetch behind it is bounded by the retry deadline
 * (retry.ts) and continues for other readers meanwhile. Demand fetches take S3 slots before
 * read-ahead (limiter.ts).
 */
import type { Registry } from 'prom-client';
import { createS3Client } from '../../functions/adapters/aws/s3-client.ts';
import { blockKey } from '../block-cache/block-key.ts';
import { BlockPool } from '../block-cache/block-pool.ts';
import { DiskBlockStore, type DiskCacheStats } from '../block-cache/disk-cache.ts';
import { subBlockSize } from '../block-cache/format.ts';
import { MemoryBlockCache } from '../block-cache/memory-cache.ts';
import { knownSubBlockCrcs, rememberSubBlockCrcs } from '../block-cache/payload-crcs.ts';
import { Singleflight } from '../block-cache/singleflight.ts';
import { type BlockFetcher, type BlockId, blockLength, type ObjectVersion } from '../block-cache/types.ts';
import type { LentBlock } from '../fuse/lender.ts';
import { type DataPathMetrics, dataPathMetrics, mountRegistry } from '../metrics.ts';
import {
  DEFAULT_READ_AHEAD,
  effectiveReadAheadMax,
  PrefetchBudget,
  ReadAhead,
} from '../prefetch/read-ahead.ts';
import { S3ReadError } from './errors.ts';
import { type FaultCounts, type FaultOptions, withFaults } from './faults.ts';
import { ConcurrencyLimiter, type Priority } from './limiter.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';
import { S3BlockFetcher, type S3FetcherStats } from './s3-fetcher.ts';
import type { RangeTransport } from './transport.ts';
import { createSdkTransport } from './transport-sdk.ts';
import { createSocketTransport } from './transport-socket.ts';
import { createUndiciTransport } from './transport-undici.ts';
import { type PresignFn, UrlSigner } from './url-signer.ts';

export type { FaultOptions } from './faults.ts';

const MiB = 1024 * 1024;

/**
 * The peer tier as the data path calls it: a BlockFetcher that may receive into a pooled block
 * buffer (`into`, exactly `length` bytes) and may decline a disk-cache copy of a block it delivered
 * (`keepCopy`, asked once per delivered block; the owner already caches it — peers/keep-policy.ts).
 */
export interface PeerTier extends BlockFetcher {
  fetch(id: BlockId, signal?: AbortSignal, into?: (length: number) => Buffer): Promise<Buffer>;
  keepCopy?(id: BlockId, key: string): boolean;
}

export interface DataPathOptions {
  cacheDir: string;
  cacheSizeBytes: number;
  /**
   * 8 MiB: AWS's guidance for ranged-GET throughput is 8–16 MiB parts (per-request latency is
   * amortised, one GET still streams at full per-connection speed), Mountpoint uses 8 MiB parts, and
   * the read amplification of a cold random 4 KiB read stays bounded. Part of the block key.
   */
  blockSize?: number;
  /** Largest read-ahead window per handle (default 64 MiB, see prefetch/read-ahead.ts). */
  readAheadMaxBytes?: number;
  /**
   * Global cap on prefetch bytes in flight. Default 4 × readAheadMaxBytes: four streams at full
   * read-ahead, beyond which more read-ahead only competes with demand reads for the NIC.
   */
  prefetchMemoryBytes?: number;
  /**
   * Hot-block LRU in memory. Default 256 MiB: holds the full read-ahead windows of four streams
   * plus the blocks being served, so a prefetched block is served from memory, not re-read from disk.
   */
  memoryCacheBytes?: number;
  /**
   * How the disk tier does I/O (default 'direct'). 'direct': block files are written with O_DIRECT
   * (~0.3 instead of ~3.5 system CPU-s per cached GiB: no page-cache copy of every block), and a
   * warm sequential stream is served from memory, its blocks read ahead from the disk with
   * O_DIRECT into pool buffers (prefetch) — so warm reads no longer depend on the page cache
   * holding recently written blocks (docs/benchmarks/mount-data.md, round 6). 'buffered': both
   * through the page cache, and warm streams read block files with buffered preads (the behaviour
   * before round 6; cheaper only where the filesystem refuses O_DIRECT, which the store detects
   * and falls back from by itself).
   */
  cacheWrites?: 'buffered' | 'direct';
  /**
   * Concurrent S3 GETs per process. Default 32: 32 × 8 MiB = 256 MiB in flight; at the ~90 MB/s a
   * single S3 connection sustains that is ≈ 2.9 GB/s, more than a 25 Gbit NIC's share per mount.
   */
  maxS3Concurrency?: number;
  /** Per bucket. Default 16: one hot bucket cannot take every slot from readers of another. */
  perBucketConcurrency?: number;
  region: string;
  endpoint?: string;
  /** On-prem mode: GET URLs from the API (`/v1/resolve?presign=1`) instead of local AWS credentials. */
  presign?: PresignFn;
  /** The peer tier, asked after a local miss and before S3. */
  peer?: PeerTier;
  metrics?: Registry;
  /** Tests/chaos: inject S3 failures below the retry loop. */
  faults?: FaultOptions;
  retry?: Partial<RetryPolicy>;
  /**
   * 'socket' (default: keep-alive sockets that read each body straight into the block buffer,
   * transport-socket.ts), 'undici' (raw dispatch, one copy per 64 KiB chunk) or 'sdk' (GetObject).
   * Measured side by side in bench/mount/ceilings.ts; see docs/benchmarks/mount-data.md.
   */
  transport?: 'socket' | 'undici' | 'sdk';
  /** Free-disk floor for the cache filesystem (default 5% of it, at least 1 GiB). */
  minFreeBytes?: number;
  /** Cache-disk trouble and recovery, one line per change (disk-cache.ts); default JSON on stderr. */
  log?: (level: 'warn' | 'info', msg: string, fields: Record<string, unknown>) => void;
  /**
   * Fetched blocks waiting for their disk-cache write, at most. Default 128 MiB (16 blocks): over a
   * second of writes even for a slow SATA disk (~150 MB/s); a disk further behind than that is the
   * bottleneck, and holding more blocks for it only grows memory.
   */
  writeBacklogBytes?: number;
  /** Overall deadline of one read (default READ_DEADLINE_MS). */
  readDeadlineMs?: number;
}

/**
 * 12 s: fuse-native fails an op that has not answered in 15 s (design.md §4) with its own error and
 * no log; failing at 12 s gives the reader a clean EIO and the mount a log line instead.
 */
export const READ_DEADLINE_MS = 12_000;

/**
 * Read-ahead of blocks already on disk (O_DIRECT, diskAhead) reaches at least this many blocks
 * past a sequential read, however small the window still is. 2: the window grows from 1 MiB over
 * a stream's first reads, so without this the reader waited for each early block in turn (an
 * 8 MiB O_DIRECT read is ~10 ms here, longer than FUSE takes to drain a block). A disk block costs
 * no S3 request and ~0.06 CPU-s/GiB to load, so the only price is a header probe (`file`,
 * `head -c`) reading two more blocks off the local disk.
 */
const DISK_AHEAD_MIN_BLOCKS = 2;

/** A read that did not complete within its deadline (EIO class, like an exhausted retry budget). */
export class ReadDeadlineError extends S3ReadError {
  constructor(what: string, ms: number) {
    super(
      `${what}: no data within ${(ms / 1000).toFixed(0)} s (S3 or the cache disk is too slow or unreachable); the read failed with EIO, retry it`,
      0,
    );
    this.name = 'ReadDeadlineError';
  }
}

export interface FileReader {
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * The warm fast path: the same bytes as read(), synchronously, when every block they need is
   * already in memory; undefined (and no state change) otherwise, and the caller falls back to
   * read(). Saves a promise chain per 128 KiB kernel read.
   */
  readNow(offset: number, length: number): Buffer | undefined;
  /**
   * The FUSE read path: readNow's bytes copied into `into` (at 0), also served synchronously from
   * the disk cache (verified slice reads, no block buffer); undefined (no state change) otherwise.
   */
  readNowInto(offset: number, length: number, into: Buffer): number | undefined;
  /** The in-memory block around `offset` for the FUSE addon (fuse/lender.ts); see Reader.lend. */
  lend(offset: number): LentBlock | undefined;
  /** Reads the addon served from lent blocks: read-ahead continues from `end`, metrics count them. */
  absorb(end: number, reads: number, bytes: number): void;
  close(): void;
}

export interface TierStats {
  hits: number;
  bytes: number;
}

export interface DataPathStats {
  memory: TierStats & { entries: number; heldBytes: number };
  disk: DiskCacheStats & { writesSkipped: number; pendingBytes: number };
  pool: BlockPool['counts'] & { idle: number };
  peer: TierStats & { errors: number };
  s3: S3FetcherStats;
  prefetch: { issued: number; dropped: number; inflightBytes: number };
  /**
   * Reads by path: `now` served synchronously (readNow/readNowInto: memory tier or disk slice),
   * `waited` through the async read (the block was loading, or a multi-block read). Shows how much
   * of a cold stream waits on a fetch rather than finding read-ahead's block already in memory;
   * `waitedMs` is the time those reads took in all (how long readers stood still).
   */
  reads: { now: number; waited: number; waitedMs: number; lent: number };
  /** Blocks loading (singleflight), waiting for their disk write, and writes in flight: 0 when idle. */
  inflight: { flights: number; pendingWrites: number; writes: number };
  faults?: FaultCounts;
}

/** A block lent out of the data path: read-only, valid until `release()` (idempotent). */
export interface BlockLease {
  data: Buffer;
  release(): void;
}

export interface DataPath {
  readonly blockSize: number;
  open(v: ObjectVersion): FileReader;
  loadBlock(id: BlockId, opts?: { viaPeer?: boolean }): Promise<Buffer>;
  /** loadBlock without the copy: `data` stays valid until `release()` (see DataPathImpl.leaseBlock). */
  leaseBlock(id: BlockId, opts?: { viaPeer?: boolean }): Promise<BlockLease>;
  stats(): DataPathStats;
  close(): Promise<void>;
}

export async function createDataPath(o: DataPathOptions): Promise<DataPath> {
  const blockSize = o.blockSize ?? 8 * MiB;
  if (!Number.isInteger(blockSize) || blockSize < 64 * 1024 || blockSize > 256 * MiB) {
    throw new RangeError(`blockSize ${blockSize} is out of range: use 64 KiB … 256 MiB (default 8 MiB)`);
  }
  const metrics = dataPathMetrics(o.metrics ?? mountRegistry);
  const disk = await DiskBlockStore.open({
    dir: o.cacheDir,
    capacityBytes: o.cacheSizeBytes,
    minFreeBytes: o.minFreeBytes,
    directIo: o.cacheWrites !== 'buffered',
    ...(o.log ? { log: o.log } : {}),
    onEvict: (bytes, reason) => {
      metrics.evictions.inc({ reason });
      metrics.evictedBytes.inc(bytes);
    },
    onCorrupt: (reason) => metrics.corrupt.inc({ reason }),
  });
  const maxConc = o.maxS3Concurrency ?? 32;
  const signer = new UrlSigner(
    o.presign ? { presign: o.presign } : { s3: createS3Client({ region: o.region, endpoint: o.endpoint }) },
  );
  let transport: RangeTransport =
    o.transport === 'sdk'
      ? createSdkTransport({ region: o.region, endpoint: o.endpoint, connections: maxConc })
      : o.transport === 'undici'
        ? createUndiciTransport({ signer, connections: maxConc })
        : createSocketTransport({ signer, connections: maxConc });
  let faults: FaultCounts | undefined;
  if (o.faults) {
    const f = withFaults(transport, o.faults);
    faults = f.injected;
    transport = f;
  }
  const s3 = new S3BlockFetcher(
    transport,
    new ConcurrencyLimiter(maxConc, Math.min(maxConc, o.perBucketConcurrency ?? 16)),
    { ...DEFAULT_RETRY, ...o.retry },
    metrics,
  );
  const memoryBytes = o.memoryCacheBytes ?? 256 * MiB;
  const readAheadMax = effectiveReadAheadMax(
    o.readAheadMaxBytes ?? DEFAULT_READ_AHEAD.maxBytes,
    memoryBytes,
    blockSize,
  );
  // Slab reserve = the memory tier: the one holder that keeps that many blocks for the mount's
  // lifetime, so reserving it up front (virtual, resident only as blocks are written) adds no
  // memory the tier would not reach anyway, and the tier's fill costs V8 one external-memory
  // report instead of one per block (block-pool.ts). Prefetch and write-backlog blocks beyond it
  // use per-block stores, as before.
  const pool = new BlockPool(blockSize, 8, memoryBytes);
  return new DataPathImpl({
    blockSize,
    disk,
    pool,
    writeBacklogBytes: o.writeBacklogBytes ?? 128 * MiB,
    readDeadlineMs: o.readDeadlineMs ?? READ_DEADLINE_MS,
    memory: new MemoryBlockCache(memoryBytes, {
      onHold: (b) => pool.retain(b),
      onDrop: (b) => pool.release(b),
    }),
    s3,
    peer: o.peer,
    metrics,
    budget: new PrefetchBudget(o.prefetchMemoryBytes ?? 4 * readAheadMax),
    readAhead: {
      ...DEFAULT_READ_AHEAD,
      maxBytes: readAheadMax,
      initialBytes: Math.min(DEFAULT_READ_AHEAD.initialBytes, readAheadMax),
    },
    faults,
  });
}

interface Parts {
  blockSize: number;
  disk: DiskBlockStore;
  pool: BlockPool;
  writeBacklogBytes: number;
  readDeadlineMs: number;
  memory: MemoryBlockCache;
  s3: S3BlockFetcher;
  peer?: PeerTier;
  metrics: DataPathMetrics;
  budget: PrefetchBudget;
  readAhead: typeof DEFAULT_READ_AHEAD;
  faults?: FaultCounts;
}

/**
 * Takes a reference on `b` for a holder outside the tiers (a lease, a lent block) and returns its
 * release, which gives it back once however often it is called. A buffer the pool did not make
 * passes through untouched (block-pool.ts).
 */
function hold(pool: BlockPool, b: Buffer): () => void {
  pool.retain(b);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    pool.release(b);
  };
}

class DataPathImpl implements DataPath {
  readonly blockSize: number;
  private readonly flights = new Singleflight<Buffer>();
  /** Blocks fetched but not yet renamed into the disk cache. */
  private readonly pending = new Map<string, Buffer>();
  private pendingBytes = 0;
  private writesSkipped = 0;
  /** Priority of each block in flight; a demand read joining a prefetch raises it (limiter.ts). */
  private readonly tickets = new Map<string, Priority>();
  private readonly writes = new Set<Promise<void>>();
  private readonly counts = {
    memory: { hits: 0, bytes: 0 },
    peer: { hits: 0, bytes: 0, errors: 0 },
    prefetch: { issued: 0, dropped: 0 },
    reads: { now: 0, waited: 0, waitedMs: 0, lent: 0 },
  };
  private closed = false;
  /** Labelled series resolved once: label lookups per 128 KiB read were measurable on the warm path. */
  private readonly m: {
    memoryHit: { inc(n?: number): void };
    memoryMiss: { inc(n?: number): void };
    memoryBytes: { inc(n?: number): void };
    diskHit: { inc(n?: number): void };
    diskBytes: { inc(n?: number): void };
    readBytes: { inc(n?: number): void };
  };

  constructor(private readonly p: Parts) {
    this.blockSize = p.blockSize;
    this.m = {
      memoryHit: p.metrics.blockRequests.labels({ tier: 'memory', result: 'hit' }),
      memoryMiss: p.metrics.blockRequests.labels({ tier: 'memory', result: 'miss' }),
      memoryBytes: p.metrics.blockBytes.labels({ tier: 'memory' }),
      diskHit: p.metrics.blockRequests.labels({ tier: 'disk', result: 'hit' }),
      diskBytes: p.metrics.blockBytes.labels({ tier: 'disk' }),
      readBytes: p.metrics.readBytes,
    };
  }

  open(v: ObjectVersion): FileReader {
    return new Reader(this, v, new ReadAhead(this.p.readAhead));
  }

  /**
   * For callers outside the data path (the peer server streams the block asynchronously): a pooled
   * buffer may be recycled once the data path drops it, so such callers get a copy (with the
   * sub-block crc table carried over, so the peer checksum costs no pass over the bytes).
   */
  async loadBlock(id: BlockId, opts?: { viaPeer?: boolean }): Promise<Buffer> {
    const b = await this.loadKeyed(id, blockKey(id), opts?.viaPeer !== false);
    if (!this.p.pool.owns(b)) return b;
    const copy = Buffer.allocUnsafe(b.length);
    b.copy(copy);
    const sub = subBlockSize(id.blockSize);
    const crcs = knownSubBlockCrcs(b, sub);
    if (crcs) rememberSubBlockCrcs(copy, sub, crcs);
    return copy;
  }

  /**
   * loadBlock without the copy, for a caller that hands the block back: a pooled block keeps its
   * backing store (not reused) until `release()`. The peer server sends blocks this way — a copy per
   * served block cost the owner a fresh 8 MiB allocation and, profiled, ~40 % of its CPU in V8's GC.
   * A view the pool no longer tracks (its last holder let go before this turn) is copied instead.
   */
  async leaseBlock(id: BlockId, opts?: { viaPeer?: boolean }): Promise<BlockLease> {
    const b = await this.loadKeyed(id, blockKey(id), opts?.viaPeer !== false);
    const pool = this.p.pool;
    if (!pool.owns(b)) {
      const copy = Buffer.from(b);
      const sub = subBlockSize(id.blockSize);
      const crcs = knownSubBlockCrcs(b, sub);
      if (crcs) rememberSubBlockCrcs(copy, sub, crcs);
      return { data: copy, release: () => undefined };
    }
    // Same turn as the load resolved: the view is still leased (block-pool.ts quarantine rule).
    return { data: b, release: hold(pool, b) };
  }

  /**
   * loadBlock with the key already computed (readers memoize keys: sha256 per 128 KiB read adds up).
   * The buffer is valid in the turn it is delivered; keep it longer only with pool.retain (see
   * block-pool.ts). `demand` false = read-ahead (yields S3 slots to demand reads).
   */
  async loadKeyed(id: BlockId, key: string, viaPeer = true, demand = true): Promise<Buffer> {
    if (this.closed) throw new Error('data path is closed');
    const len = blockLength(id);
    if (len === 0) return Buffer.alloc(0);
    const hot = this.hot(key);
    if (hot) return hot;
    this.m.memoryMiss.inc();
    const ticket = this.tickets.get(key);
    if (ticket) {
      if (demand) ticket.demand = true;
    }
    return this.flights.do(key, async () => {
      const t: Priority = { demand };
      this.tickets.set(key, t);
      try {
        const b = await this.loadCold(id, key, len, viaPeer, t);
        // The flight's own reference ends with the flight; waiters copy or retain in this turn.
        this.p.pool.release(b);
        return b;
      } finally {
        this.tickets.delete(key);
      }
    });
  }

  get pool(): BlockPool {
    return this.p.pool;
  }

  get readDeadlineMs(): number {
    return this.p.readDeadlineMs;
  }

  /** A block already in memory (hot LRU, or fetched and still being written to disk), counted as a hit. */
  hot(key: string): Buffer | undefined {
    const b = this.p.memory.get(key) ?? this.pending.get(key);
    if (b) {
      this.counts.memory.hits++;
      this.counts.memory.bytes += b.length;
      this.m.memoryHit.inc();
      this.m.memoryBytes.inc(b.length);
    }
    return b;
  }

  /**
   * A random read's slice straight from the disk cache, verifying only the sub-blocks it covers
   * (format.ts): a 4 KiB read no longer reads and checksums a whole 8 MiB block. Undefined on a
   * miss or a corrupt slice (the file is dropped), and the caller loads the whole block.
   */
  /** Whether whole blocks are kept in memory (`--memory-cache` > 0). */
  get memoryTier(): boolean {
    return this.p.memory.enabled;
  }

  /**
   * Whether read-ahead loads blocks that are on disk into memory (O_DIRECT whole-block reads,
   * DiskBlockStore.getDirect): only with a memory tier to serve them from, and only while the
   * store does direct I/O (not `--cache-writes buffered`, not after an O_DIRECT fallback — then
   * the page cache serves diskNow's preads cheaper than a copy into a block buffer).
   */
  get diskAhead(): boolean {
    return this.p.memory.enabled && this.p.disk.directIo;
  }

  /**
   * Bytes [start, end) of a block on disk, synchronously, straight into `into` (the FUSE buffer):
   * see DiskBlockStore.readSliceSync. Undefined when the block is not on disk (or was bad).
   */
  diskNow(
    id: BlockId,
    key: string,
    start: number,
    end: number,
    into: Buffer,
    whileLoading = false,
  ): number | undefined {
    // A block being loaded (read ahead from disk with O_DIRECT, or fetched) is about to be in
    // memory: waiting for it beats a buffered pread that pulls the file into the page cache —
    // except for a stream's first block (`whileLoading`, see Reader.readNowInto).
    if (this.closed || (!whileLoading && this.flights.has(key)) || !this.p.disk.hasKey(key)) {
      return undefined;
    }
    const n = this.p.disk.readSliceSync(id, key, start, end, into);
    if (n !== undefined) {
      this.m.diskHit.inc();
      this.m.diskBytes.inc(n);
    }
    return n;
  }

  async diskSlice(id: BlockId, key: string, start: number, end: number): Promise<Buffer | undefined> {
    if (this.closed || this.flights.has(key) || !this.p.disk.hasKey(key)) return undefined;
    const got = await this.p.disk.getRange(id, key, start, end);
    if (got) {
      this.p.metrics.blockRequests.inc({ tier: 'disk', result: 'hit' });
      this.p.metrics.blockBytes.inc({ tier: 'disk' }, got.length);
    }
    return got;
  }

  /** Returns the block with one reference owned by the caller (pooled or not). */
  private async loadCold(
    id: BlockId,
    key: string,
    len: number,
    viaPeer: boolean,
    priority: Priority,
  ): Promise<Buffer> {
    const m = this.p.metrics;
    const pool = this.p.pool;
    if (this.p.disk.hasKey(key)) {
      const into = pool.acquire(len);
      let cached: Buffer | undefined;
      try {
        cached = await this.p.disk.get(id, key, into);
      } finally {
        if (!cached) pool.release(into);
      }
      if (cached) {
        m.blockRequests.inc({ tier: 'disk', result: 'hit' });
        m.blockBytes.inc({ tier: 'disk' }, cached.length);
        this.p.memory.set(key, cached);
        return cached;
      }
    } else {
      await this.p.disk.get(id, key); // counts the miss
    }
    m.blockRequests.inc({ tier: 'disk', result: 'miss' });
    let data: Buffer | undefined;
    let keep = true;
    if (this.p.peer && viaPeer) {
      try {
        const got = await this.p.peer.fetch(id, undefined, (n) => pool.acquire(n));
        if (got.length === len) {
          data = got;
          this.counts.peer.hits++;
          this.counts.peer.bytes += got.length;
          m.blockRequests.inc({ tier: 'peer', result: 'hit' });
          m.blockBytes.inc({ tier: 'peer' }, got.length);
          // Without a memory tier an unkept block would be fetched again for every 128 KiB read.
          keep = !this.p.memory.enabled || this.p.peer.keepCopy?.(id, key) !== false;
        } else {
          this.counts.peer.errors++;
          m.blockRequests.inc({ tier: 'peer', result: 'miss' });
        }
      } catch {
        // Peers are an accelerator: any failure (timeout, ejected owner, bad checksum) → S3.
        this.counts.peer.errors++;
        m.blockRequests.inc({ tier: 'peer', result: 'miss' });
      }
    }
    if (!data) {
      data = await this.p.s3.fetch(id, undefined, priority, (n) => pool.acquire(n));
      m.blockRequests.inc({ tier: 's3', result: 'hit' });
      m.blockBytes.inc({ tier: 's3' }, data.length);
    }
    this.p.memory.set(key, data);
    if (keep) this.persist(id, key, data);
    return data;
  }

  /**
   * Background write to the disk cache; a failed write only costs a future miss. Past the write
   * backlog the block is not written (served from memory only): reads never wait for the disk.
   */
  private persist(id: BlockId, key: string, data: Buffer): void {
    if (this.pendingBytes > 0 && this.pendingBytes + data.length > this.p.writeBacklogBytes) {
      this.writesSkipped++;
      return;
    }
    this.p.pool.retain(data);
    this.pending.set(key, data);
    this.pendingBytes += data.length;
    const w = this.p.disk
      .put(id, data, key)
      .catch(() => undefined)
      .finally(() => {
        if (this.pending.get(key) === data) this.pending.delete(key);
        this.pendingBytes -= data.length;
        this.p.pool.release(data);
        this.writes.delete(w);
        this.p.metrics.cacheBytes.set({ tier: 'disk' }, this.p.disk.stats().bytes);
      });
    this.writes.add(w);
  }

  /** Whether the disk-cache write backlog has room for one more block (read-ahead backpressure). */
  private writeRoom(len: number): boolean {
    return this.pendingBytes === 0 || this.pendingBytes + len <= this.p.writeBacklogBytes;
  }

  /** Starts best-effort loads of the blocks covering [from, to) that are not already local. */
  /** Returns the first block index not handed to a load (so a dropped block is tried again later). */
  prefetch(
    v: ObjectVersion,
    from: number,
    to: number,
    windowBytes: number,
    keyOf: (index: number) => string,
    diskTo = to,
  ): number {
    const bs = this.blockSize;
    const end = Math.min(this.diskAhead ? Math.max(to, diskTo) : to, v.size);
    let i = Math.floor(from / bs);
    if (from >= end) return i;
    this.p.metrics.prefetchWindow.observe(windowBytes);
    for (; i * bs < end; i++) {
      const id: BlockId = { object: v, index: i, blockSize: bs };
      const key = keyOf(i);
      if (this.flights.has(key) || this.pending.has(key) || this.p.memory.has(key)) continue;
      const onDisk = this.p.disk.hasKey(key);
      // Past the window only blocks on disk are read ahead (diskTo): stop at the first that is not.
      if (!onDisk && i * bs >= to) return i;
      // With buffered disk I/O a block on disk is served by synchronous slice reads (diskNow):
      // loading it ahead into memory would only cost a block buffer and a copy out of the page
      // cache. With O_DIRECT (diskAhead) it is read ahead into a pool buffer by DMA — no page cache,
      // no copy — and served from memory like a hot block (the FUSE ceiling's path).
      if (onDisk && !this.diskAhead) continue;
      const len = blockLength(id);
      // A disk read writes nothing, so only the prefetch budget bounds it, not the write backlog.
      if ((!onDisk && !this.writeRoom(len)) || !this.p.budget.tryAcquire(len)) {
        this.counts.prefetch.dropped++;
        this.p.metrics.prefetchDropped.inc();
        return i;
      }
      this.counts.prefetch.issued++;
      this.p.metrics.prefetchInflight.set(this.p.budget.inflightBytes);
      this.loadKeyed(id, key, true, false)
        .catch(() => undefined) // the demand read will surface the error
        .finally(() => {
          this.p.budget.release(len);
          this.p.metrics.prefetchInflight.set(this.p.budget.inflightBytes);
        });
    }
    return i;
  }

  /** A block in memory (hot LRU or pending write) without counting a hit: for lending (Reader.lend). */
  peek(key: string): Buffer | undefined {
    return this.p.memory.get(key) ?? this.pending.get(key);
  }

  /**
   * Reads the FUSE addon served from lent blocks (fuse/lender.ts): memory-tier hits that never
   * reached JavaScript one by one, counted here so hits and bytes read still count every read.
   * Not added to the memory tier's block bytes, which count a whole block per lookup (metrics.ts).
   */
  countLent(reads: number, bytes: number): void {
    this.counts.reads.now += reads;
    this.counts.reads.lent += reads;
    this.counts.memory.hits += reads;
    this.m.memoryHit.inc(reads);
    this.m.readBytes.inc(bytes);
  }

  countRead(bytes: number, waitedSince?: number): void {
    this.m.readBytes.inc(bytes);
    if (waitedSince !== undefined) {
      this.counts.reads.waited++;
      this.counts.reads.waitedMs += performance.now() - waitedSince;
    } else this.counts.reads.now++;
  }

  stats(): DataPathStats {
    return {
      memory: { ...this.counts.memory, entries: this.p.memory.entries, heldBytes: this.p.memory.bytes },
      disk: { ...this.p.disk.stats(), writesSkipped: this.writesSkipped, pendingBytes: this.pendingBytes },
      pool: { ...this.p.pool.counts, idle: this.p.pool.idle },
      peer: { ...this.counts.peer },
      s3: { ...this.p.s3.counts },
      prefetch: { ...this.counts.prefetch, inflightBytes: this.p.budget.inflightBytes },
      reads: { ...this.counts.reads },
      inflight: { flights: this.flights.size, pendingWrites: this.pending.size, writes: this.writes.size },
      ...(this.p.faults ? { faults: { ...this.p.faults } } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writes.size) await Promise.all([...this.writes]);
    this.p.memory.clear();
    this.p.pool.clear();
    await this.p.s3.close();
    await this.p.disk.close();
  }
}

class Reader implements FileReader {
  private closed = false;
  /** Blocks below this index have already been handed to prefetch by this handle. */
  private prefetchedTo = 0;
  /** Block the current sequential run started in (-1: no run). */
  private startIndex = -1;
  /** Block keys of this version, computed once per block (sha256; see block-key.ts). */
  private readonly keys: string[] = [];
  private readonly keyOf = (index: number): string =>
    (this.keys[index] ??= blockKey({ object: this.v, index, blockSize: this.dp.blockSize }));

  constructor(
    private readonly dp: DataPathImpl,
    private readonly v: ObjectVersion,
    private readonly ra: ReadAhead,
  ) {}

  /** Whether this handle is in a sequential run (its read-ahead window is open). */
  get streaming(): boolean {
    return !this.closed && this.ra.windowBytes > 0;
  }

  /**
   * readNow into the caller's buffer, from memory or (without building a block in memory) from
   * the disk cache: the FUSE read path. Bytes written, or undefined with no state change.
   */
  readNowInto(offset: number, length: number, into: Buffer): number | undefined {
    if (this.closed || offset < 0 || length <= 0) return undefined;
    const end = Math.min(this.v.size, offset + length);
    if (offset >= end || end - offset > into.length) return undefined;
    const bs = this.dp.blockSize;
    const index = Math.floor(offset / bs);
    if (Math.floor((end - 1) / bs) !== index) return undefined;
    const base = index * bs;
    const key = this.keyOf(index);
    const block = this.dp.hot(key);
    let n: number | undefined;
    if (block) n = block.copy(into, 0, offset - base, end - base);
    else {
      // A stream in progress loads whole blocks (O_DIRECT, read()) rather than pulling 128 KiB
      // slices through the page cache: reached when read-ahead skipped this block (another
      // stream had it in memory then, or the prefetch budget was spent). Except the block the
      // stream started in: its O_DIRECT load was only asked for by the stream's first read, and
      // waiting for it stood every new stream still for an 8 MiB disk read (~30 ms, a fifth of
      // the waits of a 256 MiB warm read); its reads are sliced until it is in memory.
      const first = index === this.startIndex;
      if (!first && this.dp.diskAhead && this.streaming && this.ra.continues(offset)) return undefined;
      n = this.dp.diskNow(
        { object: this.v, index, blockSize: bs },
        key,
        offset - base,
        end - base,
        into,
        first,
      );
      if (n === undefined) return undefined;
    }
    this.plan(offset, end);
    this.dp.countRead(n);
    return n;
  }

  readNow(offset: number, length: number): Buffer | undefined {
    if (this.closed || offset < 0 || length <= 0) return undefined;
    const end = Math.min(this.v.size, offset + length);
    if (offset >= end) return undefined;
    const bs = this.dp.blockSize;
    const index = Math.floor(offset / bs);
    // Only single-block reads: a 128 KiB kernel read straddles a block boundary once per block.
    if (Math.floor((end - 1) / bs) !== index) return undefined;
    const block = this.dp.hot(this.keyOf(index));
    if (!block) return undefined;
    this.plan(offset, end);
    this.dp.countRead(end - offset);
    return block.subarray(offset - index * bs, end - index * bs);
  }

  read(offset: number, length: number): Promise<Buffer> {
    const ms = this.dp.readDeadlineMs;
    if (!(ms > 0) || !Number.isFinite(ms)) return this.readBlocks(offset, length);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ReadDeadlineError(`read of ${this.v.key} at ${offset} (${length} bytes)`, ms)),
        ms,
      );
      this.readBlocks(offset, length).then(
        (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private async readBlocks(offset: number, length: number): Promise<Buffer> {
    if (this.closed) throw new Error(`read after close of ${this.v.key}`);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0) {
      throw new RangeError(`invalid read (offset ${offset}, length ${length})`);
    }
    const size = this.v.size;
    const end = Math.min(size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const started = performance.now();
    const bs = this.dp.blockSize;
    const random = this.plan(offset, end) === 0;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const id = (index: number): BlockId => ({ object: this.v, index, blockSize: bs });
    let out: Buffer | undefined;
    if (first === last) {
      const base = first * bs;
      if ((random || !this.dp.memoryTier) && !this.dp.hot(this.keyOf(first))) {
        // A random read of a block not in memory, or any read without a memory tier: verify and
        // return only its sub-blocks from disk rather than reading the whole block for one small
        // read (without a memory tier, a sequential stream would re-read each block 64 times).
        out = await this.dp.diskSlice(id(first), this.keyOf(first), offset - base, end - base);
      }
      if (!out) {
        const block = await this.dp.loadKeyed(id(first), this.keyOf(first));
        out = block.subarray(offset - base, end - base);
      }
    } else {
      // The blocks arrive in different turns: each is retained on arrival so none is recycled
      // before all are copied (block-pool.ts), and released whatever the outcome.
      const pool = this.dp.pool;
      const held: Buffer[] = [];
      try {
        const blocks = await Promise.all(
          Array.from({ length: last - first + 1 }, (_, k) =>
            this.dp.loadKeyed(id(first + k), this.keyOf(first + k)).then((b) => {
              pool.retain(b);
              held.push(b);
              return b;
            }),
          ),
        );
        out = Buffer.allocUnsafe(end - offset);
        let pos = 0;
        for (let k = 0; k < blocks.length; k++) {
          const base = (first + k) * bs;
          const s = Math.max(offset, base) - base;
          const e = Math.min(end, base + bs) - base;
          pos += (blocks[k] as Buffer).copy(out, pos, s, e);
        }
      } finally {
        // A block still loading when another failed is retained after this and never released:
        // its buffer is then left to the GC instead of being reused, which is safe.
        for (const b of held.splice(0)) pool.release(b);
      }
    }
    this.dp.countRead(out.length, started);
    return out;
  }

  /**
   * The block around `offset` for the FUSE addon to serve this handle's reads from (fuse/lender.ts):
   * only for a sequential stream (a random reader's next read is rarely in the same block, and
   * lending would pin a block for nothing), only a block already in memory, retained in the pool
   * until released so it is never recycled under the addon.
   */
  lend(offset: number): LentBlock | undefined {
    if (this.closed || !this.streaming || offset < 0 || offset >= this.v.size) return undefined;
    const bs = this.dp.blockSize;
    const index = Math.floor(offset / bs);
    const start = index * bs;
    const block = this.dp.peek(this.keyOf(index));
    if (!block || block.length !== Math.min(bs, this.v.size - start)) return undefined;
    return {
      start,
      data: block,
      eof: start + block.length >= this.v.size,
      release: hold(this.dp.pool, block),
    };
  }

  absorb(end: number, reads: number, bytes: number): void {
    this.ra.absorb(Math.min(end, this.v.size), reads);
    this.dp.countLent(reads, bytes);
  }

  /** Read-ahead bookkeeping for a read of [offset, end); returns the window (0 = random access). */
  private plan(offset: number, end: number): number {
    const wasStreaming = this.ra.windowBytes > 0;
    const window = this.ra.onRead(offset, end - offset);
    if (window > 0) {
      const bs = this.dp.blockSize;
      if (!wasStreaming) this.startIndex = Math.floor(offset / bs);
      const from = Math.max(end, this.prefetchedTo * bs);
      const to = Math.min(this.v.size, end + window);
      const diskTo = Math.min(this.v.size, end + Math.max(window, DISK_AHEAD_MIN_BLOCKS * bs));
      // Blocks already handed to prefetch are skipped without touching the data path, so a warm
      // stream pays for prefetch bookkeeping once per block, not once per 128 KiB read.
      if (from < Math.max(to, diskTo)) {
        this.prefetchedTo = this.dp.prefetch(this.v, from, to, window, this.keyOf, diskTo);
      }
    } else {
      this.prefetchedTo = 0;
      this.startIndex = -1;
    }
    return window;
  }

  close(): void {
    this.closed = true;
  }
}
