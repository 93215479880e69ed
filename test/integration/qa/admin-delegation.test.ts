/**
 * Admin delegation limits (QA sweep 2). A prefix-limited admin token and the reconcile API: it used to start runs over the
 * whole index or another team's tree, and read any run's report (whose samples name paths). Now it
 * reconciles inside its prefixes only, and other runs are 404 to it. An expiring admin token used
 * to mint tokens without expiry (outliving itself); now what it mints expires by its own expiry. Real PostgreSQL for tokens and runs;
 * the S3 listing and the shard queue are the core's in-memory implementations.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgRunLedger } from '../../../functions/adapters/pg/reconcile-store.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { parseConfig } from '../../../functions/config.ts';
import { MemoryListing, MemoryQueue } from '../../../functions/core/reconcile/memory.ts';
import { handler as adminApi } from '../../../functions/handlers/admin.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { handler } from '../../../functions/handlers/reconcile-api.ts';
import { setReconcileWiring } from '../../../functions/handlers/reconcile-wiring.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let admin: string;
let teamA: string;
const config = parseConfig({
  STRATA_BUCKET: 'b',
  STRATA_DATA_PREFIX: 'data/',
  DATABASE_URL: 'postgres://unused',
});

beforeAll(async () => {
  db = await startTestDb();
  admin = (await createToken(db.pool, { name: 'admin', scopes: ['admin'] })).token;
  teamA = (await createToken(db.pool, { name: 'a', scopes: ['admin'], prefixes: ['/team-a'] })).token;
  setDeps({ config, pool: db.pool, redis: guardRedis(undefined) });
  const listing = new MemoryListing();
  listing.put('data/team-a/x', 'e1', 1);
  listing.put('data/team-b/secret', 'e2', 2);
  setReconcileWiring({
    config,
    listing,
    ledger: new PgRunLedger(db.pool, 'data/'),
    queue: new MemoryQueue(),
  });
});

afterAll(async () => {
  await db?.stop();
});

async function call(
  routeKey: string,
  token: string,
  opts: { body?: unknown; id?: string; api?: typeof handler } = {},
) {
  const res = await (opts.api ?? handler)({
    version: '2.0',
    routeKey,
    rawPath: routeKey.split(' ')[1],
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    pathParameters: opts.id ? { id: opts.id } : undefined,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    requestContext: { requestId: 'r', http: { method: routeKey.split(' ')[0] } },
  } as unknown as APIGatewayProxyEventV2);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body as string) : undefined };
}

describe('reconcile API with a prefix-limited admin', () => {
  it('starts runs inside its prefixes only', async () => {
    const other = await call('POST /v1/reconcile', teamA, { body: { prefix: '/team-b', dryRun: true } });
    expect(other.status).toBe(404);
    const everything = await call('POST /v1/reconcile', teamA, { body: { dryRun: true } });
    expect(everything.status).toBe(400);
    expect(everything.body.error.message).toMatch(/limited to \/team-a.*--prefix/);
    const own = await call('POST /v1/reconcile', teamA, { body: { prefix: '/team-a/', dryRun: true } });
    expect(own.status).toBe(202);
    expect(own.body.scope).toBe('/team-a');
    expect((await call('GET /v1/reconcile/{id}', teamA, { id: own.body.id })).status).toBe(200);
  });

  it('cannot read a run outside its prefixes; an unrestricted admin reads every run', async () => {
    const whole = await call('POST /v1/reconcile', admin, { body: { dryRun: true } });
    expect(whole.status).toBe(202);
    const seen = await call('GET /v1/reconcile/{id}', teamA, { id: whole.body.id });
    expect(seen.status).toBe(404);
    expect(seen.body.error.message).toMatch(/no reconcile run/);
    expect((await call('GET /v1/reconcile/{id}', admin, { id: whole.body.id })).status).toBe(200);
  });
});

describe('token minting by an expiring admin token', () => {
  it('cannot create a token that outlives it; one expiring by then is fine', async () => {
    const shortLived = (
      await createToken(db.pool, {
        name: 'temp',
        scopes: ['admin'],
        expiresAt: new Date(Date.now() + 3600_000),
      })
    ).token;
    const mint = (body: Record<string, unknown>) =>
      call('POST /v1/tokens', shortLived, {
        api: adminApi,
        body: { name: 'child', scopes: ['read'], ...body },
      });
    const forever = await mint({});
    expect(forever.status).toBe(403);
    expect(forever.body.error.message).toMatch(/expires at .*--expires/);
    expect((await mint({ expiresInSeconds: 7 * 86400 })).status).toBe(403);
    expect((await mint({ expiresInSeconds: 600 })).status).toBe(201);
    // A token without expiry still mints tokens without expiry.
    expect(
      (await call('POST /v1/tokens', admin, { api: adminApi, body: { name: 'c', scopes: ['read'] } })).status,
    ).toBe(201);
  });
});
