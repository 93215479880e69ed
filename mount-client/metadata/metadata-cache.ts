/**
 * Metadata cache of the mount client (design.md §6).
 *
 * Two LRUs: `entries` maps a path to its Node or to a negative entry (the path is known not to
 * exist), and `dirs` holds complete directory listings. A complete listing answers lookups of its
 * children — present or absent — without an API call, so `ls -l` after `readdir` costs nothing
 * and a miss on a name inside a listed directory is a free negative.
 *
 * Nothing expires by time. Entries stay until the change poller (change-poller.ts) reports a change
 * under them or the LRU evicts them, so staleness is bounded by the poll interval (~1 s) instead
 * of a guessed TTL. An `epoch` bumped by every invalidation, and the epoch at which each path was
 * last invalidated, keep a lookup or listing that was in flight during a change to it from storing
 * its (possibly stale) answer — a change elsewhere in the tree does not discard it (see unchanged).
 */
import { LRUCache } from 'lru-cache';
import pLimit from 'p-limit';
import { NotFoundError } from '../../functions/core/errors.ts';
import { ancestorsOf, baseName, joinPath, parentOf } from '../../functions/core/paths.ts';
import type { IndexApi } from './index-api.ts';
import { type Node, nodeFromEntry } from './node.ts';
import { Singleflight } from './singleflight.ts';

export interface MetadataCacheOptions {
  /**
   * Paths remembered individually (positive and negative). 200,000 nodes is roughly 60–80 MB of
   * heap, enough for the working set of a busy compute node, small next to its page cache.
   */
  maxEntries?: number;
  /**
   * Total entries across cached directory listings. 1,000,000 covers a handful of very large
   * directories (~300 MB worst case) — a listing is only useful when it is complete.
   */
  maxListedEntries?: number;
  /** /v1/list page size: 1000 keeps each response well under API Gateway's limits. */
  pageSize?: number;
  /**
   * After listing a directory, list up to this many of its subdirectories in the background (0 =
   * off, the default here so API-call counts stay exact; the mount turns it on). Tree walkers
   * (`find`, `ls -R`, `du`) descend into every subdirectory next, one readdir at a time, so the
   * API round trips overlap the kernel's walk instead of adding up.
   */
  listAheadDirs?: number;
}

const NEGATIVE = Symbol('negative');
type Cached = Node | typeof NEGATIVE;

interface Listing {
  nodes: Node[];
  byName: Map<string, Node>;
  /** Index below which every subdirectory is listed or being listed ahead (a sliding window). */
  aheadFrom?: number;
}

/**
 * Adds a listed child to a listing being built. S3 can hold a key `a` and keys under `a/` at once
 * (written straight to the bucket; the upload API refuses it with 409 path_conflict), and the
 * index then lists a file and a directory with one name. A directory cannot hold two entries of
 * one name, so the directory wins and the file is not reachable through the mount (what
 * Mountpoint does; `strata cat` still reads it) — instead of `ls` showing the name twice with
 * both rows answering for the directory. The two may arrive on different list pages.
 */
function addChild(listing: Listing, name: string, node: Node): void {
  const seen = listing.byName.get(name);
  if (seen === undefined) {
    listing.nodes.push(node);
    listing.byName.set(name, node);
  } else if (seen.type === 'file' && node.type === 'dir') {
    listing.nodes[listing.nodes.indexOf(seen)] = node;
    listing.byName.set(name, node);
  }
}

/** The node of a directory known only by its path (no listing or rollup fetched for it). */
function dirNode(path: string): Node {
  return { path, type: 'dir', size: 0, mtimeMs: 0 };
}

export interface MetadataStats {
  entries: number;
  /** Of `entries`, how many are negative (known-absent paths). */
  negative: number;
  listings: number;
  /** Sizes of the bounded side maps and in-flight maps: a long-running mount's /stats shows them flat. */
  freshAfter: number;
  largeDirs: number;
  inflight: number;
  apiResolves: number;
  apiListPages: number;
  invalidations: number;
}

export class MetadataCache {
  private readonly entries: LRUCache<string, Cached>;
  private readonly dirs: LRUCache<string, Listing>;
  private readonly lookups = new Singleflight<Node>();
  private readonly listings = new Singleflight<Listing>();
  private readonly pageSize: number;
  private epoch = 0;
  /**
   * Paths changed at a journal sequence whose fresh answer is not cached yet: their next resolve
   * or list passes `minSeq`, so the server answers from PostgreSQL instead of a cache that may not
   * have seen the change yet (its invalidation can trail the journal). Otherwise the stale answer
   * would be cached here with no TTL. 100,000 marks (a few MB) outlast any poll's backlog.
   */
  private readonly freshAfter = new LRUCache<string, number>({ max: 100_000 });
  private readonly counters = { apiResolves: 0, apiListPages: 0, invalidations: 0 };
  /** Bucket and key prefix learned from the first resolve, so listed files can be opened directly. */
  private location?: { bucket: string; keyPrefix: string };

