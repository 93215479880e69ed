/**
 * The data path against a real S3 emulator (fauxqs) and a real cache directory: byte-exact reads,
 * version pinning, restart, corruption, injected faults, eviction, singleflight, tiers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE_LAYOUT } from '../../../mount-client/block-cache/disk-cache.ts';
import { parseHeader } from '../../../mount-client/block-cache/format.ts';
import type { BlockFetcher, ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import type { LentBlock } from '../../../mount-client/fuse/lender.ts';
import {
  createDataPath,
  type DataPath,
  type DataPathOptions,
  ReadDeadlineError,
} from '../../../mount-client/object-client/data-path.ts';
import {
  NotFoundError,
  PreconditionFailedError,
  S3ReadError,
} from '../../../mount-client/object-client/errors.ts';
import { seededRandom } from '../../../mount-client/object-client/faults.ts';
import { type S3Fixture, startS3 } from './s3-fixture.ts';

const KiB = 1024;
const BS = 256 * KiB; // small blocks keep multi-block cases fast; the code has no special case for 8 MiB
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let s3: S3Fixture;
const dirs: string[] = [];
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'strata-dp-'));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(o: Partial<DataPathOptions> = {}): Promise<DataPath> {
  return createDataPath({
    cacheDir: o.cacheDir ?? newDir(),
    cacheSizeBytes: 64 * 1024 * KiB,
    blockSize: BS,
    region: s3.region,
    endpoint: s3.endpoint,
    metrics: new Registry(),
    minFreeBytes: 0,
    retry: { baseDelayMs: 1, maxDelayMs: 5 },
    ...o,
  });
}

/** Reads a whole file the way the kernel does: 128 KiB requests in order. */
async function readAll(dp: DataPath, v: ObjectVersion, chunk = 128 * KiB): Promise<Buffer> {
  const r = dp.open(v);
  const parts: Buffer[] = [];
  for (let off = 0; off < v.size; off += chunk) parts.push(Buffer.from(await r.read(off, chunk)));
  r.close();
  return Buffer.concat(parts);
}

describe('reads back every size byte-exact', () => {
  for (const size of [0, 1, BS - 1, BS, BS + 1, 5 * BS + 12_345]) {
    it(`${size} bytes`, async () => {
      // Prepare
      const body = randomBytes(size);
      const v = await s3.put(`sizes/${size}.bin`, body);
      const dp = await open();
      // Act
      const got = await readAll(dp, v);
      const pastEof = await dp.open(v).read(size, 10);
      // Assess
      expect(sha(got)).toBe(sha(body));
      expect(pastEof.length).toBe(0);
      expect(dp.stats().s3.gets).toBe(Math.ceil(size / BS));
      await dp.close();
    });
  }
});

