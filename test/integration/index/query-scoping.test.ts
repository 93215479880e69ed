/**
 * Release-review findings on the query API and the server metadata cache, against real
 * PostgreSQL and (when available) real Redis behind the Upstash REST adapter:
 * - a `/team-a/` token learns no byte about `/team-b*` from any field of any response (cursors,
 *   nextSince, latest, counts);
 * - a reader that raced an invalidation cannot put its stale answer back into the cache;
 * - `minSeq` reads bypass the cache; list-page hashes are capped.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjectChanges, type ObjectChange } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { createRedis, type RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { MetadataCache } from '../../../functions/adapters/redis/metadata-cache.ts';
import { parseConfig } from '../../../functions/config.ts';
import { resetMetadataCache } from '../../../functions/handlers/http/cache.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { handler as query } from '../../../functions/handlers/query.ts';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { startUpstashAdapter, type UpstashAdapter } from '../../../local/upstash-adapter.ts';
import { missing } from '../../support/requirements.ts';
import { startTestDb, type TestDb } from './db.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let adminToken: string;
let teamA: string;
let redis: LocalRedis | undefined;
let upstash: UpstashAdapter | undefined;
const config = parseConfig({
  STRATA_BUCKET: 'b',
  STRATA_DATA_PREFIX: 'data/',
  DATABASE_URL: 'postgres://unused',
});
const when = new Date('2024-05-06T07:08:09Z');

function put(path: string, size: number, etag: string, sequencer: string): ObjectChange {
  return { kind: 'put', key: `data${path}`, path, size, etag, sequencer, lastModified: when };
}

async function apply(changes: ObjectChange[]): Promise<void> {
  await withTransaction(db.pool, (c) => applyObjectChanges(c, changes, { source: 'event' }));
}

beforeAll(async () => {
  db = await startTestDb();
  adminToken = (await createToken(db.pool, { name: 'admin', scopes: ['admin'] })).token;
  teamA = (await createToken(db.pool, { name: 'a', scopes: ['read'], prefixes: ['/team-a/'] })).token;
  setDeps({ config, pool: db.pool, redis: guardRedis(undefined) });
  resetMetadataCache();
  // team-a's files interleave (in byte order and in time) with team-b's, and team-b writes last,
  // so a cursor or sequence taken from an unfiltered page would point into team-b.
  await apply([put('/team-a/1', 1, 'a1', '1'), put('/team-b/secret-plan.pdf', 777, 'b1', '1')]);
  await apply([put('/team-a/2', 2, 'a2', '1'), put('/team-b-payroll/d/x', 999, 'b2', '1')]);
  await apply([put('/team-b/later', 555, 'b3', '1')]);
});

afterAll(async () => {
  await upstash?.close();
  await redis?.stop();
  await db?.stop();
});

function event(
  routeKey: string,
  opts: { query?: Record<string, string>; params?: Record<string, string>; token?: string } = {},
) {
  return {
    version: '2.0',
    routeKey,
    rawPath: routeKey.split(' ')[1],
    headers: { authorization: `Bearer ${opts.token ?? adminToken}` },
    queryStringParameters: opts.query,
    pathParameters: opts.params,
    requestContext: { requestId: 'r', http: { method: routeKey.split(' ')[0] } },
  } as unknown as APIGatewayProxyEventV2;
}

async function call(e: APIGatewayProxyEventV2) {
  const res = await query(e);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

/** Every string in a response, with base64url cursors decoded too. */
function texts(body: unknown): string {
  const out: string[] = [JSON.stringify(body)];
  JSON.stringify(body, (k, v) => {
    if (k === 'nextCursor' && typeof v === 'string') out.push(Buffer.from(v, 'base64url').toString('utf8'));
    return v;
  });
  return out.join('\n');
}

