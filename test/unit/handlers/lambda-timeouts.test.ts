/**
 * With PostgreSQL unreachable a request waits the pool's connect timeout once (pool.ts
 * isConnectTimeout) and answers 503 with Retry-After — only if its Lambda lives that long: the
 * query Lambda's 10 s were outlasted by 3 retried connects (review note), and the peers Lambda's
 * 5 s by a single one. Every Lambda behind an authenticated route reads the database.
 */
import { describe, expect, it } from 'vitest';
import { CONNECT_TIMEOUT_MS } from '../../../functions/adapters/pg/pool.ts';
import { httpRoutes, lambdas } from '../../../functions/handlers/routes.ts';

describe('Lambda timeouts against the database connect timeout', () => {
  it('every Lambda behind an authenticated route allows the connect timeout twice', () => {
    const behindAuth = [...new Set(httpRoutes.filter((r) => !r.public).map((r) => r.lambda))];
    expect(behindAuth).toContain('query');
    for (const name of behindAuth) {
      expect(lambdas[name].timeoutSeconds * 1000, name).toBeGreaterThanOrEqual(2 * CONNECT_TIMEOUT_MS);
    }
  });
});
