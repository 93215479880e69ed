/**
 * PostgreSQL unreachable (connections hang, as when its address stops answering): the query Lambda
 * must answer 503 with Retry-After before its 10 s timeout. Each connection attempt waits the pool's
 * connect timeout (5 s in AWS); reads retried it 3 times, and a failed cache-epoch read was followed
 * by the request's own read, so the worst case was 4 waits — a Lambda timeout, not a 503 (review
 * note). A connect that timed out is now final. Asserted by counting the connections the
 * unreachable database received, never by time: one per request. Real PostgreSQL behind a TCP
 * proxy that can switch to accepting connections without ever answering.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { parseConfig } from '../../../functions/config.ts';
import { resetMetadataCache } from '../../../functions/handlers/http/cache.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { resolveRequest } from './requests.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let proxy: Server;
let pool: Pool;
/** While true the proxy holds new connections open without a byte (PostgreSQL unreachable). */
let blackhole = false;
/** Connections the proxy held while unreachable. */
let held = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  db = await startTestDb();
  const target = new URL(db.url);
  proxy = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (blackhole) {
      held++;
      return;
    }
    const server = connect(Number(target.port), target.hostname);
    sockets.add(server);
    server.on('close', () => sockets.delete(server));
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.pipe(server).pipe(client);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const via = new URL(db.url);
  via.hostname = '127.0.0.1';
  via.port = String((proxy.address() as { port: number }).port);
  // The API's own settings (STRATA_DB_POOL_MAX, the default 5 s statement and connect timeouts):
  // a shorter connect timeout could fail the first, working request on a loaded machine.
  pool = createPool({ connectionString: via.toString(), max: 2 });
  setDeps({
    config: parseConfig({ STRATA_BUCKET: 'b', STRATA_DATA_PREFIX: 'data/', DATABASE_URL: via.toString() }),
    pool,
    redis: guardRedis(undefined),
  });
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await pool?.end();
  await new Promise((r) => proxy?.close(r));
  await db?.stop();
});

/** Makes PostgreSQL unreachable: open connections are cut, new ones hang. */
async function goUnreachable(): Promise<void> {
  // First let the last request's bookkeeping write (the token's last_used_at) finish, so no
  // connection it opens is counted below.
  await until('the pool to be idle', () => pool.idleCount === pool.totalCount && pool.waitingCount === 0);
  blackhole = true;
  for (const s of sockets) s.destroy();
  await until('the pool to drop its cut connections', () => pool.totalCount === 0);
}

async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function expect503(res: Awaited<ReturnType<typeof resolveRequest>>): void {
  expect(res.statusCode).toBe(503);
  expect(res.headers?.['retry-after']).toBe('1');
  const body = JSON.parse(res.body as string);
  expect(body.error.code).toBe('unavailable');
  expect(body.error.message).toMatch(
    /a backing service \(database or storage\) is unreachable .*retry shortly/,
  );
}

describe('PostgreSQL unreachable', () => {
  it('one connect timeout per request: 503 with Retry-After, token cached or not', async () => {
    // Prepare: a working database; one request caches the token (auth) and reads the epoch.
    const { token } = await createToken(db.pool, { name: 'unreachable', scopes: ['read'] });
    expect((await resolveRequest(token, '/a')).statusCode).toBe(404);
    await goUnreachable();

    // Act 1: a request with the token still cached (5 s; if the machine stalled longer, auth reads
    // PostgreSQL instead, and one wait is still the bound) and a fresh epoch reader, which reads the
    // epoch before the object. Without the fix: the epoch read's wait, then 3 for the object.
    resetMetadataCache();
    const cached = await resolveRequest(token, '/b');
    // Assess 1
    expect503(cached);
    expect(held).toBe(1);

    // Act 2: a token this process has not seen (authentication reads PostgreSQL). Without the
    // fix: 3 waits.
    // Created straight in PostgreSQL, not through the proxy.
    const other = (await createToken(db.pool, { name: 'unseen', scopes: ['read'] })).token;
    held = 0;
    const fresh = await resolveRequest(other, '/c');
    // Assess 2
    expect503(fresh);
    expect(held).toBe(1);
  });
});
