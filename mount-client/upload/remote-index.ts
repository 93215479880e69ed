/**
 * What the index already holds for the files an upload is about to send (skip-unchanged).
 *
 * Design note. Reading the remote side must not stand between the first local file and its PUT,
 * and it must not cost one API call per directory when the target does not exist yet (the common
 * first upload). So listings are lazy, memoized per directory and walked top-down from the files'
 * deepest common directory: a directory is listed only when its parent's listing shows it exists.
 * A brand-new target costs one call (a 404 on the common root); a re-sync costs one paged
 * /v1/list per directory that exists, each fetched when the first file in it needs the answer.
 * A directory the token may not list counts as "nothing known": the file is uploaded again, never
 * skipped on a guess. Other failures (network, 5xx after the client's retries) fail the files that
 * needed the listing, with the API's message.
 */

import pLimit from 'p-limit';
import type { ListResponse } from '../../functions/core/api-types.ts';
import { ForbiddenError, NotFoundError } from '../../functions/core/errors.ts';
import { parentOf } from '../../functions/core/paths.ts';
import type { ApiClient } from '../api/client.ts';

export interface RemoteFile {
  size: number;
  sha256?: string;
}

interface Listing {
  files: Map<string, RemoteFile>;
  dirs: Set<string>;
}

/** 1,000 entries per page is the API's maximum: one round trip for most directories. */
const PAGE = 1000;
/** Listings in flight: enough to hide API latency, few enough to leave the API to the batch calls. */
const LIST_CONCURRENCY = 4;

export class RemoteIndex {
  private readonly listings = new Map<string, Promise<Listing | undefined>>();
  private readonly limit = pLimit(LIST_CONCURRENCY);
  private readonly root: string;
  /** Directory listings fetched from the API (tests and --json diagnostics). */
  calls = 0;

  constructor(
    private readonly api: ApiClient,
    remotePaths: string[],
    private readonly signal?: AbortSignal,
  ) {
    this.root = commonDir(remotePaths.map(parentOf));
  }

  /** The indexed file at `path`, if the index has one. */
  async lookup(path: string): Promise<RemoteFile | undefined> {
    return (await this.listing(parentOf(path)))?.files.get(path);
  }

  private listing(dir: string): Promise<Listing | undefined> {
    let p = this.listings.get(dir);
    if (!p) {
      p = this.resolveListing(dir);
      this.listings.set(dir, p);
    }
    return p;
  }

  private async resolveListing(dir: string): Promise<Listing | undefined> {
    if (dir !== this.root && dir.startsWith(this.root)) {
      const parent = await this.listing(parentOf(dir));
      if (!parent?.dirs.has(dir)) return undefined; // the parent does not hold it: nothing to list
    }
    return this.limit(() => this.fetch(dir));
  }

  private async fetch(dir: string): Promise<Listing | undefined> {
    const out: Listing = { files: new Map(), dirs: new Set() };
    let cursor: string | undefined;
    do {
      let page: ListResponse;
      try {
        this.calls++;
        page = await this.api.request<ListResponse>('GET', '/v1/list', {
          query: { path: dir, cursor, limit: PAGE },
          signal: this.signal,
        });
      } catch (err) {
        if (err instanceof NotFoundError || err instanceof ForbiddenError) return undefined;
        throw err;
      }
      for (const e of page.entries) {
        if (e.type === 'dir') out.dirs.add(e.path);
        else out.files.set(e.path, { size: e.size, ...(e.sha256 ? { sha256: e.sha256 } : {}) });
      }
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }
}

/** Deepest directory containing every one of `dirs` (`/` when they share nothing). */
export function commonDir(dirs: string[]): string {
  if (dirs.length === 0) return '/';
  let common = dirs[0] as string;
  for (const d of dirs) {
    while (common !== '/' && d !== common && !d.startsWith(`${common}/`)) common = parentOf(common);
  }
  return common;
}