describe('a /team-a/ token sees nothing of team-b', () => {
  it('in list, by-date, changes, dates, stats and resolve — every field, every page', async () => {
    const { body: all } = await call(event('GET /v1/changes'));
    const seqA = all.changes
      .filter((c: { path: string }) => c.path.startsWith('/team-a/'))
      .map((c: { seq: number }) => c.seq);
    const maxA = Math.max(...seqA);
    expect(all.latest).toBeGreaterThan(maxA); // team-b wrote last: a global `latest` would leak

    const responses: Array<{ status?: number; body: unknown }> = [];
    for (const limit of ['1', '2', '1000']) {
      const root = await call(event('GET /v1/list', { query: { path: '/', limit }, token: teamA }));
      expect(root.body.entries.map((e: { name: string }) => e.name)).toEqual(['team-a']);
      expect(root.body.entries[0]).toMatchObject({ type: 'dir', size: 3, files: 2 }); // its own tree
      expect(root.body.nextCursor).toBeUndefined();
      responses.push(root);
      // by-date, paged to the end: only team-a's paths, cursors only from them.
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const q: Record<string, string> = { limit, ...(cursor ? { cursor } : {}) };
        const page = await call(
          event('GET /v1/by-date/{date}', { params: { date: '2024-05-06' }, query: q, token: teamA }),
        );
        expect(page.status).toBe(200);
        responses.push(page);
        seen.push(...page.body.entries.map((e: { path: string }) => e.path));
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(seen).toEqual(['/team-a/1', '/team-a/2']);
      // changes, paged the way the poller does.
      const changes: string[] = [];
      let since = 0;
      for (let i = 0; i < 10; i++) {
        const page = await call(
          event('GET /v1/changes', { query: { since: String(since), limit }, token: teamA }),
        );
        responses.push(page);
        expect(page.body.latest).toBe(maxA);
        expect(page.body.nextSince).toBeLessThanOrEqual(maxA);
        changes.push(...page.body.changes.map((c: { path: string }) => c.path));
        if (page.body.changes.length === 0 || page.body.nextSince >= page.body.latest) break;
        expect(page.body.nextSince).toBeGreaterThan(since); // progress
        since = page.body.nextSince;
      }
      expect(changes).toEqual(['/team-a/1', '/team-a/2']);
    }
    // A `since` beyond team-a's last change reveals nothing either.
    const beyond = await call(event('GET /v1/changes', { query: { since: String(maxA) }, token: teamA }));
    expect(beyond.body).toEqual({ changes: [], nextSince: maxA, latest: maxA });
    responses.push(beyond);
    const dates = await call(event('GET /v1/dates', { token: teamA }));
    expect(dates.body.dates).toEqual([{ date: '2024-05-06', files: 2, bytes: 3 }]);
    responses.push(dates);
    const stats = await call(event('GET /v1/stats', { query: { path: '/team-a' }, token: teamA }));
    expect(stats.body).toMatchObject({ files: 2, bytes: 3 });
    responses.push(stats);
    responses.push(await call(event('GET /v1/resolve', { query: { path: '/' }, token: teamA })));
    for (const path of ['/team-b', '/team-b/secret-plan.pdf', '/team-b-payroll']) {
      for (const route of ['GET /v1/resolve', 'GET /v1/list', 'GET /v1/stats']) {
        // Indistinguishable from a path that never existed (the message echoes only the request).
        const r = await call(event(route, { query: { path }, token: teamA }));
        const never = await call(event(route, { query: { path: '/never-was' }, token: teamA }));
        expect(r.status).toBe(404);
        expect(r.body.error.message.replace(path, 'P')).toBe(
          never.body.error.message.replace('/never-was', 'P'),
        );
      }
    }
    for (const r of responses) {
      const t = texts(r.body);
      expect(t).not.toMatch(/team-b|secret|payroll|777|999|555/);
    }
  });
});

