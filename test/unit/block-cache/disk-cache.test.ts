import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blockKey as blockKeyOf } from '../../../mount-client/block-cache/block-key.ts';
import {
  CACHE_LAYOUT,
  CacheLockedError,
  DiskBlockStore,
} from '../../../mount-client/block-cache/disk-cache.ts';
import { fileLength, headerLength, parseHeader } from '../../../mount-client/block-cache/format.ts';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';

const dirs: string[] = [];
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'strata-disk-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const object = { bucket: 'b', key: 'k', size: 10 * 1000, etag: '"e"' };
const id = (index: number): BlockId => ({ object, index, blockSize: 1000 });
const data = (index: number) => Buffer.alloc(1000, index);
/** On-disk size of one of these blocks: 4 KiB-padded header + payload padded to 4 KiB (format v3). */
const FILE = fileLength(headerLength(id(0)), 1000);
/** Offset of the payload in a block file. */
const payloadAt = (file: Buffer): number => {
  const h = parseHeader(file);
  if ('error' in h) throw new Error(h.error);
  return h.headerLength;
};

describe('DiskBlockStore', () => {
  it('stores, returns and survives reopening (index rebuilt by scanning)', async () => {
    const dir = newDir();
    const a = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    for (let i = 0; i < 3; i++) await a.put(id(i), data(i));
    await a.close();
    const b = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    expect(b.stats().entries).toBe(3);
    expect((await b.get(id(1)))?.equals(data(1))).toBe(true);
    expect(await b.get(id(5))).toBeUndefined();
    expect(b.stats()).toMatchObject({ hits: 1, misses: 1 });
    await b.close();
  });

  it('evicts least recently used blocks to stay under the byte cap', async () => {
    const dir = newDir();
    const s = await DiskBlockStore.open({ dir, capacityBytes: 3 * FILE + 100, minFreeBytes: 0 });
    for (let i = 0; i < 3; i++) await s.put(id(i), data(i));
    await s.get(id(0)); // 0 becomes most recent → 1 is the LRU victim
    await s.put(id(3), data(3));
    expect(s.stats().bytes).toBeLessThanOrEqual(3 * FILE + 100);
    expect(s.has(id(1))).toBe(false);
    expect(s.has(id(0)) && s.has(id(2)) && s.has(id(3))).toBe(true);
    expect(s.stats().evictions).toBe(1);
    await s.close();
  });

  it('evicts to keep the free-disk floor', async () => {
    const s = await DiskBlockStore.open({
      dir: newDir(),
      capacityBytes: 1e9,
      minFreeBytes: Number.MAX_SAFE_INTEGER,
    });
    await s.put(id(0), data(0));
    expect(s.stats().entries).toBe(0);
    // Not written at all: even an empty cache is below the floor (no write-then-delete churn).
    expect(s.stats().writesBelowFloor).toBe(1);
    await s.close();
  });

  it('treats a corrupted file as a miss, deletes it and counts it', async () => {
    const dir = newDir();
    const corrupt: string[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e6,
      minFreeBytes: 0,
      onCorrupt: (r) => corrupt.push(r),
    });
    await s.put(id(0), data(0));
    const sub = readdirSync(join(dir, CACHE_LAYOUT, 'blocks'))[0] as string;
    const name = readdirSync(join(dir, CACHE_LAYOUT, 'blocks', sub))[0] as string;
    writeFileSync(join(dir, CACHE_LAYOUT, 'blocks', sub, name), Buffer.alloc(1100, 1));
    expect(await s.get(id(0))).toBeUndefined();
    expect(corrupt).toEqual(['magic']);
    expect(s.stats()).toMatchObject({ corrupt: 1, entries: 0 });
    expect(readdirSync(join(dir, CACHE_LAYOUT, 'blocks', sub))).toEqual([]);
    await s.close();
  });

  it('drops leftover temp files from a crash and refuses a second live owner', async () => {
    const dir = newDir();
    const a = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    writeFileSync(join(dir, CACHE_LAYOUT, 'tmp', 'torn.tmp'), 'x');
    // A live foreign PID (our parent) holds the lock.
    writeFileSync(join(dir, CACHE_LAYOUT, 'lock'), String(process.ppid));
    await expect(DiskBlockStore.open({ dir, capacityBytes: 1e6 })).rejects.toBeInstanceOf(CacheLockedError);
    // A stale lock (dead PID) is taken over.
    writeFileSync(join(dir, CACHE_LAYOUT, 'lock'), '999999999');
    const b = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    expect(readdirSync(join(dir, CACHE_LAYOUT, 'tmp'))).toEqual([]);
    await b.close();
    await a.close();
  });

  it('rejects a payload of the wrong length instead of caching it', async () => {
    const s = await DiskBlockStore.open({ dir: newDir(), capacityBytes: 1e6, minFreeBytes: 0 });
    await expect(s.put(id(0), Buffer.alloc(5))).rejects.toThrow(/expected 1000/);
    await s.close();
  });

  it('serves a slice verifying only its sub-blocks; a corrupt slice is a miss and the block is dropped', async () => {
    // Prepare: 1000-byte blocks in 100-byte sub-blocks.
    const dir = newDir();
    const corrupt: string[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e6,
      minFreeBytes: 0,
      subBlockBytes: 100,
      onCorrupt: (r) => corrupt.push(r),
    });
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    await s.put(id(0), payload);
    const key = blockKeyOf(id(0));

    // Act + Assess: slices within one sub-block, across sub-blocks, and the block's end.
    expect((await s.getRange(id(0), key, 5, 9))?.equals(payload.subarray(5, 9))).toBe(true);
    expect((await s.getRange(id(0), key, 150, 420))?.equals(payload.subarray(150, 420))).toBe(true);
    expect((await s.getRange(id(0), key, 990, 1000))?.equals(payload.subarray(990, 1000))).toBe(true);

    // A flipped byte in sub-block 7 does not affect a read of sub-block 2 ...
    const file = blockFile(dir);
    const bytes = readFileSync(file);
    const at = payloadAt(bytes);
    bytes[at + 750] = (bytes[at + 750] as number) ^ 0xff;
    writeFileSync(file, bytes);
    expect((await s.getRange(id(0), key, 200, 210))?.equals(payload.subarray(200, 210))).toBe(true);
    // ... but a read touching it is a miss, counted, and the file is gone (the caller refetches).
    expect(await s.getRange(id(0), key, 700, 800)).toBeUndefined();
    expect(corrupt).toEqual(['payload-checksum']);
    expect(s.stats()).toMatchObject({ corrupt: 1, entries: 0 });
    expect(existsSync(file)).toBe(false);
    // After a refetch the block is whole again.
    await s.put(id(0), payload);
    expect((await s.get(id(0)))?.equals(payload)).toBe(true);
    await s.close();
  });

  it('reads slices synchronously into the caller buffer (aligned: straight in; unaligned: copied)', async () => {
    // Prepare: 1000-byte blocks in 100-byte sub-blocks, reopened (a remount).
    const dir = newDir();
    const a = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0, subBlockBytes: 100 });
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 251));
    await a.put(id(0), payload);
    await a.close();
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0, subBlockBytes: 100 });
    const key = blockKeyOf(id(0));
    const into = Buffer.alloc(300, 0xee);

    // Act + Assess: aligned whole sub-blocks, an unaligned slice across sub-blocks, the tail.
    expect(s.readSliceSync(id(0), key, 100, 300, into)).toBe(200);
    expect(into.subarray(0, 200).equals(payload.subarray(100, 300))).toBe(true);
    expect(s.readSliceSync(id(0), key, 150, 420, into)).toBe(270);
    expect(into.subarray(0, 270).equals(payload.subarray(150, 420))).toBe(true);
    expect(s.readSliceSync(id(0), key, 990, 1000, into)).toBe(10);
    expect(into.subarray(0, 10).equals(payload.subarray(990, 1000))).toBe(true);
    // Out of range, a buffer too small, or a block that is not cached: undefined, nothing thrown.
    expect(s.readSliceSync(id(0), key, 900, 1001, into)).toBeUndefined();
    expect(s.readSliceSync(id(0), key, 0, 400, into)).toBeUndefined();
    expect(s.readSliceSync(id(1), blockKeyOf(id(1)), 0, 100, into)).toBeUndefined();
    expect(s.stats()).toMatchObject({ hits: 3, corrupt: 0, entries: 1 });
    await s.close();
  });

  it('a byte flipped in place under an open block file is caught, even in a sub-block verified before', async () => {
    const dir = newDir();
    const corrupt: string[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e6,
      minFreeBytes: 0,
      subBlockBytes: 100,
      onCorrupt: (r) => corrupt.push(r),
    });
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    await s.put(id(0), payload);
    const key = blockKeyOf(id(0));
    const into = Buffer.alloc(100);
    expect(s.readSliceSync(id(0), key, 700, 800, into)).toBe(100);

    // Act: flip a byte in sub-block 7 in place (same inode: the open file sees it). Sub-block 7 was
    // verified through this open file already; the write changes the file's ctime, so it is
    // reopened and verified again.
    const file = blockFile(dir);
    const bytes = readFileSync(file);
    const at = payloadAt(bytes);
    bytes[at + 750] = (bytes[at + 750] as number) ^ 0xff;
    writeFileSync(file, bytes);

    // Assess: other sub-blocks still serve; the bad one is a miss, counted, and the block dropped.
    expect(s.readSliceSync(id(0), key, 200, 300, into)).toBe(100);
    expect(s.readSliceSync(id(0), key, 700, 800, into)).toBeUndefined();
    expect(corrupt).toEqual(['payload-checksum']);
    expect(s.stats()).toMatchObject({ corrupt: 1, entries: 0 });
    expect(s.hasKey(key)).toBe(false);
    // A refetched block (put renames a new file in) serves again.
    await s.put(id(0), payload);
    expect(s.readSliceSync(id(0), key, 700, 800, into)).toBe(100);
    expect(into.equals(payload.subarray(700, 800))).toBe(true);
    await s.close();
  });

  it('a synchronous slice read of a block with a bad header is a miss and drops it', async () => {
    const dir = newDir();
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0, subBlockBytes: 100 });
    await s.put(id(0), data(0));
    const file = blockFile(dir);
    const bytes = readFileSync(file);
    bytes[40] = (bytes[40] as number) ^ 1;
    writeFileSync(file, bytes);
    expect(s.readSliceSync(id(0), blockKeyOf(id(0)), 0, 100, Buffer.alloc(100))).toBeUndefined();
    expect(s.stats()).toMatchObject({ corrupt: 1, entries: 0 });
    await s.close();
  });

  it('a corrupt header or checksum table fails a slice read too', async () => {
    const dir = newDir();
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0, subBlockBytes: 100 });
    await s.put(id(0), data(0));
    const file = blockFile(dir);
    const bytes = readFileSync(file);
    bytes[40] = (bytes[40] as number) ^ 1; // inside the meta JSON / table, covered by the header crc
    writeFileSync(file, bytes);
    expect(await s.getRange(id(0), blockKeyOf(id(0)), 0, 10)).toBeUndefined();
    expect(s.stats().corrupt).toBe(1);
    await s.close();
  });

  it('removes the previous format layout directory at open (its blocks are misses)', async () => {
    const dir = newDir();
    mkdirSync(join(dir, 'v1', 'blocks', 'ab'), { recursive: true });
    writeFileSync(join(dir, 'v1', 'blocks', 'ab', 'old.blk'), 'x'.repeat(100));
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    expect(existsSync(join(dir, 'v1'))).toBe(false);
    expect(s.stats().entries).toBe(0);
    await s.close();
  });
});

function blockFile(dir: string): string {
  const root = join(dir, CACHE_LAYOUT, 'blocks');
  const sub = readdirSync(root)[0] as string;
  return join(root, sub, readdirSync(join(root, sub))[0] as string);
}
