/**
 * The data path's peer-tier hooks (object-client/data-path.ts), with a real disk cache and the S3
 * emulator behind: `keepCopy` decides whether a peer-delivered block is written to this node's disk
 * cache (always written without a memory tier), `into` lends pooled buffers to receive into, and
 * `leaseBlock` lends a block to the peer server without a copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BlockId, blockLength, type ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import {
  createDataPath,
  type DataPath,
  type DataPathOptions,
  type PeerTier,
} from '../../../mount-client/object-client/data-path.ts';
import { type S3Fixture, startS3 } from '../data-path/s3-fixture.ts';

const KiB = 1024;
const BS = 256 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let s3: S3Fixture;
const dirs: string[] = [];
const open: DataPath[] = [];

beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  for (const dp of open) await dp.close();
  await s3.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function dataPath(o: Partial<DataPathOptions>): Promise<DataPath> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-dp-peer-'));
  dirs.push(dir);
  const dp = await createDataPath({
    cacheDir: dir,
    cacheSizeBytes: 64 * 1024 * KiB,
    blockSize: BS,
    region: s3.region,
    endpoint: s3.endpoint,
    metrics: new Registry(),
    minFreeBytes: 0,
    ...o,
  });
  open.push(dp);
  return dp;
}

/** A peer tier serving `body` for every block, with a fixed keep decision; counts what it saw. */
function peerOf(body: Buffer, keep: boolean) {
  const seen = { fetches: 0, lent: 0, keepAsked: 0 };
  const tier: PeerTier = {
    name: 'peer',
    async fetch(id: BlockId, _signal?: AbortSignal, into?: (n: number) => Buffer) {
      seen.fetches++;
      const len = blockLength(id);
      const out = into ? into(len) : Buffer.allocUnsafe(len);
      if (into) seen.lent++;
      body.copy(out, 0, id.index * id.blockSize, id.index * id.blockSize + len);
      return out;
    },
    keepCopy() {
      seen.keepAsked++;
      return keep;
    },
  };
  return { tier, seen };
}

async function readAll(dp: DataPath, v: ObjectVersion): Promise<Buffer> {
  const r = dp.open(v);
  const parts: Buffer[] = [];
  for (let off = 0; off < v.size; off += 128 * KiB) parts.push(Buffer.from(await r.read(off, 128 * KiB)));
  r.close();
  return Buffer.concat(parts);
}

describe('data path peer hooks', () => {
  it('a block the peer tier declines to keep is served from memory and not written to disk', async () => {
    // Prepare
    const body = randomBytes(6 * BS + 999);
    const v = await s3.put('hooks/no-keep.bin', body);
    const { tier, seen } = peerOf(body, false);
    const dp = await dataPath({ peer: tier });
    // Act
    const got = await readAll(dp, v);
    // Assess
    expect(sha(got)).toBe(sha(body));
    expect(seen.fetches).toBe(7);
    expect(seen.keepAsked).toBe(7);
    expect(seen.lent).toBe(7); // every block received into a buffer the data path lent
    expect(dp.stats().disk.writes).toBe(0);
    expect(dp.stats().s3.gets ?? 0).toBe(0);
  });

  it('a read-ahead window larger than half the memory tier is capped: each block is fetched once', async () => {
    // Prepare: a 4-block tier under a 64-block window; the peer's blocks are not kept on disk, so
    // a block evicted before the reader reaches it could only come back by fetching it again.
    const body = randomBytes(32 * BS);
    const v = await s3.put('hooks/window.bin', body);
    const { tier, seen } = peerOf(body, false);
    const dp = await dataPath({ peer: tier, memoryCacheBytes: 4 * BS, readAheadMaxBytes: 64 * BS });
    // Act
    const got = await readAll(dp, v);
    // Assess
    expect(sha(got)).toBe(sha(body));
    expect(seen.fetches).toBe(32);
    expect(dp.stats().s3.gets ?? 0).toBe(0);
  });

  it('a block the peer tier keeps is written to disk', async () => {
    const body = randomBytes(3 * BS);
    const v = await s3.put('hooks/keep.bin', body);
    const { tier } = peerOf(body, true);
    const dp = await dataPath({ peer: tier });
    expect(sha(await readAll(dp, v))).toBe(sha(body));
    await dp.close(); // flushes the background writes
    expect(dp.stats().disk.writes).toBe(3);
  });

  it('without a memory tier every peer block is kept (else each 128 KiB read would fetch it again)', async () => {
    const body = randomBytes(2 * BS);
    const v = await s3.put('hooks/no-memory.bin', body);
    const { tier, seen } = peerOf(body, false);
    const dp = await dataPath({ peer: tier, memoryCacheBytes: 0 });
    expect(sha(await readAll(dp, v))).toBe(sha(body));
    await dp.close();
    expect(dp.stats().disk.writes).toBe(2);
    expect(seen.keepAsked).toBe(0);
  });

  it('leaseBlock lends the block without a copy until release (idempotent)', async () => {
    const body = randomBytes(2 * BS + 5);
    const v = await s3.put('hooks/lease.bin', body);
    const dp = await dataPath({});
    const id: BlockId = { object: v, index: 1, blockSize: BS };
    const lease = await dp.leaseBlock(id, { viaPeer: false });
    expect(sha(lease.data)).toBe(sha(body.subarray(BS, 2 * BS)));
    // The same block again while leased: same bytes (the lent store was not reused).
    const again = await dp.leaseBlock(id, { viaPeer: false });
    expect(sha(again.data)).toBe(sha(lease.data));
    lease.release();
    lease.release();
    again.release();
    const tail = await dp.leaseBlock({ object: v, index: 2, blockSize: BS }, { viaPeer: false });
    expect(tail.data.length).toBe(5);
    tail.release();
    expect(dp.stats().s3.gets).toBe(2);
  });
});