  constructor(
    private readonly api: IndexApi,
    options: MetadataCacheOptions = {},
  ) {
    this.entries = new LRUCache({ max: options.maxEntries ?? 200_000 });
    this.dirs = new LRUCache({
      maxSize: options.maxListedEntries ?? 1_000_000,
      sizeCalculation: (l) => Math.max(1, l.nodes.length),
    });
    this.pageSize = options.pageSize ?? 1000;
    this.listAheadDirs = options.listAheadDirs ?? 0;
  }

  private readonly listAheadDirs: number;
  /**
   * At most 4 background listings at once: enough to hide API latency behind a tree walk, few
   * enough that a `ls` of a directory with thousands of subdirectories does not flood the API.
   */
  private readonly listAhead = pLimit(4);

  /** The node at `path`; throws NotFoundError (cached as a negative entry) when there is none. */
  async stat(path: string): Promise<Node> {
    if (path === '/') return this.rootNode();
    const cached = this.entries.get(path);
    if (cached === NEGATIVE) throw new NotFoundError(`no such file or directory: ${path}`);
    if (cached) return cached;
    const parent = parentOf(path);
    const listing = this.dirs.get(parent) ?? (await this.smallListing(parent));
    if (listing) {
      const node = listing.byName.get(baseName(path));
      if (node) return node;
      throw new NotFoundError(`no such file or directory: ${path}`);
    }
    return this.lookups.do(path, () => this.lookup(path));
  }

  /**
   * Directories known to need more than one list page: a lookup in them resolves the one path.
   * Without this a stat of every file in a directory of thousands would pay a page per miss.
   */
  private readonly largeDirs = new LRUCache<string, true>({ max: 10_000 });
  private readonly firstPages = new Singleflight<Listing | undefined>();

  /**
   * A lookup in a directory whose listing is not cached fetches the directory's first list page
   * instead of resolving the one path: `stat` of every file of a tree (ls -lR, rsync, make) then
   * costs one API call per directory, not one per file. A directory that needs more pages is
   * remembered as large and its lookups go back to per-path resolves; any failure falls back too.
   */
  private async smallListing(dir: string): Promise<Listing | undefined> {
    if (this.largeDirs.has(dir)) return undefined;
    return this.firstPages
      .do(dir, async () => {
        const epoch = this.epoch;
        const minSeq = this.freshAfter.get(dir);
        this.counters.apiListPages++;
        const page = await this.api.list(
          dir,
          undefined,
          this.pageSize,
          minSeq !== undefined ? { minSeq } : undefined,
        );
        if (page.nextCursor) {
          this.largeDirs.set(dir, true);
          return undefined;
        }
        const listing: Listing = { nodes: [], byName: new Map() };
        for (const e of page.entries) addChild(listing, e.name, nodeFromEntry(e, joinPath(dir, e.name)));
        if (this.unchanged(dir, epoch)) {
          this.dirs.set(dir, listing);
          this.freshAfter.delete(dir);
        }
        return listing;
      })
      .catch(() => undefined);
  }

  /**
   * stat() answered from memory only, for the FUSE fast path (getattr/lookup/getxattr of entries
   * in a listed directory, which `find` and `ls -lR` issue by the thousand): the node, `null` for a
   * known-absent path, `undefined` when only the API can tell.
   */
  statNow(path: string): Node | null | undefined {
    if (path === '/') return this.rootNode();
    const cached = this.entries.get(path);
    if (cached === NEGATIVE) return null;
    if (cached) return cached;
    const listing = this.dirs.get(parentOf(path));
    if (listing) return listing.byName.get(baseName(path)) ?? null;
    return undefined;
  }

  /** All children of a directory, paging through /v1/list once and caching the listing. */
  async readdir(path: string): Promise<Node[]> {
    // A walker moving on to the next sibling slides the list-ahead window over the siblings: without
    // this only the first listAheadDirs subdirectories of a directory were ever listed ahead, and
    // `find` fetched the rest one round trip at a time (36 of 100 in the bench tree).
    if (path !== '/') {
      const parent = this.dirs.get(parentOf(path));
      if (parent) this.listSubdirsAhead(parent);
    }
    const cached = this.dirs.get(path);
    if (cached) {
      // A walker reached a directory listed ahead: keep the next level one step ahead of it.
      this.listSubdirsAhead(cached);
      return cached.nodes;
    }
    const listing = await this.listings.do(path, () => this.list(path));
    return listing.nodes;
  }

