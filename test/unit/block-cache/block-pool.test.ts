import { describe, expect, it } from 'vitest';
import { BlockPool, DIRECT_IO_PHASE } from '../../../mount-client/block-cache/block-pool.ts';
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
    const c = pool.acquire(600);
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(600);
    expect(pool.counts).toMatchObject({ allocated: 2, reused: 1, recycled: 1 });
  });

  it('gives a block under half the block size a buffer of its own, never a pooled store', () => {
    // Prepare: a 1 KiB pool; 100 small files' blocks
    const pool = new BlockPool(1024);
    // Act
    const small = Array.from({ length: 100 }, () => pool.acquire(100));
    // Assess: no store pinned per small block (the memory tier counts only 100 bytes each)
    expect(small.every((b) => b.length === 100 && !pool.owns(b))).toBe(true);
    expect(pool.counts).toMatchObject({ allocated: 0, slabPieces: 0 });
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

describe('BlockPool slab reserve', () => {
  it('carves the first reserveBytes of stores from one slab and never drops them', async () => {
    // Prepare: 3 slab pieces of 64 bytes, maxFree 1 for whole stores.
    const pool = new BlockPool(64, 1, 3 * 64 + 10);
    // Act
    const bufs = Array.from({ length: 5 }, () => pool.acquire(64));
    // Assess: three views of one ArrayBuffer at distinct block offsets, then whole stores.
    const slab = bufs[0]?.buffer;
    expect(bufs.slice(0, 3).map((b) => b.buffer === slab)).toEqual([true, true, true]);
    // Pieces start at DIRECT_IO_PHASE (a 4 KiB boundary for O_DIRECT writes), one block apart.
    expect(bufs.slice(0, 3).map((b) => b.byteOffset)).toEqual([0, 64, 128].map((o) => o + DIRECT_IO_PHASE));
    expect(bufs[3]?.buffer).not.toBe(slab);
    expect(pool.counts).toMatchObject({ slabPieces: 3, allocated: 2 });
    // Writes to one piece never reach its neighbours.
    bufs[0]?.fill(1);
    bufs[1]?.fill(2);
    expect(bufs[0]?.every((x) => x === 1)).toBe(true);
    for (const b of bufs) pool.release(b);
    await turn();
    // All three slab pieces kept (reserve), one whole store (maxFree 1), one dropped.
    expect(pool.idle).toBe(4);
    expect(pool.counts.dropped).toBe(1);
  });

  it('reuses slab pieces before whole stores and before carving new pieces', async () => {
    const pool = new BlockPool(64, 4, 2 * 64);
    const a = pool.acquire(64); // slab piece 0
    pool.release(a);
    await turn();
    const b = pool.acquire(32);
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(DIRECT_IO_PHASE);
    expect(pool.counts).toMatchObject({ slabPieces: 1, reused: 1 });
  });

  it('a quarantined slab piece is not handed out again in the same turn', () => {
    const pool = new BlockPool(64, 4, 64);
    const a = pool.acquire(64);
    a.fill(7);
    pool.release(a);
    const b = pool.acquire(64);
    expect(b.buffer === a.buffer && b.byteOffset === a.byteOffset).toBe(false);
    b.fill(9);
    expect(a.every((x) => x === 7)).toBe(true);
  });
});
