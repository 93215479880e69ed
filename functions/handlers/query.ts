/**
 * Query API (read side of the index): resolve, list, dates, by-date, changes, stats — and
 * `DELETE /v1/files`, which deletes in S3 and lets the index follow the event.
 *
 * Resolve and list pages go through the two-level metadata cache (http/cache.ts); everything is
 * served from PostgreSQL when Redis is absent or failing. Prefix-limited tokens see only their
 * prefixes: other paths are 404, and listing an ancestor of a prefix shows only the way down to it
 * (with sizes hidden, since they would leak the size of other trees).
 */
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { z } from 'zod';
import {
  changesSince,
  compareBytes,
  countInactive,
  decodeCursor,
  encodeCursor,
  getDir,
  getObject,
  getObjectForResolve,
  listByDay,
  listDates,
  listDatesWithin,
  listDir,
} from '../adapters/pg/index-store.ts';
import { type Pool, type Queryable, readQuery } from '../adapters/pg/pool.ts';
import { changesWithin, listByDayWithin } from '../adapters/pg/scoped-queries.ts';
import type {
  ByDateResponse,
  ChangesResponse,
  DatesResponse,
  Entry,
  ListResponse,
  ResolveResponse,
  StatsResponse,
} from '../core/api-types.ts';
import { isNavigable, isUnrestricted, isVisible, type Principal } from '../core/auth.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { baseName, isWithin, joinPath, keyForPath, normalizePath } from '../core/paths.ts';
import { metadataCache, type ResolveCacheValue } from './http/cache.ts';
import {
  type ApiRequest,
  assertNavigable,
  assertVisible,
  type Deps,
  httpApi,
  parseWith,
  respond,
} from './http/index.ts';

/** Page sizes: 1,000 entries is ~150 KiB of JSON, one round trip for most directories. */
export const MAX_PAGE = 1000;
const DEFAULT_PAGE = 1000;

const pathQuery = z.object({ path: z.string().min(1, 'path is required') });
const pageLimit = z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE);
// Schemas are built once: zod compiles a fast path per schema instance, so per-request schemas cost CPU.
/**
 * `minSeq`: the journal sequence of a change the caller has seen (the mount's poller, after an
 * invalidation). The answer must reflect it, so the cache — which may still hold the value from
 * before that change — is bypassed and PostgreSQL answers (it committed the change with its seq).
 */
const minSeq = z.coerce.number().int().min(0).optional();
const resolveQuery = pathQuery.extend({ presign: z.enum(['0', '1', 'true', 'false']).optional(), minSeq });
const listQuery = pathQuery.extend({ cursor: z.string().optional(), limit: pageLimit, minSeq });
const pageQuery = z.object({ cursor: z.string().optional(), limit: pageLimit });
const changesQuery = z.object({ since: z.coerce.number().int().min(0).default(0), limit: pageLimit });

/**
 * Every statement of this Lambda is a read, and a read whose connection died (PostgreSQL restarted,
 * a failover, a connection dropped while idle in the pool) is safe to run again on a fresh one:
 * through readQuery it is retried. Without it the first request on each dead pooled connection
 * answered 503 although the database was back (found by the server soak's restart test).
 */
const readers = new WeakMap<Pool, Queryable>();
function reads(pool: Pool): Queryable {
  let r = readers.get(pool);
  if (!r) {
    r = { query: ((text: string, values?: unknown[]) => readQuery(pool, text, values)) as Pool['query'] };
    readers.set(pool, r);
  }
  return r;
}

function cacheOf(d: Deps) {
  return metadataCache(d.redis, d.config.env.STRATA_CACHE_TTL_MS, d.config.cacheNamespace, d.pool);
}

function dirPath(raw: string, d: Deps): string {
  return normalizePath(raw, { directory: true, dataPrefix: d.config.dataPrefix });
}