describe.skipIf(missing('redis-server'))('metadata cache against real Redis', () => {
  let guard: RedisGuard;
  beforeAll(async () => {
    redis = await startRedisServer();
    upstash = await startUpstashAdapter({ redisUrl: redis.url, token: 't' });
    guard = guardRedis(createRedis({ url: upstash.url, token: 't', timeoutMs: 10_000 }));
  });

  it('does not resurrect an entry invalidated between the database read and the cache write', async () => {
    const ns = `race-${process.pid}`;
    // Two Lambdas: the query one (with a hook where the race happens) and the indexer.
    let race: (() => Promise<void>) | undefined;
    const reader = new MetadataCache<{ etag: string }, { entries: string[] }>(guard, {
      namespace: ns,
      beforeWrite: async () => {
        await race?.();
      },
    });
    const indexer = new MetadataCache<{ etag: string }, { entries: string[] }>(guard, { namespace: ns });

    const miss = await reader.readResolve('/f');
    expect(miss.cached).toBeUndefined();
    const fromDb = { etag: 'old' }; // read from PostgreSQL before the overwrite commits
    race = () => indexer.invalidate(['/f'], ['/']); // the indexer commits and invalidates now
    await reader.setResolve('/f', fromDb, miss.ticket);
    race = undefined;
    // No other Lambda gets the stale answer back. (The reader's own in-process level may keep it
    // for its local TTL, 1 s — the documented bound; minSeq reads bypass it.)
    reader.clearLocal();
    expect((await reader.readResolve('/f')).cached).toBeUndefined();
    const other = new MetadataCache<{ etag: string }, { entries: string[] }>(guard, { namespace: ns });
    expect((await other.readResolve('/f')).cached).toBeUndefined();
    // The next reader's answer (after the invalidation) is cached normally.
    const again = await other.readResolve('/f');
    await other.setResolve('/f', { etag: 'new' }, again.ticket);
    const third = new MetadataCache<{ etag: string }, { entries: string[] }>(guard, { namespace: ns });
    expect((await third.readResolve('/f')).cached).toEqual({ value: { etag: 'new' } });

    // Same race for list pages.
    const lmiss = await reader.readList('/', '|1000');
    race = () => indexer.invalidate([], ['/']);
    await reader.setList('/', '|1000', { entries: ['stale'] }, lmiss.ticket);
    race = undefined;
    expect(await third.getList('/', '|1000')).toBeUndefined();
    reader.clearLocal();
    expect(await reader.getList('/', '|1000')).toBeUndefined();

    // In one process (the local stack) the in-process level is protected as well.
    const same = await reader.readResolve('/g');
    race = () => reader.invalidate(['/g'], []);
    await reader.setResolve('/g', { etag: 'old' }, same.ticket);
    race = undefined;
    expect((await reader.readResolve('/g')).cached).toBeUndefined();
  });

  it('caps the list-page hash of a directory (page keys are client-controlled)', async () => {
    const ns = `cap-${process.pid}`;
    const cache = new MetadataCache<object, { n: number }>(guard, { namespace: ns, maxPagesPerDir: 8 });
    for (let i = 0; i < 30; i++) await cache.setList('/big', `c${i}|1000`, { n: i });
    const n = await guard.run('hlen', (r) => r.hlen(`strata:${ns}:l:/big`));
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThanOrEqual(8);
  });

  it('answers minSeq reads from PostgreSQL even when the cache still holds the old version', async () => {
    setDeps({ redis: guard });
    resetMetadataCache();
    const path = '/team-a/over';
    await apply([put(path, 5, 'v1', '1')]);
    const first = await call(event('GET /v1/resolve', { query: { path } }));
    expect(first.body.etag).toBe('v1');
    // The overwrite is committed (and journaled) but its invalidation has not reached the cache yet.
    await apply([put(path, 6, 'v2', '2')]);
    expect((await call(event('GET /v1/resolve', { query: { path } }))).body.etag).toBe('v1');
    const { body: ch } = await call(event('GET /v1/changes', { query: { since: '0' } }));
    const seq = ch.changes.filter((c: { path: string }) => c.path === path).at(-1).seq;
    const fresh = await call(event('GET /v1/resolve', { query: { path, minSeq: String(seq) } }));
    expect(fresh.body).toMatchObject({ etag: 'v2', size: 6 });
    const listed = await call(event('GET /v1/list', { query: { path: '/team-a', minSeq: String(seq) } }));
    expect(listed.body.entries.find((e: { name: string }) => e.name === 'over')).toMatchObject({
      etag: 'v2',
    });
    setDeps({ redis: guardRedis(undefined) });
    resetMetadataCache();
  });
});
