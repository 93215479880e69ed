/**
 * The process-wide metadata cache (one per execution environment). The query Lambda reads it; the
 * indexer invalidates it — in AWS they are different processes and meet in Redis, locally (one
 * process) they also share the in-process level, so a local overwrite is never served stale.
 */

import { bumpCacheEpoch, cacheEpochReader } from '../../adapters/pg/cache-epoch.ts';
import type { Queryable } from '../../adapters/pg/pool.ts';
import type { RedisGuard } from '../../adapters/redis/client.ts';
import { MetadataCache } from '../../adapters/redis/metadata-cache.ts';
import { config } from '../../config.ts';
import type { ResolveResponse } from '../../core/api-types.ts';

export type ResolveCacheValue = Omit<ResolveResponse, 'url' | 'urlExpiresAt'>;
export type ListCacheValue = { entries: unknown[]; nextCursor?: string };

/**
 * In-process resolve answers kept per environment. An LRU smaller than the set of paths a client
 * walks in order (a mount stat-ing a 10,000-file directory) misses on every lookup, so it is sized
 * well above common directory sizes: 50,000 answers of ~0.5 KiB ≈ 25 MiB of a 512 MiB+ Lambda.
 */
const MAX_LOCAL_RESOLVE = 50_000;

let cache: MetadataCache<ResolveCacheValue, ListCacheValue> | undefined;
let boundTo: RedisGuard | undefined;
let boundDb: Queryable | undefined;

/**
 * The cache bound to `redis`. `namespace` is the deployment's Redis key namespace (config
 * `cacheNamespace`); callers without a config at hand get the process config's. `db` is the index
 * database, home of the cache epoch that makes an invalidation lost while Redis was unreachable
 * safe (adapters/pg/cache-epoch.ts); every handler passes it. Any connection to the same database
 * reads the same epoch, so the first one given is kept.
 */
export function metadataCache(
  redis: RedisGuard,
  localTtlMs: number,
  namespace?: string,
  db?: Queryable,
): MetadataCache<ResolveCacheValue, ListCacheValue> {
  if (
    !cache ||
    boundTo !== redis ||
    (namespace !== undefined && cache.namespace !== namespace) ||
    (db !== undefined && boundDb === undefined)
  ) {
    cache = new MetadataCache(redis, {
      localTtlMs,
      namespace: namespace ?? config().cacheNamespace,
      maxResolve: MAX_LOCAL_RESOLVE,
      ...(db ? { epoch: cacheEpochReader(db), onUndelivered: () => bumpCacheEpoch(db) } : {}),
    });
    boundTo = redis;
    boundDb = db;
  }
  return cache;
}

export function resetMetadataCache(): void {
  cache = undefined;
  boundTo = undefined;
  boundDb = undefined;
}
