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
  countInactive,
  decodeCursor,
  encodeCursor,
  getDir,
  getObject,
  listByDay,
  listDates,
  listDatesWithin,
  listDir,
} from '../adapters/pg/index-store.ts';
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
import { baseName, keyForPath, normalizePath } from '../core/paths.ts';
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
const resolveQuery = pathQuery.extend({ presign: z.enum(['0', '1', 'true', 'false']).optional() });
const listQuery = pathQuery.extend({ cursor: z.string().optional(), limit: pageLimit });
const pageQuery = z.object({ cursor: z.string().optional(), limit: pageLimit });
const changesQuery = z.object({ since: z.coerce.number().int().min(0).default(0), limit: pageLimit });

function cacheOf(d: Deps) {
  return metadataCache(d.redis, d.config.env.STRATA_CACHE_TTL_MS, d.config.cacheNamespace);
}

function dirPath(raw: string, d: Deps): string {
  return normalizePath(raw, { directory: true, dataPrefix: d.config.dataPrefix });
}

/** Looks a path up (file first, then directory) through the cache. null = not found. */
async function lookup(d: Deps, path: string): Promise<ResolveCacheValue | null> {
  const cache = cacheOf(d);
  const hit = await cache.getResolve(path);
  if (hit) return hit.value;
  let value: ResolveCacheValue | null = null;
  const obj = path === '/' ? undefined : await getObject(d.pool, path);
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
    };
  } else {
    const dir = await getDir(d.pool, path);
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
  await cache.setResolve(path, value);
  return value;
}

/** An entry seen by a prefix-limited token that is only an ancestor of its prefixes. */
function redactAncestor<T extends Entry>(principal: Principal, e: T): T {
  if (isVisible(principal, e.path)) return e;
  return { ...e, size: 0, files: undefined, mtime: new Date(0).toISOString() };
}

function filterEntries(principal: Principal, entries: Entry[]): Entry[] {
  if (isUnrestricted(principal)) return entries;
  return entries.filter((e) => isNavigable(principal, e.path)).map((e) => redactAncestor(principal, e));
}

async function resolve(req: ApiRequest): Promise<ResolveResponse> {
  const q = parseWith(resolveQuery, req.query, 'query');
  const d = req.deps;
  const path = dirPath(q.path, d);
  if (!isNavigable(req.principal, path)) throw new NotFoundError(`not found: ${path}`);
  const value = await lookup(d, path);
  if (!value) throw new NotFoundError(`not found: ${path}`);
  if (!isVisible(req.principal, path)) {
    if (value.type !== 'dir') throw new NotFoundError(`not found: ${path}`);
    return redactAncestor(req.principal, value) as ResolveResponse;
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

async function list(req: ApiRequest): Promise<ListResponse> {
  const q = parseWith(listQuery, req.query, 'query');
  const d = req.deps;
  const dir = dirPath(q.path, d);
  assertNavigable(req.principal, dir);
  const cache = cacheOf(d);
  const pageKey = `${q.cursor ?? ''}|${q.limit}`;
  let page = (await cache.getList(dir, pageKey)) as { entries: Entry[]; nextCursor?: string } | undefined;
  if (!page) {
    const r = await listDir(d.pool, dir, q.limit, q.cursor ? decodeCursor(q.cursor) : undefined);
    page = { entries: r.entries, ...(r.next ? { nextCursor: encodeCursor(r.next) } : {}) };
    if (page.entries.length === 0 && !q.cursor && dir !== '/') {
      const obj = await getObject(d.pool, dir);
      if (obj?.state === 'active')
        throw new ValidationError(`not a directory: ${dir} is a file; use /v1/resolve`);
      throw new NotFoundError(`directory not found: ${dir}`);
    }
    await cache.setList(dir, pageKey, page);
  }
  return {
    path: dir,
    entries: filterEntries(req.principal, page.entries),
    ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
  };
}

async function dates(req: ApiRequest): Promise<DatesResponse> {
  const d = req.deps;
  if (isUnrestricted(req.principal)) return { dates: await listDates(d.pool) };
  return { dates: await listDatesWithin(d.pool, req.principal.prefixes) };
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

async function byDate(req: ApiRequest): Promise<ByDateResponse> {
  const date = req.params.date ?? '';
  if (!DATE.test(date) || Number.isNaN(Date.parse(`${date}T00:00:00Z`))) {
    throw new ValidationError(`invalid date ${JSON.stringify(date)}: use yyyy-mm-dd, e.g. 2024-03-01`);
  }
  const q = parseWith(pageQuery, req.query, 'query');
  let after = '';
  if (q.cursor) {
    after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    if (!after.startsWith('/')) throw new ValidationError('invalid cursor: pass back nextCursor unchanged');
  }
  const r = await listByDay(req.deps.pool, date, q.limit, after);
  const entries = isUnrestricted(req.principal)
    ? r.entries
    : r.entries.filter((e) => isVisible(req.principal, e.path));
  return { date, entries, ...(r.next ? { nextCursor: Buffer.from(r.next).toString('base64url') } : {}) };
}

async function changes(req: ApiRequest): Promise<ChangesResponse> {
  const q = parseWith(changesQuery, req.query, 'query');
  const r = await changesSince(req.deps.pool, q.since, q.limit);
  const last = r.changes[r.changes.length - 1]?.seq ?? q.since;
  const visible = isUnrestricted(req.principal)
    ? r.changes
    : r.changes.filter((c) => isVisible(req.principal, c.path));
  return { changes: visible, nextSince: last, latest: Math.max(r.latest, q.since) };
}

async function stats(req: ApiRequest): Promise<StatsResponse> {
  const q = parseWith(pathQuery, req.query, 'query');
  const d = req.deps;
  const path = dirPath(q.path, d);
  assertVisible(req.principal, path);
  const obj = path === '/' ? undefined : await getObject(d.pool, path);
  if (obj?.state === 'active') return { path, files: 1, bytes: obj.size, byState: { active: 1 } };
  const dir = await getDir(d.pool, path);
  if (!dir && path !== '/') throw new NotFoundError(`not found: ${path}`);
  const inactive = await countInactive(d.pool, path);
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
  const obj = await getObject(d.pool, path);
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
