/**
 * Query, admin and peers handlers invoked directly (API Gateway v2 events) against real
 * PostgreSQL and — when redis-server is available — real Redis behind the Upstash REST adapter.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjectChanges, type ObjectChange } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { createRedis } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { parseToken } from '../../../functions/core/tokens.ts';
import { handler as admin } from '../../../functions/handlers/admin.ts';
import { resetMetadataCache } from '../../../functions/handlers/http/cache.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { handler as peers } from '../../../functions/handlers/peers.ts';
import { handler as query } from '../../../functions/handlers/query.ts';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { startUpstashAdapter, type UpstashAdapter } from '../../../local/upstash-adapter.ts';
import { missing } from '../../support/requirements.ts';
import { startTestDb, type TestDb } from './db.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let adminToken: string;
let redis: LocalRedis | undefined;
let upstash: UpstashAdapter | undefined;
const config = parseConfig({
  STRATA_BUCKET: 'b',
  STRATA_DATA_PREFIX: 'data/',
  DATABASE_URL: 'postgres://unused',
});

beforeAll(async () => {
  db = await startTestDb();
  adminToken = (await createToken(db.pool, { name: 'admin', scopes: ['admin'] })).token;
  setDeps({ config, pool: db.pool, redis: guardRedis(undefined) });
  const when = new Date('2024-05-06T07:08:09Z');
  const changes: ObjectChange[] = ['/x/1', '/x/2', '/y/3', '/team-a/4'].map((path, i) => ({
    kind: 'put',
    key: `data${path}`,
    path,
    size: 10 * (i + 1),
    etag: `e${i}`,
    sequencer: '1',
    lastModified: when,
  }));
  await withTransaction(db.pool, (c) => applyObjectChanges(c, changes, { source: 'event' }));
  await withTransaction(db.pool, (c) =>
    applyObjectChanges(c, [{ kind: 'missing', key: 'data/x/2', path: '/x/2' }], {
      source: 'drift',
      runId: 'run-1',
    }),
  );
});

afterAll(async () => {
  await upstash?.close();
  await redis?.stop();
  await db?.stop();
});

function event(
  routeKey: string,
  opts: {
    query?: Record<string, string>;
    params?: Record<string, string>;
    body?: unknown;
    token?: string;
  } = {},
) {
  return {
    version: '2.0',
    routeKey,
    rawPath: routeKey.split(' ')[1],
    headers: { authorization: `Bearer ${opts.token ?? adminToken}`, 'content-type': 'application/json' },
    queryStringParameters: opts.query,
    pathParameters: opts.params,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    requestContext: { requestId: 'r', http: { method: routeKey.split(' ')[0] } },
  } as unknown as APIGatewayProxyEventV2;
}

async function call(h: typeof query, e: APIGatewayProxyEventV2) {
  const res = await h(e);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

describe('query API', () => {
  it('pages the change journal in order and reports drift with its run', async () => {
    const first = await call(query, event('GET /v1/changes', { query: { since: '0', limit: '3' } }));
    // Sequences increase strictly in journal order; they are not dense (migration 0013).
    const seqs: number[] = first.body.changes.map((c: { seq: number }) => c.seq);
    expect(seqs).toHaveLength(3);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(3);
    expect(first.body.changes.map((c: { path: string }) => c.path)).toEqual(['/team-a/4', '/x/1', '/x/2']);
    expect(first.body.nextSince).toBe(seqs[2]);
    const rest = await call(query, event('GET /v1/changes', { query: { since: String(seqs[2]) } }));
    expect(rest.body.changes.map((c: { op: string; path: string }) => [c.op, c.path])).toEqual([
      ['put', '/y/3'],
      ['drift', '/x/2'],
    ]);
    expect(rest.body.changes[1].runId).toBe('run-1');
    expect(rest.body.changes[0].seq).toBeGreaterThan(seqs[2] as number);
    expect(rest.body.latest).toBe(rest.body.changes[1].seq);
  });

  it('answers stats with rollups and non-active states, and dates', async () => {
    const stats = await call(query, event('GET /v1/stats', { query: { path: '/x' } }));
    expect(stats.body).toEqual({ path: '/x', files: 1, bytes: 10, byState: { active: 1, missing: 1 } });
    const root = await call(query, event('GET /v1/stats', { query: { path: '/' } }));
    expect(root.body).toMatchObject({ files: 3, bytes: 80 });
    const dates = await call(query, event('GET /v1/dates'));
    expect(dates.body.dates).toEqual([{ date: '2024-05-06', files: 3, bytes: 80 }]);
    expect(
      (await call(query, event('GET /v1/by-date/{date}', { params: { date: '2024-13-45' } }))).status,
    ).toBe(400);
  });

  it('limits a prefixed token everywhere: changes, dates, by-date, resolve of ancestors', async () => {
    const { token } = await createToken(db.pool, { name: 'a', scopes: ['read'], prefixes: ['/team-a/'] });
    const ch = await call(query, event('GET /v1/changes', { token }));
    expect(ch.body.changes.map((c: { path: string }) => c.path)).toEqual(['/team-a/4']);
    const dates = await call(query, event('GET /v1/dates', { token }));
    expect(dates.body.dates).toEqual([{ date: '2024-05-06', files: 1, bytes: 40 }]);
    const day = await call(query, event('GET /v1/by-date/{date}', { params: { date: '2024-05-06' }, token }));
    expect(day.body.entries.map((e: { path: string }) => e.path)).toEqual(['/team-a/4']);
    const rootDir = await call(query, event('GET /v1/resolve', { query: { path: '/' }, token }));
    expect(rootDir.body).toMatchObject({ type: 'dir', size: 0 });
    expect((await call(query, event('GET /v1/stats', { query: { path: '/x' }, token }))).status).toBe(404);
  });

  it('serves a verified token from the in-process cache only for the exact same secret', async () => {
    const { token } = await createToken(db.pool, { name: 'cached', scopes: ['read'] });
    const ok = await call(query, event('GET /v1/resolve', { query: { path: '/x/1' }, token }));
    expect(ok.status).toBe(200);
    // Same token id, different secret: the cache (keyed by the token's digest) must not answer.
    const forged = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    const bad = await call(query, event('GET /v1/resolve', { query: { path: '/x/1' }, token: forged }));
    expect(bad.status).toBe(401);
    // Revocation through the admin API drops the cached entry at once in this process.
    const id = parseToken(token)?.id as string;
    const revoked = await call(admin, event('DELETE /v1/tokens/{id}', { params: { id } }));
    expect(revoked.status).toBeLessThan(300);
    expect((await call(query, event('GET /v1/resolve', { query: { path: '/x/1' }, token }))).status).toBe(
      401,
    );
  });

  it('rejects bad input with 400 and a precise message', async () => {
    const r = await call(query, event('GET /v1/list', { query: { path: '/x', limit: '5000' } }));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/query\.limit/);
    expect(
      (await call(query, event('GET /v1/list', { query: { path: '/x', cursor: 'garbage' } }))).status,
    ).toBe(400);
    expect((await call(query, event('GET /v1/resolve', { query: { path: 'relative' } }))).status).toBe(400);
  });
});

describe('admin API', () => {
  it('creates, lists and revokes tokens; a prefixed admin cannot widen access', async () => {
    const created = await call(
      admin,
      event('POST /v1/tokens', {
        body: { name: 'ci', scopes: ['write'], prefixes: ['/in'], expiresInSeconds: 60 },
      }),
    );
    expect(created.status).toBe(201);
    expect(created.body.prefixes).toEqual(['/in/']);
    const listed = await call(admin, event('GET /v1/tokens'));
    expect(JSON.stringify(listed.body)).not.toContain(created.body.token);
    expect(listed.body.tokens.map((t: { id: string }) => t.id)).toContain(created.body.id);
    const { token: scoped } = await createToken(db.pool, {
      name: 'sub',
      scopes: ['admin'],
      prefixes: ['/in/'],
    });
    const widen = await call(
      admin,
      event('POST /v1/tokens', { token: scoped, body: { name: 'x', scopes: ['read'], prefixes: ['/'] } }),
    );
    expect(widen.status).toBe(403);
    expect(
      (await call(admin, event('DELETE /v1/tokens/{id}', { params: { id: created.body.id } }))).status,
    ).toBe(200);
    expect((await call(admin, event('DELETE /v1/tokens/{id}', { params: { id: 'nope' } }))).status).toBe(404);
    expect(
      (await call(admin, event('POST /v1/tokens', { body: { name: 'bad', scopes: ['root'] } }))).status,
    ).toBe(400);
  });
});

describe('peers API', () => {
  const roundTrip = async () => {
    const hb = await call(
      peers,
      event('POST /v1/peers/heartbeat', { body: { id: 'node-1', address: '127.0.0.1:7001' } }),
    );
    expect(hb.status).toBe(200);
    await call(
      peers,
      event('POST /v1/peers/heartbeat', { body: { id: 'node-2', address: '127.0.0.1:7002', ttlSeconds: 5 } }),
    );
    const list = await call(peers, event('GET /v1/peers'));
    expect(list.body.peers.map((p: { id: string; address: string }) => [p.id, p.address])).toEqual([
      ['node-1', '127.0.0.1:7001'],
      ['node-2', '127.0.0.1:7002'],
    ]);
    const bad = await call(
      peers,
      event('POST /v1/peers/heartbeat', { body: { id: 'x', address: 'no-port' } }),
    );
    expect(bad.status).toBe(400);
  };

  it('registers peers in PostgreSQL without Redis', roundTrip);

  it.skipIf(missing('redis-server'))(
    'registers peers in Redis with a TTL when Redis is configured',
    async () => {
      redis = await startRedisServer();
      upstash = await startUpstashAdapter({ redisUrl: redis.url, token: 't' });
      const guard = guardRedis(createRedis({ url: upstash.url, token: 't', timeoutMs: 10_000 }));
      setDeps({ redis: guard });
      resetMetadataCache();
      await db.pool.query('TRUNCATE peers');
      await roundTrip();
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM peers');
      expect(rows[0].n).toBe(0); // served by Redis
      expect(guard.failures).toBe(0);
      // Resolve caching through Redis: a second lookup is a Redis hit after the local level is cleared.
      const first = await call(query, event('GET /v1/resolve', { query: { path: '/x/1' } }));
      expect(first.status).toBe(200);
      const { metadataCache } = await import('../../../functions/handlers/http/cache.ts');
      const cache = metadataCache(guard, config.env.STRATA_CACHE_TTL_MS);
      cache.clearLocal();
      const before = cache.stats.redisHits;
      expect((await call(query, event('GET /v1/resolve', { query: { path: '/x/1' } }))).body.etag).toBe('e0');
      expect(cache.stats.redisHits).toBe(before + 1);

      // Another deployment on the same Redis database (a second stage, a parallel test stack)
      // has its own namespace: it sees neither these cache entries nor these peers.
      const otherConfig = parseConfig({
        STRATA_BUCKET: 'b',
        STRATA_DATA_PREFIX: 'data/',
        DATABASE_URL: 'postgres://unused',
        STRATA_CACHE_NAMESPACE: 'other-stage',
      });
      setDeps({ config: otherConfig });
      try {
        expect((await call(peers, event('GET /v1/peers'))).body.peers).toEqual([]);
        const other = metadataCache(guard, config.env.STRATA_CACHE_TTL_MS, otherConfig.cacheNamespace);
        other.clearLocal();
        expect(await other.getResolve('/x/1')).toBeUndefined();
        expect(other.stats.redisHits).toBe(0);
      } finally {
        setDeps({ config });
        resetMetadataCache();
      }
    },
  );
});