  /**
   * A fresh resolve for open(): files are opened at their current version, and the answer is
   * cached like any other lookup. With `presign` the answer carries a GET URL.
   */
  async resolveFile(path: string, presign: boolean): Promise<Node & { url?: string; urlExpiresAt?: number }> {
    const epoch = this.epoch;
    const minSeq = this.freshAfter.get(path);
    this.counters.apiResolves++;
    try {
      const r = await this.api.resolve(path, { presign, ...(minSeq !== undefined ? { minSeq } : {}) });
      const node = nodeFromEntry(r, path);
      this.learnLocation(path, r.bucket, r.key);
      // The caller reads the file, but the mount keeps showing a file that is also a directory as
      // the directory (lookup, addChild): caching the file here would flip the path's getattr.
      if (this.unchanged(path, epoch)) this.store(path, r.alsoDirectory ? dirNode(path) : node);
      const expires = r.urlExpiresAt ? Date.parse(r.urlExpiresAt) : undefined;
      return { ...node, ...(r.url ? { url: r.url } : {}), ...(expires ? { urlExpiresAt: expires } : {}) };
    } catch (err) {
      if (err instanceof NotFoundError && this.unchanged(path, epoch)) this.entries.set(path, NEGATIVE);
      throw err;
    }
  }

  /** Where a listed file's bytes live, derived from a previously learned bucket and prefix. */
  locate(node: Node): { bucket: string; key: string } | undefined {
    if (node.bucket && node.key) return { bucket: node.bucket, key: node.key };
    if (!this.location) return undefined;
    return { bucket: this.location.bucket, key: this.location.keyPrefix + node.path.slice(1) };
  }

  /** The path of a key under the learned data prefix (re-signing URLs needs it). */
  pathOf(key: string): string | undefined {
    if (!this.location || !key.startsWith(this.location.keyPrefix)) return undefined;
    return `/${key.slice(this.location.keyPrefix.length)}`;
  }

  /**
   * A path changed (put, delete or drift) at journal sequence `seq`: forget it, its listing and
   * every ancestor's, and ask for answers at least that new when they are next fetched.
   */
  invalidate(path: string, seq?: number): void {
    const epoch = ++this.epoch;
    this.counters.invalidations++;
    this.entries.delete(path);
    this.dirs.delete(path);
    this.markFresh(path, seq);
    this.changedAt.set(path, epoch);
    for (const dir of ancestorsOf(path)) {
      this.entries.delete(dir);
      this.dirs.delete(dir);
      this.markFresh(dir, seq);
      this.changedAt.set(dir, epoch);
    }
  }

  /**
   * Whether nothing at or under `path` changed since `epoch` (taken when its fetch started), so
   * the answer may be cached. Per path, not global: under a steady stream of changes elsewhere
   * (a producer writing every second) a listing of a large directory takes longer than the gap
   * between changes, and a global check discarded every listing of it — each readdir paged the
   * whole directory again and each stat in it cost an API call (found by bench/mount/soak.ts).
   */
  private unchanged(path: string, epoch: number): boolean {
    return epoch >= this.floor && (this.changedAt.get(path) ?? -1) <= epoch;
  }

  /**
   * Epoch of each path's last invalidation (it and its ancestors). 100,000 paths outlast any
   * fetch in flight; a path evicted from here raises `floor` to its epoch instead, so a fetch
   * older than a forgotten change is still discarded (never cached stale).
   */
  private readonly changedAt = new LRUCache<string, number>({
    max: 100_000,
    dispose: (epoch, _path, reason) => {
      if (reason === 'evict') this.floor = Math.max(this.floor, epoch);
    },
  });
  /** Fetches that started before this epoch are discarded (clear(), evicted changedAt entries). */
  private floor = 0;

  private markFresh(path: string, seq: number | undefined): void {
    if (seq === undefined) return;
    this.freshAfter.set(path, Math.max(seq, this.freshAfter.get(path) ?? 0));
  }

  /** Caches a fetched node; its fresh answer is now here, so no minSeq is needed any more. */
  private store(path: string, value: Cached): void {
    this.entries.set(path, value);
    this.freshAfter.delete(path);
  }

  /** Forget everything (the change feed could not be followed, e.g. after a long outage). */
  clear(): void {
    this.floor = ++this.epoch;
    this.changedAt.clear();
    this.freshAfter.clear();
    this.entries.clear();
    this.dirs.clear();
  }

