/**
 * The two-level metadata cache for resolve answers and list pages.
 *
 * Level 1 is an in-process LRU with a short TTL (config STRATA_CACHE_TTL_MS, 1 s): it cannot be
 * invalidated from another Lambda, so its TTL is the bound on staleness after an overwrite.
 * Level 2 is Redis (Upstash), shared by every Lambda and invalidated by the indexer after each
 * batch commits; its TTL (60 s) is only a safety net for invalidations lost while Redis was down.
 * Negative answers (path not found) are cached too: a new upload invalidates them.
 *
 * Invalidation races: a reader that missed, read PostgreSQL and then wrote its answer could put
 * back a value the indexer invalidated in between. So every invalidated key gets a new random
 * generation (`strata:<ns>:g:<path>`, `g:l:<dir>` for list hashes); entries are stored with the
 * generation their reader saw before the database read (CacheTicket) and readers ignore entries of
 * any other generation. Callers that must see a known change (the mount, after the change journal
 * reported it: `minSeq`) bypass both levels, since the invalidation itself trails the journal.
 *
 * Lost invalidations: with Redis down, the indexer's DEL and generation bump never arrive, and a
 * Redis that keeps its data (Upstash does) would serve entries written before the outage once it is
 * back. So with an `epoch` source (adapters/pg/cache-epoch.ts) every Redis entry also carries the
 * epoch its reader saw, readers ignore other epochs, and an invalidation that could not be
 * delivered calls `onUndelivered`, which advances the epoch in PostgreSQL.
 *
 * Redis failures never fail a request: RedisGuard logs and counts them and the caller reads
 * PostgreSQL. Keys: `strata:<ns>:r:<path>` (string) and `strata:<ns>:l:<dir>` (hash: page key →
 * page), so one DEL drops every cached page of a directory. `<ns>` is the deployment's namespace
 * (config STRATA_CACHE_NAMESPACE): deployments sharing one Redis database never see each other's keys.
 */
import { randomBytes } from 'node:crypto';
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
  /**
   * Cached pages per directory (both levels). A listing is read with one page size, so 64 pages
   * hold 64,000 entries of one directory; more than that is a client varying cursor/limit.
   */
  maxPagesPerDir?: number;
  /**
   * The current cache epoch (kept in PostgreSQL), or undefined when it cannot be read: Redis is
   * then neither read nor written. Without it entries carry no epoch (tests, tools).
   */
  epoch?: () => Promise<string | undefined>;
  /** Called when an invalidation did not reach Redis; must make every older entry unservable. */
  onUndelivered?: () => Promise<void>;
  /** Test hook: runs between a database read and the cache write (reproduces the race). */
  beforeWrite?: (key: string) => Promise<void> | void;
}

/**
 * What a reader saw before going to PostgreSQL: the in-process invalidation counter and the Redis
 * generation of the key (undefined = none). setResolve/setList use it so an invalidation that ran
 * meanwhile is never undone.
 */
export interface CacheTicket {
  local: number;
  gen: string | undefined;
  /** Cache epoch seen before the read; null = unknown (skip Redis). Absent without an epoch source. */
  epoch?: string | null;
}

/** Generation of a key never invalidated (or whose generation expired). */
const NO_GEN = '0';
/** Generation keys of list hashes: `g:l:<dir>` (paths start with `/`, so no clash with `g:<path>`). */
const LIST_GEN = 'l:';

function genOf(raw: unknown): string | undefined {
  return typeof raw === 'string' ? raw : undefined;
}

/** A stored `{g, e?, value}` if it was written under the current generation and epoch, else undefined. */
function parseEntry<T>(
  raw: unknown,
  gen: string | undefined,
  epoch: string | null | undefined,
): T | undefined {
  if (typeof raw !== 'string') return undefined;
  const e = JSON.parse(raw) as { g?: string; e?: string } & T;
  return e.g === (gen ?? NO_GEN) && e.e === (epoch ?? undefined) ? e : undefined;
}

/** A cached value: the answer, or null for "not found". */
export type Cached<T> = { value: T | null } | undefined;

/** Redis key prefixes for one namespace. */
export function cacheKeys(namespace: string): { resolve: string; list: string; gen: string; peers: string } {
  const base = `strata:${namespace}:`;
  return { resolve: `${base}r:`, list: `${base}l:`, gen: `${base}g:`, peers: `${base}peers` };
}

