/**
 * PostgreSQL down (QA sweep 2): a request that cannot reach the database is a 503 with
 * Retry-After and a message saying to retry — it used to be a 500 "internal error", which reads
 * as a bug and hides that a retry will do. Real pg client against a port nothing listens on; the
 * unit of the mapping (pg SQLSTATEs) alongside.
 */
import { createServer } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import { parseConfig } from '../../../functions/config.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { mapError } from '../../../functions/handlers/http/errors.ts';
import { handler as query } from '../../../functions/handlers/query.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let pool: Pool;

beforeAll(async () => {
  // A port that was free a moment ago: connecting to it is refused.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  pool = createPool({
    connectionString: `postgres://u:p@127.0.0.1:${port}/db`,
    max: 1,
    statementTimeoutMs: 1000,
  });
  setDeps({
    config: parseConfig({
      STRATA_BUCKET: 'b',
      STRATA_DATA_PREFIX: 'data/',
      DATABASE_URL: 'postgres://unused',
    }),
    pool,
    redis: guardRedis(undefined),
  });
});

afterAll(async () => {
  await pool?.end();
});

describe('database unreachable', () => {
  it('answers 503 with Retry-After and a message to retry, not a 500', async () => {
    const token = `stk_${'a'.repeat(12)}_${'b'.repeat(43)}`;
    const res = await query({
      version: '2.0',
      routeKey: 'GET /v1/resolve',
      rawPath: '/v1/resolve',
      headers: { authorization: `Bearer ${token}` },
      queryStringParameters: { path: '/x' },
      requestContext: { requestId: 'r-down', http: { method: 'GET' } },
    } as unknown as APIGatewayProxyEventV2);
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['retry-after']).toBe('1');
    const body = JSON.parse(res.body as string);
    expect(body.error.code).toBe('unavailable');
    expect(body.error.message).toMatch(/unreachable \(ECONNREFUSED\); retry shortly.*r-down/);
    // Nothing about the connection string leaks into the answer.
    expect(res.body).not.toMatch(/postgres:|u:p@/);
  });

  it('maps PostgreSQL shutdown / too-many-connections states to 503 and anything else to 500', () => {
    for (const code of ['57P01', '57P03', '53300', '08006']) {
      expect(mapError(Object.assign(new Error('x'), { code }), 'r').response.statusCode, code).toBe(503);
    }
    expect(mapError(new Error('timeout exceeded when trying to connect'), 'r').response.statusCode).toBe(503);
    expect(mapError(Object.assign(new Error('syntax'), { code: '42601' }), 'r').response.statusCode).toBe(
      500,
    );
    expect(mapError(new TypeError('bug'), 'r').response.statusCode).toBe(500);
  });
});