  stats(): MetadataStats {
    let negative = 0;
    for (const v of this.entries.values()) if (v === NEGATIVE) negative++;
    return {
      entries: this.entries.size,
      negative,
      listings: this.dirs.size,
      freshAfter: this.freshAfter.size,
      largeDirs: this.largeDirs.size,
      inflight: this.lookups.size + this.listings.size + this.firstPages.size + this.aheadQueued.size,
      ...this.counters,
    };
  }

  private rootNode(): Node {
    return { path: '/', type: 'dir', size: 0, mtimeMs: 0 };
  }

  private async lookup(path: string): Promise<Node> {
    const epoch = this.epoch;
    try {
      this.counters.apiResolves++;
      const minSeq = this.freshAfter.get(path);
      const r = await this.api.resolve(path, minSeq !== undefined ? { minSeq } : undefined);
      if (r.type === 'file') this.learnLocation(path, r.bucket, r.key);
      // A file that is also a directory is the directory, as in a listing (addChild).
      const node: Node = r.alsoDirectory ? dirNode(path) : nodeFromEntry(r, path);
      if (this.unchanged(path, epoch)) this.store(path, node);
      return node;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      // Some resolvers answer for files only: a path with children is still a directory.
      const dir = await this.probeDirectory(path);
      if (this.unchanged(path, epoch)) this.store(path, dir ?? NEGATIVE);
      if (dir) return dir;
      throw err;
    }
  }

  private async probeDirectory(path: string): Promise<Node | undefined> {
    try {
      this.counters.apiListPages++;
      const minSeq = this.freshAfter.get(path);
      const page = await this.api.list(path, undefined, 1, minSeq !== undefined ? { minSeq } : undefined);
      if (page.entries.length === 0) return undefined;
      return { path, type: 'dir', size: 0, mtimeMs: 0 };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  private async list(path: string, listAhead = true): Promise<Listing> {
    const epoch = this.epoch;
    const listing: Listing = { nodes: [], byName: new Map() };
    let cursor: string | undefined;
    const minSeq = this.freshAfter.get(path);
    const options = minSeq !== undefined ? { minSeq } : undefined;
    do {
      this.counters.apiListPages++;
      const page = await this.api.list(path, cursor, this.pageSize, options);
      for (const e of page.entries) addChild(listing, e.name, nodeFromEntry(e, joinPath(path, e.name)));
      cursor = page.nextCursor;
    } while (cursor);
    if (this.unchanged(path, epoch)) {
      this.dirs.set(path, listing);
      this.freshAfter.delete(path);
      if (path !== '/' && !this.entries.has(path)) {
        this.entries.set(path, { path, type: 'dir', size: 0, mtimeMs: 0 });
      }
      // One level at a time (background listings do not cascade): the walker's own readdir of a
      // listed-ahead directory moves the window down, so an untouched subtree is never crawled.
      if (listAhead) this.listSubdirsAhead(listing);
    }
    return listing;
  }

  /**
   * Background listings of the next listAheadDirs subdirectories not listed yet (best effort: a
   * failure costs nothing). The scan resumes at `aheadFrom`, so repeated calls on a directory with
   * many subdirectories stay linear overall, and a directory already queued is not queued twice.
   */
  private listSubdirsAhead(listing: Listing): void {
    if (this.listAheadDirs <= 0) return;
    const nodes = listing.nodes;
    let i = listing.aheadFrom ?? 0;
    let queued = 0;
    for (; i < nodes.length && queued < this.listAheadDirs; i++) {
      const n = nodes[i] as Node;
      if (n.type !== 'dir' || this.dirs.has(n.path)) continue;
      queued++;
      if (this.aheadQueued.has(n.path)) continue;
      this.aheadQueued.add(n.path);
      void this.listAhead(async () => {
        try {
          if (this.dirs.has(n.path)) return;
          await this.listings.do(n.path, () => this.list(n.path, false)).catch(() => undefined);
        } finally {
          this.aheadQueued.delete(n.path);
        }
      });
    }
    // Everything before the first queued-but-unlisted entry is done; resume the next scan there.
    let from = listing.aheadFrom ?? 0;
    while (from < i) {
      const n = nodes[from] as Node;
      if (n.type === 'dir' && !this.dirs.has(n.path)) break;
      from++;
    }
    listing.aheadFrom = from;
  }

  /** Directories handed to the list-ahead queue and not finished yet. */
  private readonly aheadQueued = new Set<string>();

  private learnLocation(path: string, bucket: string | undefined, key: string | undefined): void {
    if (this.location || !bucket || !key) return;
    const rel = path.slice(1);
    if (key.endsWith(rel)) this.location = { bucket, keyPrefix: key.slice(0, key.length - rel.length) };
  }
}