/** Looks a path up (file first, then directory) through the cache. null = not found. */
async function lookup(d: Deps, path: string, fresh = false): Promise<ResolveCacheValue | null> {
  const cache = cacheOf(d);
  // A fresh read still takes the ticket (before the database read) but ignores the cached value.
  const { cached, ticket } = await cache.readResolve(path);
  if (cached && !fresh) return cached.value;
  let value: ResolveCacheValue | null = null;
  const obj = path === '/' ? undefined : await getObjectForResolve(reads(d.pool), path);
  if (obj && (obj.state === 'active' || obj.state === 'inconsistent')) {
    value = {
      path,
      name: baseName(path),
      type: 'file',
      size: obj.size,
      mtime: (obj.lastModified ?? new Date(0)).toISOString(),
      ...(obj.etag ? { etag: obj.etag } : {}),
      ...(obj.versionId ? { versionId: obj.versionId } : {}),
      ...(obj.sha256 ? { sha256: obj.sha256 } : {}),
      ...(obj.contentType ? { contentType: obj.contentType } : {}),
      ...(obj.metadata ? { metadata: obj.metadata } : {}),
      ...(obj.day ? { date: obj.day } : {}),
      bucket: d.config.bucket,
      key: obj.key,
      state: obj.state,
      ...(obj.alsoDirectory ? { alsoDirectory: true as const } : {}),
    };
  } else {
    const dir = await getDir(reads(d.pool), path);
    if (dir || path === '/') {
      value = {
        path,
        name: baseName(path),
        type: 'dir',
        size: dir?.bytes ?? 0,
        files: dir?.files ?? 0,
        mtime: (dir?.mtime ?? new Date(0)).toISOString(),
        bucket: d.config.bucket,
        key: path === '/' ? d.config.dataPrefix : `${keyForPath(d.config.dataPrefix, path)}/`,
        state: 'active',
      };
    }
  }
  // The ticket from before the database read: an invalidation since then keeps this answer out.
  await cache.setResolve(path, value, ticket);
  return value;
}

/** A directory's resolve answer with no rollup read (callers redact what they would not know). */
function directoryOf(d: Deps, path: string): ResolveCacheValue {
  return {
    path,
    name: baseName(path),
    type: 'dir',
    size: 0,
    mtime: new Date(0).toISOString(),
    bucket: d.config.bucket,
    key: `${keyForPath(d.config.dataPrefix, path)}/`,
    state: 'active',
  };
}

/** An entry seen by a prefix-limited token that is only an ancestor of its prefixes. */
function redactAncestor<T extends Entry>(principal: Principal, e: T): T {
  if (isVisible(principal, e.path)) return e;
  return { ...e, size: 0, files: undefined, mtime: new Date(0).toISOString() };
}

async function resolve(req: ApiRequest): Promise<ResolveResponse> {
  const q = parseWith(resolveQuery, req.query, 'query');
  const d = req.deps;
  const path = dirPath(q.path, d);
  if (!isNavigable(req.principal, path)) throw new NotFoundError(`not found: ${path}`);
  const value = await lookup(d, path, q.minSeq !== undefined);
  if (!value) throw new NotFoundError(`not found: ${path}`);
  if (!isVisible(req.principal, path)) {
    // An ancestor of the token's prefixes is a way down: a directory, or a file that is also one
    // (shown as the directory, as listings and mounts show it; nothing of the file is told).
    if (value.type === 'dir') return redactAncestor(req.principal, value) as ResolveResponse;
    if (value.alsoDirectory) return redactAncestor(req.principal, directoryOf(d, path)) as ResolveResponse;
    throw new NotFoundError(`not found: ${path}`);
  }
  if ((q.presign === '1' || q.presign === 'true') && value.type === 'file') {
    const expiresIn = d.config.env.STRATA_PRESIGN_EXPIRES_SECONDS;
    // Pinned by versionId when the bucket is versioned; otherwise the caller sends
    // `If-Match: <etag>` (returned alongside) so a replaced object yields 412, never mixed bytes.
    const url = await getSignedUrl(
      d.s3,
      new GetObjectCommand({ Bucket: value.bucket, Key: value.key, VersionId: value.versionId }),
      { expiresIn },
    );
    return { ...value, url, urlExpiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() };
  }
  return value;
}

/** Page sizes worth caching: the standard page and the one-entry probe of the mount client. */
const CACHED_LIMITS = new Set([DEFAULT_PAGE, 1]);