describe('against one multi-block object', () => {
  let body: Buffer;
  let v: ObjectVersion;
  beforeAll(async () => {
    body = randomBytes(12 * BS + 999);
    v = await s3.put('multi/big file ✓.bin', body);
  });

  it('serves random preads (including block-straddling ones) equal to the source bytes', async () => {
    const dp = await open();
    const r = dp.open(v);
    const rnd = seededRandom(42);
    for (let i = 0; i < 200; i++) {
      const off = Math.floor(rnd() * body.length);
      const len = 1 + Math.floor(rnd() * (i % 10 === 0 ? 3 * BS : 8 * KiB));
      const got = await r.read(off, len);
      expect(got.equals(body.subarray(off, off + len))).toBe(true);
    }
    await dp.close();
  });

  it('serves 4 concurrent sequential readers with one GET per block (singleflight + prefetch)', async () => {
    const gets0 = s3.gets();
    const dp = await open();
    const results = await Promise.all([0, 1, 2, 3].map(() => readAll(dp, v)));
    for (const got of results) expect(sha(got)).toBe(sha(body));
    expect(s3.gets() - gets0).toBe(13);
    expect(dp.stats().s3.gets).toBe(13);
    await dp.close();
  });

  it('counts reads served at once (memory/disk) apart from reads that waited on a fetch', async () => {
    // Prepare
    const dp = await open();
    const r = dp.open(v);
    const into = Buffer.alloc(128 * KiB);
    // Act: a cold block → the async path; the same block again → synchronously from memory.
    expect(r.readNowInto(0, 128 * KiB, into)).toBeUndefined();
    const cold = await r.read(0, 128 * KiB);
    const n = r.readNowInto(128 * KiB, 128 * KiB, into);
    // Assess
    expect(cold.equals(body.subarray(0, 128 * KiB))).toBe(true);
    expect(n).toBe(128 * KiB);
    expect(into.equals(body.subarray(128 * KiB, 256 * KiB))).toBe(true);
    expect(dp.stats().reads).toMatchObject({ now: 1, waited: 1 });
    expect(dp.stats().reads.waitedMs).toBeGreaterThan(0);
    await dp.close();
  });

  it('collapses concurrent loads of the same block into one GET', async () => {
    const dp = await open();
    const gets0 = s3.gets();
    const id = { object: v, index: 3, blockSize: BS };
    const blocks = await Promise.all(Array.from({ length: 16 }, () => dp.loadBlock(id, { viaPeer: false })));
    expect(s3.gets() - gets0).toBe(1);
    for (const b of blocks) expect(b.equals(body.subarray(3 * BS, 4 * BS))).toBe(true);
    await dp.close();
  });

  it('survives a restart: a new DataPath on the same cache dir makes zero S3 GETs', async () => {
    const cacheDir = newDir();
    const first = await open({ cacheDir });
    expect(sha(await readAll(first, v))).toBe(sha(body));
    await first.close();
    // Act
    const gets0 = s3.gets();
    const second = await open({ cacheDir });
    const got = await readAll(second, v);
    // Assess
    expect(sha(got)).toBe(sha(body));
    expect(s3.gets() - gets0).toBe(0);
    expect(second.stats().disk.hits).toBe(13);
    await second.close();
  });

  it('detects a corrupted block file, refetches it and returns correct bytes', async () => {
    const cacheDir = newDir();
    const first = await open({ cacheDir });
    await readAll(first, v);
    await first.close();
    // Flip one payload byte in one block file and garble another file's header.
    const files = readdirSync(join(cacheDir, CACHE_LAYOUT, 'blocks'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    expect(files.length).toBe(13);
    const a = readFileSync(files[0] as string);
    a[a.length - 10] = (a[a.length - 10] as number) ^ 0xff;
    writeFileSync(files[0] as string, a);
    const b = readFileSync(files[1] as string);
    b[9] = (b[9] as number) ^ 0x01;
    writeFileSync(files[1] as string, b);
    // Act
    const gets0 = s3.gets();
    const second = await open({ cacheDir });
    const got = await readAll(second, v);
    // Assess
    expect(sha(got)).toBe(sha(body));
    expect(s3.gets() - gets0).toBe(2);
    expect(second.stats().disk.corrupt).toBe(2);
    // The whole-block reads that found them were O_DIRECT (the default), none buffered.
    expect(second.stats().disk.readModes).toEqual({ direct: 11, buffered: 0 });
    await second.close();
    // The refetched blocks were rewritten: a third open is all cache again.
    const third = await open({ cacheDir });
    const gets1 = s3.gets();
    expect(sha(await readAll(third, v))).toBe(sha(body));
    expect(s3.gets() - gets1).toBe(0);
    await third.close();
  });

  it('with buffered cache I/O, after a restart FUSE reads (readNowInto) are served synchronously from disk slices', async () => {
    // Prepare: a filled cache, one payload byte flipped in block 3's file.
    const cacheDir = newDir();
    const first = await open({ cacheDir, cacheWrites: 'buffered' });
    await readAll(first, v);
    await first.close();
    const second = await open({ cacheDir, cacheWrites: 'buffered' });
    const gets0 = s3.gets();
    // Act: the kernel's 128 KiB reads, into one reused buffer, the way StrataFs.readInto does.
    const r = second.open(v);
    const into = Buffer.alloc(128 * KiB);
    const parts: Buffer[] = [];
    let sync = 0;
    for (let off = 0; off < v.size; off += into.length) {
      const n = Math.min(into.length, v.size - off);
      const now = r.readNowInto(off, n, into);
      if (now !== undefined) sync++;
      else (await r.read(off, n)).copy(into, 0, 0, n);
      parts.push(Buffer.from(into.subarray(0, n)));
    }
    r.close();
    // Assess: byte-exact, every read synchronous, no S3, and no block was built in memory.
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    expect(sync).toBe(parts.length);
    expect(s3.gets() - gets0).toBe(0);
    expect(second.stats().memory.entries).toBe(0);
    expect(second.stats().disk.hits).toBe(parts.length);

    // A block file corrupted under the open mount: the slice read misses, the block is refetched.
    const files = readdirSync(join(cacheDir, CACHE_LAYOUT, 'blocks'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const victim = files.find((f) => parseHeaderOf(f).index === 3) as string;
    const bytes = readFileSync(victim);
    bytes[bytes.length - BS + 5] = (bytes[bytes.length - BS + 5] as number) ^ 0xff;
    writeFileSync(victim, bytes);
    const r2 = second.open(v);
    expect(r2.readNowInto(3 * BS, 128 * KiB, into)).toBeUndefined();
    expect((await r2.read(3 * BS, 128 * KiB)).equals(body.subarray(3 * BS, 3 * BS + 128 * KiB))).toBe(true);
    r2.close();
    expect(second.stats().disk.corrupt).toBe(1);
    expect(s3.gets() - gets0).toBe(1);
    await second.close();
  });

  it('after a restart, a FUSE stream (readNowInto) is read ahead from disk with O_DIRECT and served from memory', async () => {
    // Prepare: a filled cache (O_DIRECT writes, the default); one payload byte flipped in block 5.
    const cacheDir = newDir();
    const first = await open({ cacheDir });
    await readAll(first, v);
    await first.close();
    const files = readdirSync(join(cacheDir, CACHE_LAYOUT, 'blocks'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const victim = files.find((f) => parseHeaderOf(f).index === 5) as string;
    const bytes = readFileSync(victim);
    bytes[bytes.length - BS + 77] = (bytes[bytes.length - BS + 77] as number) ^ 0x10;
    writeFileSync(victim, bytes);
    const second = await open({ cacheDir });
    const gets0 = s3.gets();

    // Act: the kernel's 128 KiB reads, the way StrataFs.readInto does (sync first, else async).
    const r = second.open(v);
    const into = Buffer.alloc(128 * KiB);
    const parts: Buffer[] = [];
    for (let off = 0; off < v.size; off += into.length) {
      const n = Math.min(into.length, v.size - off);
      if (r.readNowInto(off, n, into) === undefined) (await r.read(off, n)).copy(into, 0, 0, n);
      parts.push(Buffer.from(into.subarray(0, n)));
    }
    r.close();

    // Assess: byte-exact; every block but the corrupt one came off the disk by O_DIRECT whole-block
    // reads into pool buffers (read-ahead), and the corrupt one was a miss refetched from S3.
    const st = second.stats();
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    expect(s3.gets() - gets0).toBe(1);
    expect(st.disk.corrupt).toBe(1);
    expect(st.disk.readModes).toEqual({ direct: 12, buffered: 0 });
    expect(st.prefetch.issued).toBeGreaterThanOrEqual(12);
    // No read went to a buffered disk slice but (at most) those of the stream's first block,
    // sliced while its O_DIRECT load was in flight: disk hits = 12 direct block reads + those.
    expect(st.disk.hits).toBeLessThanOrEqual(12 + BS / (128 * KiB));
    await second.close();

    // The refetched block was rewritten: the next open reads everything from disk again.
    const third = await open({ cacheDir });
    const gets1 = s3.gets();
    expect(sha(await readAll(third, v))).toBe(sha(body));
    expect(s3.gets() - gets1).toBe(0);
    expect(third.stats().disk.readModes.direct).toBe(13);
    await third.close();
  });

  it('a warm stream read ahead from disk stays in the memory tier: a re-read makes no disk reads', async () => {
    // Prepare: a filled cache, then a fresh data path (a remount).
    const cacheDir = newDir();
    const first = await open({ cacheDir });
    await readAll(first, v);
    await first.close();
    const second = await open({ cacheDir });
    // Act
    const a = await readAll(second, v);
    const afterFirst = second.stats().disk.readModes.direct;
    const b = await readAll(second, v);
    // Assess: 13 O_DIRECT block reads for the first pass, none for the second (memory hits).
    expect(sha(a)).toBe(sha(body));
    expect(sha(b)).toBe(sha(body));
    expect(afterFirst).toBe(13);
    expect(second.stats().disk.readModes).toEqual({ direct: 13, buffered: 0 });
    expect(second.stats().s3.gets).toBe(0);
    await second.close();
  });

  it('random small reads with the memory tier off verify only their slice; a corrupt slice is refetched', async () => {
    // Prepare: a fully cached object, then one flipped payload byte in one block file.
    const cacheDir = newDir();
    const first = await open({ cacheDir });
    await readAll(first, v);
    await first.close();
    const files = readdirSync(join(cacheDir, CACHE_LAYOUT, 'blocks'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const victim = readFileSync(files[3] as string);
    const header = parseHeader(victim);
    if ('error' in header) throw new Error(header.error);
    const flipAt = Math.floor(header.payloadLength / 2); // inside the victim block (may be the short last one)
    victim[header.headerLength + flipAt] = (victim[header.headerLength + flipAt] as number) ^ 0xff;
    writeFileSync(files[3] as string, victim);
    const base = header.index * BS;

    // Act: random 4 KiB reads (never sequential, so no read-ahead) on a disk-only data path.
    const dp = await open({ cacheDir, memoryCacheBytes: 0 });
    const r = dp.open(v);
    const gets0 = s3.gets();
    const elsewhere = [7 * BS + 4096, 2 * BS + 65_536, 11 * BS + 12_288].filter(
      (o) => Math.floor(o / BS) !== header.index,
    );
    for (const off of elsewhere)
      expect(sha(Buffer.from(await r.read(off, 4096)))).toBe(sha(body.subarray(off, off + 4096)));
    const cleanGets = s3.gets() - gets0;
    const hit = base + Math.max(0, flipAt - 100);
    const got = Buffer.from(await r.read(hit, 4096));

    // Assess: clean slices cost no GET; the corrupt one is detected, refetched and correct.
    expect(cleanGets).toBe(0);
    expect(sha(got)).toBe(sha(body.subarray(hit, hit + 4096)));
    expect(dp.stats().disk.corrupt).toBe(1);
    expect(s3.gets() - gets0).toBe(1);
    r.close();
    await dp.close();
  });

  it('returns correct bytes under 5% injected 503s, 5% timeouts and 5% resets', async () => {
    const dp = await open({
      faults: { errorRate: 0.05, timeoutRate: 0.05, resetRate: 0.05, timeoutMs: 5, random: seededRandom(7) },
      retry: { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 5 },
    });
    for (let round = 0; round < 3; round++) {
      const r = dp.open(v);
      const rnd = seededRandom(round);
      for (let i = 0; i < 40; i++) {
        const off = Math.floor(rnd() * body.length);
        const got = await r.read(off, 64 * KiB);
        expect(got.equals(body.subarray(off, off + 64 * KiB))).toBe(true);
      }
    }
    expect(sha(await readAll(dp, v))).toBe(sha(body));
    const st = dp.stats();
    expect(st.faults && st.faults.errors + st.faults.timeouts + st.faults.resets).toBeGreaterThan(0);
    expect(st.s3.retries).toBeGreaterThan(0);
    expect(st.s3.failed).toBe(0);
    await dp.close();
  });

  it('keeps the disk cache under its byte cap (LRU eviction)', async () => {
    const cap = 4 * BS + 4 * KiB; // room for 4 blocks with their headers
    // No read-ahead: blocks are then fetched (and their background cache writes started) strictly
    // in order, so LRU order = read order. With read-ahead, concurrent writes finish in any order
    // on a loaded machine and a tail block could be the one evicted (seen once under load 10).
    // And each block's cache write is awaited before the next read: two background writes can
    // complete in either order (O_DIRECT writes share two aligned arenas), which reorders the LRU.
    const dp = await open({ cacheSizeBytes: cap, memoryCacheBytes: 0, prefetchMemoryBytes: 0 });
    const r = dp.open(v);
    const parts: Buffer[] = [];
    for (let off = 0; off < v.size; off += BS) {
      parts.push(Buffer.from(await r.read(off, BS)));
      while (dp.stats().disk.pendingBytes > 0) await new Promise((done) => setTimeout(done, 2));
    }
    r.close();
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    await dp.close();
    const st = dp.stats().disk;
    expect(st.bytes).toBeLessThanOrEqual(cap);
    // 4 full blocks fit; the short last block (999 bytes) may fit beside them.
    expect(st.entries).toBeGreaterThanOrEqual(4);
    expect(st.entries).toBeLessThanOrEqual(5);
    expect(st.evictions).toBe(13 - st.entries);
    // LRU: what survived is the tail of the sequential read, so re-reading it needs no GET.
    const again = await open({ cacheDir: st.dir, cacheSizeBytes: cap, memoryCacheBytes: 0 });
    const gets0 = s3.gets();
    const tail = await again.open(v).read(9 * BS, 3 * BS);
    expect(tail.equals(body.subarray(9 * BS, 12 * BS))).toBe(true);
    expect(s3.gets() - gets0).toBe(0);
    await again.close();
  });
});

describe('version pinning', () => {
  it('an overwrite while reading yields the old bytes or PreconditionFailedError, never mixed bytes', async () => {
    const oldBody = randomBytes(24 * BS);
    const v = await s3.put('pin/file.bin', oldBody);
    const dp = await open();
    const r = dp.open(v);
    // Read the start (read-ahead fetches a few blocks), then the object is replaced under the handle.
    const head = await r.read(0, 128 * KiB);
    expect(head.equals(oldBody.subarray(0, 128 * KiB))).toBe(true);
    await s3.put('pin/file.bin', randomBytes(24 * BS));
    // Every further read is either exactly the old bytes (cached/prefetched) or a clean error.
    let stale = 0;
    for (let off = 0; off < oldBody.length; off += 100 * KiB) {
      try {
        const got = await r.read(off, 100 * KiB);
        expect(got.equals(oldBody.subarray(off, off + 100 * KiB))).toBe(true);
      } catch (err) {
        expect(err).toBeInstanceOf(PreconditionFailedError);
        stale++;
      }
    }
    expect(stale).toBeGreaterThan(0);
    expect(dp.stats().s3.failed).toBeGreaterThan(0);
    await dp.close();
  });

  it('a deleted object is NotFoundError (permanent, not retried)', async () => {
    const dp = await open();
    const v: ObjectVersion = { bucket: s3.bucket, key: 'never/there.bin', size: 10, etag: '"x"' };
    await expect(dp.open(v).read(0, 10)).rejects.toBeInstanceOf(NotFoundError);
    expect(dp.stats().s3.gets).toBe(1);
    await dp.close();
  });
});

describe('tiers', () => {
  it('peer hits skip S3; a failing or wrong peer falls through to S3; viaPeer:false bypasses it', async () => {
    const body = randomBytes(3 * BS);
    const v = await s3.put('tiers/p.bin', body);
    let calls = 0;
    const good: BlockFetcher = {
      name: 'peer',
      async fetch(id) {
        calls++;
        return body.subarray(id.index * BS, (id.index + 1) * BS);
      },
    };
    const dp1 = await open({ peer: good });
    expect(sha(await readAll(dp1, v))).toBe(sha(body));
    expect(dp1.stats().s3.gets).toBe(0);
    expect(dp1.stats().peer.hits).toBe(3);
    await dp1.close();

    const broken: BlockFetcher = {
      name: 'peer',
      async fetch(id) {
        if (id.index === 0) throw new Error('peer down');
        return Buffer.alloc(10); // wrong length → rejected
      },
    };
    const dp2 = await open({ peer: broken });
    expect(sha(await readAll(dp2, v))).toBe(sha(body));
    expect(dp2.stats().s3.gets).toBe(3);
    expect(dp2.stats().peer.errors).toBe(3);
    await dp2.close();

    calls = 0;
    const dp3 = await open({ peer: good });
    const blk = await dp3.loadBlock({ object: v, index: 1, blockSize: BS }, { viaPeer: false });
    expect(blk.equals(body.subarray(BS, 2 * BS))).toBe(true);
    expect(calls).toBe(0);
    expect(dp3.stats().s3.gets).toBe(1);
    await dp3.close();
  });

  it('presign mode reads through URLs handed out by the API', async () => {
    const body = randomBytes(2 * BS + 5);
    const v = await s3.put('tiers/presigned.bin', body);
    let presigned = 0;
    const dp = await open({
      presign: async (o) => {
        presigned++;
        const url = await getSignedUrl(s3.s3, new GetObjectCommand({ Bucket: o.bucket, Key: o.key }), {
          expiresIn: 300,
        });
        return { url, expiresAt: Date.now() + 300_000 };
      },
    });
    expect(sha(await readAll(dp, v))).toBe(sha(body));
    expect(presigned).toBe(1);
    await dp.close();
  });

  it('the SDK transport reads the same bytes', async () => {
    const body = randomBytes(3 * BS + 1);
    const v = await s3.put('tiers/sdk.bin', body);
    const dp = await open({ transport: 'sdk' });
    expect(sha(await readAll(dp, v))).toBe(sha(body));
    expect(dp.stats().s3.gets).toBe(4);
    await dp.close();
  });
});

describe('memory bounds, pooled buffers and deadlines', () => {
  let body: Buffer;
  let v: ObjectVersion;
  beforeAll(async () => {
    body = randomBytes(16 * BS + 4321);
    v = await s3.put('bounds/stream.bin', body);
  });

  it('reuses block buffers across a stream and a remount, with byte-exact results', async () => {
    // Prepare: a memory tier of 4 blocks and a disk-write backlog of 3, so a 17-block stream holds
    // at most ~10 blocks at once and must recycle — whether or not a loaded machine's disk keeps up
    // (with the default 128 MiB backlog a slow disk holds every block until the stream ends).
    const cacheDir = newDir();
    const first = await open({
      cacheDir,
      memoryCacheBytes: 4 * BS,
      readAheadMaxBytes: 2 * BS,
      writeBacklogBytes: 3 * BS,
    });
    // Act
    expect(sha(await readAll(first, v))).toBe(sha(body));
    const cold = first.stats().pool;
    await first.close();
    // Blocks served past the backlog were not cached: fill them in so the remount below is all hits.
    const filler = await open({ cacheDir });
    expect(sha(await readAll(filler, v))).toBe(sha(body));
    await filler.close();
    const second = await open({ cacheDir, memoryCacheBytes: 4 * BS, readAheadMaxBytes: 2 * BS });
    const warm = await readAll(second, v);
    // Random reads that straddle blocks hold two pooled blocks across turns.
    const r = second.open(v);
    for (let i = 1; i < 16; i++) {
      const off = i * BS - 1000;
      expect((await r.read(off, 3000)).equals(body.subarray(off, off + 3000))).toBe(true);
    }
    r.close();
    // Assess
    expect(sha(warm)).toBe(sha(body));
    expect(cold.reused).toBeGreaterThan(0);
    expect(second.stats().pool.reused).toBeGreaterThan(0);
    expect(second.stats().s3.gets).toBe(0);
    await second.close();
  });

  it('a stream lends its in-memory blocks, which stay intact until released while the pool recycles', async () => {
    // Prepare: a 4-block memory tier, so the stream evicts and its pooled buffers are reused.
    const dp = await open({ memoryCacheBytes: 4 * BS, readAheadMaxBytes: 2 * BS, writeBacklogBytes: 3 * BS });
    const r = dp.open(v);
    const into = Buffer.alloc(128 * KiB);
    const parts: Buffer[] = [];
    const kept: LentBlock[] = [];
    let lentReads = 0;
    expect(r.lend(0)).toBeUndefined(); // not a stream yet
    // Act: 128 KiB reads as the binding issues them with a lender (fuse/lender.ts): JavaScript
    // serves a read and lends its block; the addon (here: a copy out of the lent block) answers the
    // block's other reads, and absorb hands them back to the reader.
    let off = 0;
    while (off < v.size) {
      const n = Math.min(into.length, v.size - off);
      if (r.readNowInto(off, n, into) === undefined) (await r.read(off, n)).copy(into, 0, 0, n);
      parts.push(Buffer.from(into.subarray(0, n)));
      off += n;
      const lent = r.lend(off - n);
      if (!lent) continue;
      expect(lent.eof).toBe(lent.start + lent.data.length === v.size);
      const end = lent.start + lent.data.length;
      let reads = 0;
      let bytes = 0;
      for (; off < end; reads++) {
        const m = Math.min(into.length, end - off);
        parts.push(Buffer.from(lent.data.subarray(off - lent.start, off - lent.start + m)));
        off += m;
        bytes += m;
      }
      r.absorb(off, reads, bytes);
      lentReads += reads;
      // The first three stay lent to the end (the addon could still be reading them); the rest go back.
      if (kept.length < 3) kept.push(lent);
      else lent.release();
    }
    r.close();
    // A random reader's first read is not a stream: nothing to lend.
    const random = dp.open(v);
    await random.read(5 * BS, 4 * KiB);
    expect(random.lend(5 * BS)).toBeUndefined();
    random.close();

    // Assess: byte-exact; most reads were lent; blocks kept lent were never recycled under the
    // lender although the pool reused buffers meanwhile; read-ahead kept running on absorbed reads.
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    const st = dp.stats();
    expect(st.reads.lent).toBe(lentReads);
    // 256 KiB blocks are two 128 KiB reads: JavaScript served the first of each, the lent block the other.
    expect(lentReads).toBe(16);
    expect(st.pool.reused).toBeGreaterThan(0);
    expect(st.prefetch.issued).toBeGreaterThan(0);
    for (const b of kept) {
      expect(sha(b.data)).toBe(sha(body.subarray(b.start, b.start + b.data.length)));
      b.release();
      b.release(); // idempotent
    }
    await dp.close();
  });

  it('bounds the disk-write backlog: blocks past it are served but not cached', async () => {
    // Prepare: a backlog of one block; four readers race through the file.
    const dp = await open({ writeBacklogBytes: BS, memoryCacheBytes: 2 * BS });
    // Act
    let maxPending = 0;
    const sample = setInterval(() => {
      maxPending = Math.max(maxPending, dp.stats().disk.pendingBytes);
    }, 1);
    const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => readAll(dp, v)));
    clearInterval(sample);
    await dp.close();
    // Assess
    for (const got of [a, b, c, d]) expect(sha(got as Buffer)).toBe(sha(body));
    expect(maxPending).toBeLessThanOrEqual(BS);
    const st = dp.stats();
    expect(st.disk.pendingBytes).toBe(0);
    // Every block was either written once or shed (never held beyond the backlog).
    expect(st.disk.writes + st.disk.writesSkipped).toBeGreaterThanOrEqual(17);
  });

  it('fails a read with EIO (ReadDeadlineError) at its deadline when S3 never answers', async () => {
    // Prepare: every attempt times out; the retry budget alone would take far longer.
    const dp = await open({
      faults: { timeoutRate: 1, timeoutMs: 200, random: seededRandom(3) },
      retry: { maxAttempts: 1000, baseDelayMs: 1, maxDelayMs: 5, deadlineMs: 60_000 },
      readDeadlineMs: 300,
    });
    // Act
    const err = await dp
      .open(v)
      .read(0, 4096)
      .catch((e: unknown) => e);
    // Assess
    expect(err).toBeInstanceOf(ReadDeadlineError);
    expect(err).toBeInstanceOf(S3ReadError);
    expect((err as Error).message).toMatch(/no data within/);
    await dp.close();
  });

  it('gives up a block fetch at the retry deadline with an S3ReadError', async () => {
    const dp = await open({
      faults: { timeoutRate: 1, timeoutMs: 50, random: seededRandom(4) },
      retry: { maxAttempts: 1000, baseDelayMs: 1, maxDelayMs: 5, deadlineMs: 300 },
      readDeadlineMs: 0,
    });
    const err = await dp
      .open(v)
      .read(0, 4096)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3ReadError);
    expect((err as Error).message).toMatch(/deadline passed/);
    await dp.close();
  });
});

/** The parsed header of a block file (which block it holds). */
function parseHeaderOf(file: string): { index: number } {
  const h = parseHeader(readFileSync(file));
  if ('error' in h) throw new Error(`${file}: ${h.error}`);
  return h;
}
