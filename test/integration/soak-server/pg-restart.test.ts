/**
 * PostgreSQL restarted under load: the API's pool recovers by itself (no process restart), requests
 * during the outage are 503 with Retry-After (never 500, never hung), and afterwards every request
 * succeeds and the pool is back at its baseline. A real stop and start of the embedded server on
 * the same data directory and port, while requests keep coming.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../../functions/adapters/pg/migrate.ts';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { parseConfig } from '../../../functions/config.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { freePort } from '../../../local/ports.ts';
import { type LocalPostgres, type PostgresOptions, startPostgres } from '../../../local/postgres.ts';
import { resolveRequest } from './requests.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

// An external server (DATABASE_URL) is not ours to restart.
const external = process.env.DATABASE_URL
  ? 'DATABASE_URL names an external server this test cannot restart'
  : '';
let dir: string;
let options: PostgresOptions;
let server: LocalPostgres | undefined;
let pool: Pool;
let token: string;

beforeAll(async () => {
  if (external) return;
  dir = await mkdtemp(join(tmpdir(), 'strata-pg-restart-'));
  options = {
    dataDir: join(dir, 'pg'),
    persist: true,
    port: await freePort(),
    sharedBuffers: '16MB',
    log: () => {},
  };
  server = await startPostgres(options);
  pool = createPool({
    connectionString: server.url,
    max: 2,
    statementTimeoutMs: 5000,
    connectionTimeoutMs: 2000,
  });
  await migrate(pool);
  token = (await createToken(pool, { name: 'restart', scopes: ['read'] })).token;
  setDeps({
    config: parseConfig({ STRATA_BUCKET: 'b', STRATA_DATA_PREFIX: 'data/', DATABASE_URL: server.url }),
    pool,
    redis: guardRedis(undefined),
  });
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

let n = 0;
const resolve = () => resolveRequest(token, `/r/${++n}`);

async function until(what: string, fn: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(external)('PostgreSQL restarted under load', () => {
  it('503 while down, served again after, pool at baseline — same process, same pool', async () => {
    const seen: Array<{ code: number; phase: string }> = [];
    let phase = 'before';
    let running = true;
    // Four clients in a loop, as a busy API would be.
    const clients = Array.from({ length: 4 }, async () => {
      while (running) {
        const res = await resolve();
        seen.push({ code: res.statusCode ?? 0, phase });
        if (res.statusCode !== 404 && res.statusCode !== 503)
          throw new Error(`unexpected ${res.statusCode}: ${res.body}`);
        if (res.statusCode === 503) expect(res.headers?.['retry-after']).toBe('1');
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    await until('requests served before the restart', () => seen.some((s) => s.code === 404));

    phase = 'down';
    await server?.stop();
    await until('a request refused while the server is down', () =>
      seen.some((s) => s.phase === 'down' && s.code === 503),
    );
    server = await startPostgres(options);
    phase = 'up';
    await until('requests served again after the restart', () =>
      seen.some((s) => s.phase === 'up' && s.code === 404),
    );
    running = false;
    await Promise.all(clients);

    // After recovery: every request served, nothing checked out or waiting, never above max.
    for (let i = 0; i < 20; i++) expect((await resolve()).statusCode).toBe(404);
    await until('pool at rest', () => pool.waitingCount === 0 && pool.idleCount === pool.totalCount);
    expect(pool.totalCount).toBeLessThanOrEqual(2);
  });
});