async function list(req: ApiRequest): Promise<ListResponse> {
  const q = parseWith(listQuery, req.query, 'query');
  const d = req.deps;
  const dir = dirPath(q.path, d);
  assertNavigable(req.principal, dir);
  if (!isVisible(req.principal, dir))
    return listAncestor(req.principal, d, dir, q.cursor, q.minSeq !== undefined);
  const cache = cacheOf(d);
  // Only standard page sizes are cached: the page key is client-controlled (see setList's cap too).
  const cacheable = CACHED_LIMITS.has(q.limit);
  const pageKey = `${q.cursor ?? ''}|${q.limit}`;
  const read = cacheable ? await cache.readList(dir, pageKey) : undefined;
  let page = (q.minSeq === undefined ? read?.cached : undefined) as
    | { entries: Entry[]; nextCursor?: string }
    | undefined;
  if (!page) {
    const r = await listDir(reads(d.pool), dir, q.limit, q.cursor ? decodeCursor(q.cursor) : undefined);
    page = { entries: r.entries, ...(r.next ? { nextCursor: encodeCursor(r.next) } : {}) };
    if (page.entries.length === 0 && !q.cursor && dir !== '/') {
      const obj = await getObject(reads(d.pool), dir);
      if (obj?.state === 'active')
        throw new ValidationError(`not a directory: ${dir} is a file; use /v1/resolve`);
      throw new NotFoundError(`directory not found: ${dir}`);
    }
    if (read) await cache.setList(dir, pageKey, page, read.ticket);
  }
  // The directory is visible, so every entry (and the cursor built from the last one) is too.
  return { path: dir, entries: page.entries, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}

/**
 * Listing an ancestor of a prefix-limited token's prefixes (e.g. `/` for a `/team-a/` token): the
 * only entries are the next path components on the way down to each prefix, looked up one by one
 * (a token has a handful of prefixes), so the page never scans, and its cursor never names, the
 * directory's other children. Always one page: a cursor (never issued here) yields nothing more.
 */
async function listAncestor(
  principal: Principal,
  d: Deps,
  dir: string,
  cursor: string | undefined,
  fresh: boolean,
): Promise<ListResponse> {
  if (cursor) return { path: dir, entries: [] };
  const children = new Set<string>();
  for (const prefix of principal.prefixes) {
    const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    if (p === dir || !isWithin(p, dir)) continue;
    const rest = p.slice(dir === '/' ? 1 : dir.length + 1);
    children.add(joinPath(dir, rest.split('/')[0] as string));
  }
  const entries: Entry[] = [];
  for (const child of children) {
    const v = await lookup(d, child, fresh);
    if (!v) continue;
    const visible = isVisible(principal, child);
    // A file that is also a directory is a way down too: its directory is listed (redacted when
    // only an ancestor, with its rollup when visible) as listDir lists it, beside the file if visible.
    if (v.type === 'file' && v.alsoDirectory) {
      const dir = visible ? await getDir(reads(d.pool), child) : undefined;
      entries.push(
        redactAncestor(principal, {
          path: v.path,
          name: v.name,
          type: 'dir',
          size: dir?.bytes ?? 0,
          ...(dir ? { files: dir.files } : {}),
          mtime: (dir?.mtime ?? new Date(0)).toISOString(),
        }),
      );
    }
    // A directory on the way down; a file exactly at a prefix path is visible and listed as is.
    if (v.type === 'file' && !visible) continue;
    const e: Entry = { path: v.path, name: v.name, type: v.type, size: v.size, mtime: v.mtime };
    if (v.type === 'dir') e.files = v.files;
    else if (v.etag) e.etag = v.etag;
    entries.push(redactAncestor(principal, e));
  }
  entries.sort((a, b) => compareBytes(a.name, b.name) || (a.type === 'dir' ? -1 : 1));
  return { path: dir, entries };
}

async function dates(req: ApiRequest): Promise<DatesResponse> {
  const d = req.deps;
  if (isUnrestricted(req.principal)) return { dates: await listDates(reads(d.pool)) };
  return { dates: await listDatesWithin(reads(d.pool), req.principal.prefixes) };
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

async function byDate(req: ApiRequest): Promise<ByDateResponse> {
  const date = req.params.date ?? '';
  // Date.parse accepts 2024-02-30 (it rolls over to March) and year 0; PostgreSQL refuses both.
  const parsed = new Date(`${date}T00:00:00Z`);
  if (
    !DATE.test(date) ||
    Number.isNaN(parsed.getTime()) ||
    parsed.toISOString().slice(0, 10) !== date ||
    date < '0001-01-01'
  ) {
    throw new ValidationError(`invalid date ${JSON.stringify(date)}: use yyyy-mm-dd, e.g. 2024-03-01`);
  }
  const q = parseWith(pageQuery, req.query, 'query');
  let after = '';
  if (q.cursor) {
    after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    // A cursor is a path this endpoint returned: anything else (NUL, which PostgreSQL text cannot
    // hold, control characters, "..") is refused here rather than failing in SQL as a 500.
    let valid = false;
    try {
      valid = normalizePath(after) === after;
    } catch {
      valid = false;
    }
    if (!valid) throw new ValidationError('invalid cursor: pass back nextCursor unchanged');
  }
  // Prefix-limited tokens are filtered in SQL: full pages, and a cursor that is always one of the
  // token's own paths (a cursor from a filtered-out row would name another team's file).
  const r = isUnrestricted(req.principal)
    ? await listByDay(reads(req.deps.pool), date, q.limit, after)
    : await listByDayWithin(reads(req.deps.pool), date, q.limit, after, req.principal.prefixes);
  return {
    date,
    entries: r.entries,
    ...(r.next ? { nextCursor: Buffer.from(r.next).toString('base64url') } : {}),
  };
}

async function changes(req: ApiRequest): Promise<ChangesResponse> {
  const q = parseWith(changesQuery, req.query, 'query');
  // For a prefix-limited token, `nextSince` and `latest` are sequences of its own changes only, so
  // they reveal nothing about writes elsewhere; every non-empty page still advances `since`.
  const r = isUnrestricted(req.principal)
    ? await changesSince(reads(req.deps.pool), q.since, q.limit)
    : await changesWithin(reads(req.deps.pool), q.since, q.limit, req.principal.prefixes);
  const last = r.changes[r.changes.length - 1]?.seq ?? q.since;
  return { changes: r.changes, nextSince: last, latest: Math.max(r.latest, q.since) };
}

async function stats(req: ApiRequest): Promise<StatsResponse> {
  const q = parseWith(pathQuery, req.query, 'query');
  const d = req.deps;
  const path = dirPath(q.path, d);
  assertVisible(req.principal, path);
  const obj = path === '/' ? undefined : await getObject(reads(d.pool), path);
  if (obj?.state === 'active') return { path, files: 1, bytes: obj.size, byState: { active: 1 } };
  const dir = await getDir(reads(d.pool), path);
  if (!dir && path !== '/') throw new NotFoundError(`not found: ${path}`);
  const inactive = await countInactive(reads(d.pool), path);
  return {
    path,
    files: dir?.files ?? 0,
    bytes: dir?.bytes ?? 0,
    byState: { active: dir?.files ?? 0, ...inactive },
  };
}

async function deleteFile(req: ApiRequest) {
  const q = parseWith(pathQuery, req.query, 'query');
  const d = req.deps;
  const path = normalizePath(q.path, { dataPrefix: d.config.dataPrefix });
  assertVisible(req.principal, path);
  const obj = await getObject(reads(d.pool), path);
  if (obj?.state !== 'active' && obj?.state !== 'inconsistent') throw new NotFoundError(`not found: ${path}`);
  await d.s3.send(new DeleteObjectCommand({ Bucket: d.config.bucket, Key: obj.key }));
  // 202: S3 has deleted it; the index follows when the ObjectRemoved event is processed.
  return respond(202, { path, key: obj.key, deleted: true });
}

export const handler = httpApi({
  'GET /v1/resolve': { scope: 'read', handler: resolve },
  'GET /v1/list': { scope: 'read', handler: list },
  'GET /v1/dates': { scope: 'read', handler: dates },
  'GET /v1/by-date/{date}': { scope: 'read', handler: byDate },
  'GET /v1/changes': { scope: 'read', handler: changes },
  'GET /v1/stats': { scope: 'read', handler: stats },
  'DELETE /v1/files': { scope: 'write', handler: deleteFile },
});
