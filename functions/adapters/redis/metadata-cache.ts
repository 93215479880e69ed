/**
 * The two-level metadata cache for resolve answers and list pages.
 *
 * Level 1 is an in-process LRU with a short TTL (config STRATA_CACHE_TTL_MS, 1 s): it cannot be
 * invalidated from another Lambda, so its TTL is the bound on staleness after an overwrite.
 * Level 2 is Redis (Upstash), shared by every Lambda and invalidated by the indexer after each
 * batch commits; its TTL (60 s) is only a safety net for invalidations lost while Redis was down.
 * Negative answers (path not found) are cached too: a new upload invalidates them.
 *
 * Redis failures never fail a request: RedisGuard logs and counts them and the caller reads
 * PostgreSQL. Keys: `strata:<ns>:r:<path>` (string) and `strata:<ns>:l:<dir>` (hash: page key →
 * page), so one DEL drops every cached page of a directory. `<ns>` is the deployment's namespace
 * (config STRATA_CACHE_NAMESPACE): deployments sharing one Redis database never see each other's keys.
 */
import { LRUCache } from 'lru-cache';
import type { RedisGuard } from './client.ts';

export interface MetadataCacheOptions {
  /** In-process TTL; bounds staleness across Lambdas. */
  localTtlMs?: number;
  /** Redis TTL; a safety net only (the indexer invalidates). */
  redisTtlSeconds?: number;
  /** In-process entries: resolve answers are ~0.5 KiB, list pages up to ~200 KiB. */
  maxResolve?: number;
  maxListDirs?: number;
  /** Per-deployment key namespace (config `cacheNamespace`). */
  namespace?: string;
}

/** A cached value: the answer, or null for "not found". */
export type Cached<T> = { value: T | null } | undefined;

/** Redis key prefixes for one namespace. */
export function cacheKeys(namespace: string): { resolve: string; list: string; peers: string } {
  const base = `strata:${namespace}:`;
  return { resolve: `${base}r:`, list: `${base}l:`, peers: `${base}peers` };
}

export class MetadataCache<TResolve extends object, TList extends object> {
  private readonly resolveLocal: LRUCache<string, { value: TResolve | null }>;
  private readonly listLocal: LRUCache<string, Map<string, TList>>;
  private readonly redisTtl: number;
  private readonly R: string;
  private readonly L: string;
  readonly namespace: string;
  stats = { localHits: 0, redisHits: 0, misses: 0 };

  constructor(
    private readonly redis: RedisGuard,
    options: MetadataCacheOptions = {},
  ) {
    const ttl = options.localTtlMs ?? 1000;
    this.redisTtl = options.redisTtlSeconds ?? 60;
    this.namespace = options.namespace ?? 'default';
    const keys = cacheKeys(this.namespace);
    this.R = keys.resolve;
    this.L = keys.list;
    // ttl 0 disables the local level entirely (lru-cache treats 0 as "no TTL").
    this.resolveLocal = new LRUCache({
      max: options.maxResolve ?? 10_000,
      ttl: Math.max(ttl, 1),
      ttlAutopurge: false,
    });
    this.listLocal = new LRUCache({
      max: options.maxListDirs ?? 200,
      ttl: Math.max(ttl, 1),
      ttlAutopurge: false,
    });
    if (ttl === 0) {
      this.resolveLocal = new LRUCache({ max: 1, ttl: 1 });
      this.listLocal = new LRUCache({ max: 1, ttl: 1 });
    }
  }

  async getResolve(path: string): Promise<Cached<TResolve>> {
    const local = this.resolveLocal.get(path);
    if (local) {
      this.stats.localHits++;
      return local;
    }
    const raw = await this.redis.run('get', (r) => r.get<string>(this.R + path));
    if (typeof raw === 'string') {
      const entry = JSON.parse(raw) as { value: TResolve | null };
      this.resolveLocal.set(path, entry);
      this.stats.redisHits++;
      return entry;
    }
    this.stats.misses++;
    return undefined;
  }

  async setResolve(path: string, value: TResolve | null): Promise<void> {
    const entry = { value };
    this.resolveLocal.set(path, entry);
    await this.redis.run('set', (r) => r.set(this.R + path, JSON.stringify(entry), { ex: this.redisTtl }));
  }

  async getList(dir: string, page: string): Promise<TList | undefined> {
    const local = this.listLocal.get(dir)?.get(page);
    if (local) {
      this.stats.localHits++;
      return local;
    }
    const raw = await this.redis.run('hget', (r) => r.hget<string>(this.L + dir, page));
    if (typeof raw === 'string') {
      const value = JSON.parse(raw) as TList;
      this.rememberList(dir, page, value);
      this.stats.redisHits++;
      return value;
    }
    this.stats.misses++;
    return undefined;
  }

  async setList(dir: string, page: string, value: TList): Promise<void> {
    this.rememberList(dir, page, value);
    await this.redis.run('hset', async (r) => {
      const p = r.pipeline();
      p.hset(this.L + dir, { [page]: JSON.stringify(value) });
      p.expire(this.L + dir, this.redisTtl);
      return p.exec();
    });
  }

  private rememberList(dir: string, page: string, value: TList): void {
    let pages = this.listLocal.get(dir);
    if (!pages) {
      pages = new Map();
      this.listLocal.set(dir, pages);
    }
    pages.set(page, value);
  }

  /** Drops resolve answers of `paths` and every list page of `dirs`, in both levels. */
  async invalidate(paths: string[], dirs: string[]): Promise<void> {
    for (const p of paths) this.resolveLocal.delete(p);
    for (const d of dirs) {
      this.listLocal.delete(d);
      this.resolveLocal.delete(d);
    }
    const keys = [
      ...paths.map((p) => this.R + p),
      ...dirs.map((d) => this.R + d),
      ...dirs.map((d) => this.L + d),
    ];
    // Chunked so a 100-event batch with deep paths stays one small request per chunk.
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      await this.redis.run('del', (r) => r.del(...chunk));
    }
  }

  clearLocal(): void {
    this.resolveLocal.clear();
    this.listLocal.clear();
  }
}
