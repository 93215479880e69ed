/**
 * Hostile query input (QA sweep 2): values that pass the shape checks but that PostgreSQL refuses
 * (NUL inside a cursor, a calendar-impossible date) must be a 400 naming the fix, never a 500.
 * Handlers invoked directly with API Gateway v2 events against real PostgreSQL.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjectChanges, type ObjectChange } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { parseConfig } from '../../../functions/config.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { handler as peers } from '../../../functions/handlers/peers.ts';
import { handler as query } from '../../../functions/handlers/query.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let token: string;
const config = parseConfig({
  STRATA_BUCKET: 'b',
  STRATA_DATA_PREFIX: 'data/',
  DATABASE_URL: 'postgres://unused',
});

beforeAll(async () => {
  db = await startTestDb();
  token = (await createToken(db.pool, { name: 'reader', scopes: ['read'] })).token;
  setDeps({ config, pool: db.pool, redis: guardRedis(undefined) });
  const changes: ObjectChange[] = ['/d/a', '/d/b'].map((path, i) => ({
    kind: 'put',
    key: `data${path}`,
    path,
    size: 1 + i,
    etag: `e${i}`,
    sequencer: '1',
    lastModified: new Date('2024-02-01T00:00:00Z'),
  }));
  await withTransaction(db.pool, (c) => applyObjectChanges(c, changes, { source: 'event' }));
});

afterAll(async () => {
  await db?.stop();
});

function event(routeKey: string, query?: Record<string, string>, params?: Record<string, string>) {
  return {
    version: '2.0',
    routeKey,
    rawPath: routeKey.split(' ')[1],
    headers: { authorization: `Bearer ${token}` },
    queryStringParameters: query,
    pathParameters: params,
    requestContext: { requestId: 'r', http: { method: 'GET' } },
  } as unknown as APIGatewayProxyEventV2;
}

async function call(e: APIGatewayProxyEventV2) {
  const res = await query(e);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

describe('hostile query input', () => {
  it('rejects a list cursor whose name holds NUL or a "/" with 400, not 500', async () => {
    for (const name of ['a\u0000b', 'a/b', '\u0007']) {
      const r = await call(event('GET /v1/list', { path: '/d', cursor: b64(JSON.stringify([name, 'f'])) }));
      expect(r.status, name).toBe(400);
      expect(r.body.error.message).toMatch(/invalid cursor/);
    }
    // A well-formed cursor from the previous page still works.
    const first = await call(event('GET /v1/list', { path: '/d', limit: '1' }));
    const next = await call(event('GET /v1/list', { path: '/d', limit: '1', cursor: first.body.nextCursor }));
    expect(next.body.entries.map((e: { name: string }) => e.name)).toEqual(['b']);
  });

  it('rejects a by-date cursor that is not a path (NUL, control characters, "..") with 400', async () => {
    for (const after of ['/a\u0000b', '/a\nb', '/a/../b']) {
      const r = await call(event('GET /v1/by-date/{date}', { cursor: b64(after) }, { date: '2024-02-01' }));
      expect(r.status, JSON.stringify(after)).toBe(400);
      expect(r.body.error.message).toMatch(/invalid cursor/);
    }
    const first = await call(event('GET /v1/by-date/{date}', { limit: '1' }, { date: '2024-02-01' }));
    expect(first.body.entries.map((e: { path: string }) => e.path)).toEqual(['/d/a']);
    const next = await call(
      event('GET /v1/by-date/{date}', { limit: '1', cursor: first.body.nextCursor }, { date: '2024-02-01' }),
    );
    expect(next.body.entries.map((e: { path: string }) => e.path)).toEqual(['/d/b']);
  });

  it('rejects dates that do not exist on the calendar with 400', async () => {
    for (const date of ['2024-02-30', '2023-02-29', '2024-04-31', '0000-01-01', '2024-00-10']) {
      const r = await call(event('GET /v1/by-date/{date}', {}, { date }));
      expect(r.status, date).toBe(400);
      expect(r.body.error.message).toMatch(/yyyy-mm-dd/);
    }
    expect((await call(event('GET /v1/by-date/{date}', {}, { date: '2024-02-29' }))).status).toBe(200);
  });

  it('refuses a peer heartbeat whose address has a port no socket can have', async () => {
    const beat = (address: string) =>
      peers({
        ...event('POST /v1/peers/heartbeat'),
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'qa-node', address }),
        requestContext: { requestId: 'r', http: { method: 'POST' } },
      } as unknown as APIGatewayProxyEventV2);
    for (const address of ['10.0.0.1:0', '10.0.0.1:99999', '10.0.0.1:65536']) {
      const r = await beat(address);
      expect(r.statusCode, address).toBe(400);
      expect(JSON.parse(r.body as string).error.message).toMatch(/port must be 1–65535/);
    }
    expect((await beat('10.0.0.1:65535')).statusCode).toBe(200);
  });
});