export class MetadataCache<TResolve extends object, TList extends object> {
  private readonly resolveLocal: LRUCache<string, { value: TResolve | null }>;
  private readonly listLocal: LRUCache<string, Map<string, TList>>;
  private readonly redisTtl: number;
  private readonly R: string;
  private readonly L: string;
  private readonly G: string;
  /**
   * Generation keys outlive every entry stamped before them: an entry is written at most one
   * statement timeout after its ticket was read and lives redisTtl, so 2 × redisTtl + 60 s keeps
   * an expired generation from matching a stale entry again.
   */
  private readonly genTtl: number;
  private readonly maxPagesPerDir: number;
  private readonly beforeWrite?: (key: string) => Promise<void> | void;
  private readonly epoch?: () => Promise<string | undefined>;
  private readonly onUndelivered?: () => Promise<void>;
  /** Bumped by every invalidation in this process; a local write after one is skipped. */
  private localGen = 0;
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
    this.G = keys.gen;
    this.genTtl = 2 * this.redisTtl + 60;
    this.maxPagesPerDir = options.maxPagesPerDir ?? 64;
    this.beforeWrite = options.beforeWrite;
    this.epoch = options.epoch;
    this.onUndelivered = options.onUndelivered;
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

  /**
   * A cached resolve answer, and the ticket a miss must hand back to setResolve. One round trip:
   * the entry and the path's generation are read together, and an entry stored under another
   * generation (written by a reader that raced an invalidation) counts as a miss.
   */
  async readResolve(path: string): Promise<{ cached: Cached<TResolve>; ticket: CacheTicket }> {
    const ticket: CacheTicket = { local: this.localGen, gen: undefined };
    const local = this.resolveLocal.get(path);
    if (local) {
      this.stats.localHits++;
      return { cached: local, ticket };
    }
    if (this.epoch) ticket.epoch = (await this.epoch()) ?? null;
    const raw =
      ticket.epoch === null
        ? undefined
        : await this.redis.run('mget', (r) => r.mget<(string | null)[]>(this.R + path, this.G + path));
    if (raw) {
      ticket.gen = genOf(raw[1]);
      const entry = parseEntry<{ value: TResolve | null }>(raw[0], ticket.gen, ticket.epoch);
      if (entry) {
        // Only if nothing was invalidated in this process meanwhile.
        if (ticket.local === this.localGen) this.resolveLocal.set(path, { value: entry.value });
        this.stats.redisHits++;
        return { cached: { value: entry.value }, ticket };
      }
    }
    this.stats.misses++;
    return { cached: undefined, ticket };
  }

  async getResolve(path: string): Promise<Cached<TResolve>> {
    return (await this.readResolve(path)).cached;
  }

  /**
   * Stores an answer read from PostgreSQL. With the ticket of the miss, an invalidation that ran
   * between the database read and this write wins: the local level skips the write and the Redis
   * entry is stamped with the generation seen before the read, which readers then ignore.
   */
  async setResolve(path: string, value: TResolve | null, ticket?: CacheTicket): Promise<void> {
    const t = ticket ?? (await this.freshTicket(this.G + path));
    if (t.local === this.localGen) this.resolveLocal.set(path, { value });
    await this.beforeWrite?.(path);
    if (t.epoch === null) return;
    const entry = JSON.stringify({ g: t.gen ?? NO_GEN, e: t.epoch, value });
    await this.redis.run('set', (r) => r.set(this.R + path, entry, { ex: this.redisTtl }));
  }

  async readList(dir: string, page: string): Promise<{ cached: TList | undefined; ticket: CacheTicket }> {
    const ticket: CacheTicket = { local: this.localGen, gen: undefined };
    const local = this.listLocal.get(dir)?.get(page);
    if (local) {
      this.stats.localHits++;
      return { cached: local, ticket };
    }
    if (this.epoch) ticket.epoch = (await this.epoch()) ?? null;
    const raw =
      ticket.epoch === null
        ? undefined
        : await this.redis.run('hget', async (r) => {
            const p = r.pipeline();
            p.hget(this.L + dir, page);
            p.get(this.G + LIST_GEN + dir);
            return p.exec<[string | null, string | null]>();
          });
    if (raw) {
      ticket.gen = genOf(raw[1]);
      const entry = parseEntry<{ value: TList }>(raw[0], ticket.gen, ticket.epoch);
      if (entry) {
        if (ticket.local === this.localGen) this.rememberList(dir, page, entry.value);
        this.stats.redisHits++;
        return { cached: entry.value, ticket };
      }
    }
    this.stats.misses++;
    return { cached: undefined, ticket };
  }

