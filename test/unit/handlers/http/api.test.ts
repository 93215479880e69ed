import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RedisGuard } from '../../../../functions/adapters/redis/client.ts';
import { ConflictError, QuotaExceededError, UnavailableError } from '../../../../functions/core/errors.ts';
import { hashSecret } from '../../../../functions/core/tokens.ts';
import {
  assertVisible,
  type Deps,
  forgetToken,
  httpApi,
  parseWith,
  resetDeps,
  respond,
  setDeps,
} from '../../../../functions/handlers/http/index.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

const ID = 'abcdefghijkl';
const SECRET = 'a'.repeat(43);
const TOKEN = `stk_${ID}_${SECRET}`;

/** An in-memory stand-in for the tokens table; counts queries. */
function fakePool(row: Record<string, unknown> | undefined) {
  const calls: string[] = [];
  return {
    calls,
    query: async (text: string) => {
      calls.push(text);
      if (text.startsWith('SELECT') && row) return { rows: [row] };
      return { rows: [] };
    },
  };
}

function tokenRow(over: Record<string, unknown> = {}) {
  return {
    id: ID,
    secret_hash: hashSecret(SECRET),
    scopes: ['read'],
    prefixes: ['/team-a/'],
    expires_at: null,
    revoked_at: null,
    ...over,
  };
}

function event(routeKey: string, init: Partial<APIGatewayProxyEventV2> & { token?: string | null } = {}) {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (init.token !== null) headers.Authorization = `Bearer ${init.token ?? TOKEN}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: routeKey.split(' ')[1],
    rawQueryString: '',
    headers,
    queryStringParameters: init.queryStringParameters,
    pathParameters: init.pathParameters,
    body: init.body,
    isBase64Encoded: false,
    requestContext: { requestId: 'req-1', http: { method: routeKey.split(' ')[0] } },
  } as unknown as APIGatewayProxyEventV2;
}

function use(row: Record<string, unknown> | undefined) {
  const pool = fakePool(row);
  setDeps({
    pool: pool as unknown as Deps['pool'],
    redis: new RedisGuard(undefined),
    config: {} as Deps['config'],
  });
  return pool;
}

afterEach(() => {
  resetDeps();
  forgetToken(ID);
});

const api = httpApi({
  'GET /v1/thing': {
    scope: 'read',
    handler: async (req) => {
      const q = parseWith(
        z.object({ path: z.string(), limit: z.coerce.number().int().max(10).default(5) }),
        req.query,
        'query',
      );
      assertVisible(req.principal, q.path);
      return { path: q.path, limit: q.limit, principal: req.principal.tokenId };
    },
  },
  'POST /v1/thing': { scope: 'write', handler: async (req) => respond(201, { got: req.body }) },
  'GET /v1/boom': async () => {
    throw new Error('secret internals: password=hunter2');
  },
  'GET /v1/quota': async () => {
    throw new QuotaExceededError('over quota', 42);
  },
  'GET /v1/conflict': async () => {
    throw new ConflictError('exists');
  },
  'GET /v1/down': async () => {
    throw new UnavailableError('db down');
  },
  'GET /health': { scope: 'public', handler: async () => ({ ok: true }) },
});

async function call(e: APIGatewayProxyEventV2) {
  const res = await api(e);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, headers: res.headers };
}

describe('httpApi', () => {
  it('serves a valid request with parsed query and principal', async () => {
    use(tokenRow());
    const r = await call(
      event('GET /v1/thing', { queryStringParameters: { path: '/team-a/x', limit: '3' } }),
    );
    expect(r).toMatchObject({ status: 200, body: { path: '/team-a/x', limit: 3, principal: ID } });
  });

  it('answers 401 without a token, for an unknown token, and for revoked/expired tokens', async () => {
    use(tokenRow());
    expect((await call(event('GET /v1/thing', { token: null }))).status).toBe(401);
    expect((await call(event('GET /v1/thing', { token: `stk_${ID}_${'b'.repeat(43)}` }))).status).toBe(401);
    expect((await call(event('GET /v1/thing', { token: 'nonsense' }))).body.error.code).toBe('unauthorized');
    use(tokenRow({ id: 'revokedtoken', revoked_at: new Date() }));
    const revoked = await call(event('GET /v1/thing', { token: `stk_revokedtoken_${SECRET}` }));
    expect(revoked.status).toBe(401);
    expect(revoked.body.error.message).toMatch(/revoked/);
    use(tokenRow({ id: 'expiredtoken', expires_at: new Date(Date.now() - 1000) }));
    const expired = await call(event('GET /v1/thing', { token: `stk_expiredtoken_${SECRET}` }));
    expect(expired.body.error.message).toMatch(/expired/);
  });

  it('answers 403 for a missing scope and 404 (not 403) outside the prefixes', async () => {
    use(tokenRow());
    const post = await call(event('POST /v1/thing', { body: '{}' }));
    expect(post.status).toBe(403);
    expect(post.body.error.message).toMatch(/write/);
    const outside = await call(event('GET /v1/thing', { queryStringParameters: { path: '/team-b/x' } }));
    expect(outside.status).toBe(404);
    expect(outside.body.error.message).not.toMatch(/team-a/);
  });

  it('turns zod issues into a 400 naming the field', async () => {
    use(tokenRow());
    const r = await call(
      event('GET /v1/thing', { queryStringParameters: { path: '/team-a/x', limit: '99' } }),
    );
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/query\.limit/);
  });

  it('rejects a non-JSON body with 400 and passes explicit statuses through', async () => {
    use(tokenRow({ scopes: ['admin'] }));
    expect((await call(event('POST /v1/thing', { body: '{nope' }))).status).toBe(400);
    const ok = await call(event('POST /v1/thing', { body: '{"a":1}' }));
    expect(ok).toMatchObject({ status: 201, body: { got: { a: 1 } } });
  });

  it('maps typed errors once and hides internals of unknown errors', async () => {
    use(tokenRow({ scopes: ['admin'] }));
    const boom = await call(event('GET /v1/boom'));
    expect(boom.status).toBe(500);
    expect(boom.body.error.code).toBe('internal');
    expect(boom.body.error.message).toContain('req-1');
    expect(JSON.stringify(boom.body)).not.toContain('hunter2');
    const quota = await call(event('GET /v1/quota'));
    expect(quota).toMatchObject({
      status: 413,
      body: { error: { code: 'quota_exceeded', remainingBytes: 42 } },
    });
    expect((await call(event('GET /v1/conflict'))).status).toBe(409);
    const down = await call(event('GET /v1/down'));
    expect(down.status).toBe(503);
    expect(down.headers?.['retry-after']).toBe('1');
    expect((await call(event('GET /v1/nothing'))).status).toBe(404);
  });

  it('serves public routes without a token and without touching the database', async () => {
    const pool = use(undefined);
    expect(await call(event('GET /health', { token: null }))).toMatchObject({
      status: 200,
      body: { ok: true },
    });
    expect(pool.calls).toHaveLength(0);
  });
});
