/**
 * The cache epoch bump (9d415ba) is the only thing that keeps a pre-outage Redis entry from being
 * served after an invalidation Redis never got, and it runs after the index committed: when it
 * failed, the batch failed and its retry found every change applied (stale), so nothing bumped
 * or invalidated again. One dead pooled connection (57P01 after a PostgreSQL restart or failover)
 * must not decide that: the bump is retried on connection loss. Real PostgreSQL; Redis is a client
 * that always fails; the dead connection is one injected error.
 */
import type { Redis } from '@upstash/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bumpCacheEpoch, cacheEpochReader } from '../../../functions/adapters/pg/cache-epoch.ts';
import type { Pool } from '../../../functions/adapters/pg/pool.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { MetadataCache } from '../../../functions/adapters/redis/metadata-cache.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

let db: TestDb;

beforeAll(async () => {
  db = await startTestDb();
}, 60_000);

afterAll(async () => {
  await db?.stop();
});

/** The pool, except that the next `n` epoch bumps fail as on a connection PostgreSQL terminated. */
function deadConnections(pool: Pool, n: number): Pool {
  let left = n;
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') {
        return (text: unknown, ...rest: unknown[]) => {
          if (left > 0 && typeof text === 'string' && text.includes('nextval')) {
            left--;
            const err = Object.assign(new Error('terminating connection due to administrator command'), {
              code: '57P01',
            });
            return Promise.reject(err);
          }
          return (target.query as (...a: unknown[]) => unknown)(text, ...rest);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** A Redis whose every command fails, as one that is down or unreachable. */
const downRedis = new Proxy(
  {},
  {
    get: () => () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    },
  },
) as Redis;

describe('an invalidation Redis did not get', () => {
  it('advances the epoch even when the first bump meets a dead connection', async () => {
    // Prepare: a cache whose Redis is down and whose pool hands out one dead connection
    const readEpoch = cacheEpochReader(db.pool, 0);
    const before = await readEpoch();
    const flaky = deadConnections(db.pool, 1);
    const cache = new MetadataCache(new RedisGuard(downRedis), {
      localTtlMs: 0,
      namespace: 'review-epoch',
      epoch: cacheEpochReader(flaky, 0),
      onUndelivered: () => bumpCacheEpoch(flaky),
    });

    // Act
    await cache.invalidate(['/a/x'], ['/a']);

    // Assess: the epoch moved, so every entry written before the outage is a miss
    const after = await readEpoch();
    expect(before).toBeDefined();
    expect(Number(after)).toBeGreaterThan(Number(before));
  });

  it('does not retry or swallow a bump refused for another reason', async () => {
    const cache = new MetadataCache(new RedisGuard(downRedis), {
      localTtlMs: 0,
      namespace: 'review-epoch',
      onUndelivered: () =>
        bumpCacheEpoch({ query: () => Promise.reject(new Error('permission denied')) } as never),
    });
    await expect(cache.invalidate(['/a/x'], ['/a'])).rejects.toThrow('permission denied');
  });
});