  async getList(dir: string, page: string): Promise<TList | undefined> {
    return (await this.readList(dir, page)).cached;
  }

  /**
   * Stores a list page (same generation rule as setResolve). A directory's hash holds at most
   * `maxPagesPerDir` pages: page keys come from the client (cursor, limit), so without the cap one
   * caller could grow a hash without bound; past the cap the hash is dropped and starts over. The
   * expiry is set only when the hash is created, so repeated writes cannot keep it alive forever.
   */
  async setList(dir: string, page: string, value: TList, ticket?: CacheTicket): Promise<void> {
    const t = ticket ?? (await this.freshTicket(this.G + LIST_GEN + dir));
    if (t.local === this.localGen) this.rememberList(dir, page, value);
    await this.beforeWrite?.(dir);
    if (t.epoch === null) return;
    const entry = JSON.stringify({ g: t.gen ?? NO_GEN, e: t.epoch, value });
    const res = await this.redis.run('hset', async (r) => {
      const p = r.pipeline();
      p.hset(this.L + dir, { [page]: entry });
      p.expire(this.L + dir, this.redisTtl, 'NX');
      p.hlen(this.L + dir);
      return p.exec<[number, number, number]>();
    });
    if (res && res[2] > this.maxPagesPerDir) await this.redis.run('del', (r) => r.del(this.L + dir));
  }

  private rememberList(dir: string, page: string, value: TList): void {
    let pages = this.listLocal.get(dir);
    if (!pages) {
      pages = new Map();
      this.listLocal.set(dir, pages);
    }
    if (!pages.has(page) && pages.size >= this.maxPagesPerDir) pages.clear();
    pages.set(page, value);
  }

  private async freshTicket(genKey: string): Promise<CacheTicket> {
    const local = this.localGen;
    const epoch = this.epoch ? ((await this.epoch()) ?? null) : undefined;
    const raw = await this.redis.run('get', (r) => r.get<string>(genKey));
    return { local, gen: genOf(raw ?? null), ...(this.epoch ? { epoch } : {}) };
  }

  /**
   * Drops resolve answers of `paths` and every list page of `dirs`, in both levels, and gives each
   * a new generation, so a reader that fetched from PostgreSQL before this call cannot put its
   * answer back (see setResolve). When any part does not reach Redis (down, or its breaker open),
   * `onUndelivered` runs so entries written before cannot be served once Redis is back.
   */
  async invalidate(paths: string[], dirs: string[]): Promise<void> {
    this.localGen++;
    for (const p of paths) this.resolveLocal.delete(p);
    for (const d of dirs) {
      this.listLocal.delete(d);
      this.resolveLocal.delete(d);
    }
    const gen = randomBytes(9).toString('base64url');
    const genKeys = [...new Set([...paths, ...dirs])].map((p) => this.G + p);
    for (const d of dirs) genKeys.push(this.G + LIST_GEN + d);
    const keys = [
      ...paths.map((p) => this.R + p),
      ...dirs.map((d) => this.R + d),
      ...dirs.map((d) => this.L + d),
    ];
    // Chunked so a 100-event batch with deep paths stays one small request per chunk. Generations
    // first: once they are bumped, any entry written by a racing reader is already ignored.
    // No Redis configured: nothing to deliver. Otherwise `run` answers undefined exactly when the
    // command did not reach Redis (it failed, or the breaker skipped it).
    if (!this.redis.redis) return;
    let delivered = true;
    for (let i = 0; i < genKeys.length; i += 500) {
      const chunk = genKeys.slice(i, i + 500);
      const res = await this.redis.run('set', async (r) => {
        const p = r.pipeline();
        for (const k of chunk) p.set(k, gen, { ex: this.genTtl });
        return p.exec();
      });
      if (res === undefined) delivered = false;
    }
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const res = await this.redis.run('del', (r) => r.del(...chunk));
      if (res === undefined) delivered = false;
    }
    if (!delivered) await this.onUndelivered?.();
  }

  clearLocal(): void {
    this.localGen++;
    this.resolveLocal.clear();
    this.listLocal.clear();
  }
}
