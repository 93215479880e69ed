import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys } from '../../../functions/core/reconcile/key-order.ts';
import { inRange, planShards } from '../../../functions/core/reconcile/shards.ts';

describe('planShards', () => {
  it('one shard for a scope without subdirectories', async () => {
    expect(await planShards('data/', [])).toEqual([{ prefix: 'data/' }]);
    expect(await planShards('data/', ['data/a/'])).toEqual([{ prefix: 'data/' }]);
  });

  it('cuts at subdirectory boundaries, first shard from the scope start, last open-ended', async () => {
    const shards = await planShards('data/', ['data/a/', 'data/b/', 'data/c/'], 8);
    expect(shards).toEqual([
      { prefix: 'data/', to: 'data/b/' },
      { prefix: 'data/', from: 'data/b/', to: 'data/c/' },
      { prefix: 'data/', from: 'data/c/' },
    ]);
  });

  it('never exceeds maxShards and keeps bounded memory for many prefixes', async () => {
    async function* many() {
      for (let i = 0; i < 100_000; i++) yield `data/d${String(i).padStart(6, '0')}/`;
    }
    const shards = await planShards('data/', many(), 16);
    expect(shards.length).toBeLessThanOrEqual(16);
    expect(shards.length).toBeGreaterThanOrEqual(8);
  });

  it('partitions the key space: every key under the scope falls in exactly one shard', async () => {
    const segment = fc.constantFrom('a', 'b', 'b.txt', 'c', 'é', '😀', 'z', '\uff5e', 'a b');
    const keyArb = fc
      .array(segment, { minLength: 1, maxLength: 3 })
      .map((parts) => `data/${parts.join('/')}`);
    await fc.assert(
      fc.asyncProperty(
        fc.array(keyArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 6 }),
        async (keys, max) => {
          // Prepare: the delimiter listing S3 would return for these keys
          const prefixes = [
            ...new Set(
              keys.filter((k) => k.indexOf('/', 5) > 0).map((k) => k.slice(0, k.indexOf('/', 5) + 1)),
            ),
          ].sort(compareKeys);
          // Act
          const shards = await planShards('data/', prefixes, max);
          // Assess
          expect(shards.length).toBeLessThanOrEqual(max);
          for (const k of [...keys, 'data/', 'data/b', 'data/b/']) {
            expect(shards.filter((s) => inRange(s, k)).length).toBe(1);
          }
        },
      ),
    );
  });
});

describe('planScope', () => {
  it('descends into subdirectories when a level has too few to parallelise, and still covers every key', async () => {
    // Prepare: everything under one top-level directory
    const { MemoryListing } = await import('../../../functions/core/reconcile/memory.ts');
    const { planScope } = await import('../../../functions/core/reconcile/plan.ts');
    const listing = new MemoryListing();
    const keys: string[] = ['data/loose', 'data/archive/top.txt'];
    for (let y = 2019; y < 2024; y++) for (let m = 1; m <= 12; m++) keys.push(`data/archive/${y}/${m}/f`);
    for (const k of keys) listing.put(k, 'e', 1);
    // Act
    const shards = await planScope(listing, 'data/', 8);
    // Assess
    expect(shards.length).toBe(8);
    for (const k of keys) expect(shards.filter((s) => inRange(s, k)).length).toBe(1);
  });
});
