import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../../mount-client/block-cache/block-pool.ts';
import { MemoryBlockCache } from '../../../mount-client/block-cache/memory-cache.ts';

const turn = () => new Promise((r) => setImmediate(r));

describe('BlockPool', () => {
  it('reuses a backing store only after the last reference is gone and a turn has passed', async () => {
    // Prepare
    const pool = new BlockPool(1024);
    const a = pool.acquire(1024);
    pool.retain(a);
    // Act + Assess: one reference left → not recycled
    pool.release(a);
    await turn();
    expect(pool.idle).toBe(0);
    pool.release(a);
    // Same turn: quarantined, a new acquire must not get a's bytes.
    const b = pool.acquire(1024);
    expect(b.buffer).not.toBe(a.buffer);
    await turn();
    const c = pool.acquire(100);
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(100);
    expect(pool.counts).toMatchObject({ allocated: 2, reused: 1, recycled: 1 });
  });

  it('throws on a double release (a bookkeeping bug must not corrupt a block silently)', () => {
    const pool = new BlockPool(64);
    const a = pool.acquire(64);
    pool.release(a);
    expect(() => pool.release(a)).not.toThrow(); // the lease is gone: a foreign buffer, ignored
    const b = pool.acquire(64);
    pool.retain(b);
    pool.release(b);
    pool.release(b);
    expect(pool.owns(b)).toBe(false);
  });

  it('keeps at most maxFree idle stores and ignores buffers it did not make', async () => {
    const pool = new BlockPool(64, 2);
    const bufs = Array.from({ length: 5 }, () => pool.acquire(64));
    for (const b of bufs) pool.release(b);
    pool.release(Buffer.alloc(64));
    await turn();
    expect(pool.idle).toBe(2);
    expect(pool.counts.dropped).toBe(3);
  });

  it('recycles blocks the memory LRU evicts, and only those', async () => {
    const pool = new BlockPool(100);
    const mem = new MemoryBlockCache(200, { onHold: (b) => pool.retain(b), onDrop: (b) => pool.release(b) });
    const blocks = [0, 1, 2].map(() => pool.acquire(100));
    for (const [i, b] of blocks.entries()) {
      mem.set(`k${i}`, b);
      pool.release(b); // the loader's own reference
    }
    await turn();
    // k0 was evicted by k2: its store is idle; k1 and k2 are still held by the cache.
    expect(pool.idle).toBe(1);
    expect(mem.get('k1')).toBe(blocks[1]);
    mem.clear();
    await turn();
    expect(pool.idle).toBe(3);
  });
});
