import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CacheLockedError, DiskBlockStore } from '../../../mount-client/block-cache/disk-cache.ts';
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
    const s = await DiskBlockStore.open({ dir, capacityBytes: 3 * 1200, minFreeBytes: 0 });
    for (let i = 0; i < 3; i++) await s.put(id(i), data(i));
    await s.get(id(0)); // 0 becomes most recent → 1 is the LRU victim
    await s.put(id(3), data(3));
    expect(s.stats().bytes).toBeLessThanOrEqual(3 * 1200);
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
    expect(s.stats().evictions).toBe(1);
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
    const sub = readdirSync(join(dir, 'v1', 'blocks'))[0] as string;
    const name = readdirSync(join(dir, 'v1', 'blocks', sub))[0] as string;
    writeFileSync(join(dir, 'v1', 'blocks', sub, name), Buffer.alloc(1100, 1));
    expect(await s.get(id(0))).toBeUndefined();
    expect(corrupt).toEqual(['magic']);
    expect(s.stats()).toMatchObject({ corrupt: 1, entries: 0 });
    expect(readdirSync(join(dir, 'v1', 'blocks', sub))).toEqual([]);
    await s.close();
  });

  it('drops leftover temp files from a crash and refuses a second live owner', async () => {
    const dir = newDir();
    const a = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    writeFileSync(join(dir, 'v1', 'tmp', 'torn.tmp'), 'x');
    // A live foreign PID (our parent) holds the lock.
    writeFileSync(join(dir, 'v1', 'lock'), String(process.ppid));
    await expect(DiskBlockStore.open({ dir, capacityBytes: 1e6 })).rejects.toBeInstanceOf(CacheLockedError);
    // A stale lock (dead PID) is taken over.
    writeFileSync(join(dir, 'v1', 'lock'), '999999999');
    const b = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    expect(readdirSync(join(dir, 'v1', 'tmp'))).toEqual([]);
    await b.close();
    await a.close();
  });

  it('rejects a payload of the wrong length instead of caching it', async () => {
    const s = await DiskBlockStore.open({ dir: newDir(), capacityBytes: 1e6, minFreeBytes: 0 });
    await expect(s.put(id(0), Buffer.alloc(5))).rejects.toThrow(/expected 1000/);
    await s.close();
  });
});
