/**
 * The one HTTP edge for every API Lambda (query, uploads, admin, reconcile API, peers).
 *
 * Design note / usage:
 *
 * ```ts
 * import { httpApi, respond } from './http/index.ts';
 * export const handler = httpApi({
 *   'GET /v1/resolve': { scope: 'read', handler: async (req) => resolve(req.deps, req.principal, req.query) },
 *   'POST /v1/uploads': { scope: 'write', handler: async (req) => respond(201, await start(req.body)) },
 *   'GET /health': { scope: 'public', handler: async () => ({ ok: true }) },
 * });
 * ```
 *
 * - A route is `{ scope, handler }` (or a bare handler: GET/HEAD need `read`, other methods
 *   `write`). `scope: 'public'` skips authentication (principal is then `ANONYMOUS`).
 * - `req` carries lower-cased `headers`, `query` and path `params` as strings, the JSON `body`
 *   (already parsed; a non-JSON body is a 400), the authenticated `principal`
 *   ({tokenId, scopes, prefixes}), the `requestId`, and `deps` (pool, s3, redis, config; created at
 *   cold start, replaced in tests with `setDeps`).
 * - Validate with `parseWith(zodSchema, req.query, 'query')`; enforce path visibility with
 *   `assertVisible(req.principal, path)` (404 outside the token's prefixes, never 403).
 * - Return any JSON value for a 200, or `respond(status, body, headers)` for anything else.
 * - Throw typed errors from functions/core/errors.ts; `mapError` (errors.ts) turns them into
 *   `{"error":{"code","message"}}` with 400/401/403/404/409/412/413/503, and anything unexpected
 *   into a 500 that carries the request id and no internals (the full error is logged).
 *
 * Middy runs the pipeline: the `strata-http` middleware resolves the route and principal in
 * `before`, serializes in `after`, and maps errors in `onError` — the only place HTTP errors are made.
 */
import middy from '@middy/core';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context as LambdaContext,
} from 'aws-lambda';
import type { Scope } from '../../core/api-types.ts';
import type { Principal } from '../../core/auth.ts';
import { requireScope } from '../../core/auth.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { Metric } from '../../core/metrics.ts';
import { authenticate } from './auth.ts';
import { type Deps, deps as defaultDeps } from './deps.ts';
import { jsonResponse, mapError } from './errors.ts';
import { getLogger, getMetrics } from './observability.ts';

export interface ApiRequest {
  routeKey: string;
  method: string;
  rawPath: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  params: Record<string, string>;
  /** Parsed JSON body (undefined when there is none). */
  body: unknown;
  principal: Principal;
  requestId: string;
  deps: Deps;
  /** Aborted shortly before the Lambda times out. */
  signal?: AbortSignal;
}

export type RouteHandler = (req: ApiRequest) => Promise<unknown>;
export interface RouteDef {
  scope: Scope | 'public';
  handler: RouteHandler;
}
export type Routes = Record<string, RouteDef | RouteHandler>;

export const ANONYMOUS: Principal = Object.freeze({
  tokenId: 'anonymous',
  scopes: [],
  prefixes: [],
}) as Principal;

const RESULT = Symbol('strata.httpResult');
export interface HttpResult {
  [RESULT]: true;
  statusCode: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A response with an explicit status (201, 204, …) or headers. */
export function respond(statusCode: number, body?: unknown, headers?: Record<string, string>): HttpResult {
  return { [RESULT]: true, statusCode, body, headers };
}

function isHttpResult(value: unknown): value is HttpResult {
  return typeof value === 'object' && value !== null && RESULT in value;
}

export interface HttpApiOptions {
  /** Clients for the handlers; defaults to the cold-start singletons of deps.ts. */
  deps?: () => Deps;
}

type Internal = { route?: RouteDef; req?: ApiRequest };
const INTERNAL = Symbol('strata.http.internal');

function lowerHeaders(headers: Record<string, string | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (v !== undefined) out[k.toLowerCase()] = v;
  return out;
}

function parseBody(event: APIGatewayProxyEventV2, headers: Record<string, string>): unknown {
  if (event.body === undefined || event.body === null || event.body === '') return undefined;
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  const type = headers['content-type'] ?? 'application/json';
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new ValidationError(`unsupported content-type "${type}": send application/json`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`request body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function defaultScope(routeKey: string): Scope {
  const method = routeKey.split(' ')[0];
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
}

export function httpApi(routes: Routes, options: HttpApiOptions = {}) {
  const table = new Map<string, RouteDef>();
  for (const [key, def] of Object.entries(routes)) {
    table.set(key, typeof def === 'function' ? { scope: defaultScope(key), handler: def } : def);
  }
  const getDeps = options.deps ?? defaultDeps;

  const edge: middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
    before: async (request) => {
      const internal: Internal = {};
      // middy gives the handler only (event, context): hand it the resolved route through a
      // symbol on the per-invocation context object.
      (request.context as unknown as { [INTERNAL]?: Internal })[INTERNAL] = internal;
      const event = request.event;
      const requestId = event.requestContext?.requestId ?? request.context.awsRequestId ?? 'unknown';
      const route = table.get(event.routeKey);
      if (!route) throw new NotFoundError(`no such route: ${event.routeKey}`);
      const headers = lowerHeaders(event.headers);
      const d = getDeps();
      let principal = ANONYMOUS;
      if (route.scope !== 'public') {
        principal = await authenticate(d.pool, headers);
        requireScope(principal, route.scope);
      }
      const query: Record<string, string> = {};
      for (const [k, v] of Object.entries(event.queryStringParameters ?? {}))
        if (v !== undefined) query[k] = v;
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(event.pathParameters ?? {})) if (v !== undefined) params[k] = v;
      internal.route = route;
      internal.req = {
        routeKey: event.routeKey,
        method: event.requestContext?.http?.method ?? event.routeKey.split(' ')[0] ?? 'GET',
        rawPath: event.rawPath,
        headers,
        query,
        params,
        body: parseBody(event, headers),
        principal,
        requestId,
        deps: d,
      };
    },
    after: async (request) => {
      const result = request.response as unknown;
      if (isHttpResult(result)) {
        request.response =
          result.body === undefined
            ? { statusCode: result.statusCode, headers: { 'cache-control': 'no-store', ...result.headers } }
            : jsonResponse(result.statusCode, result.body, result.headers);
      } else {
        request.response = jsonResponse(200, result ?? {});
      }
    },
    onError: async (request) => {
      const requestId = request.event.requestContext?.requestId ?? request.context.awsRequestId ?? 'unknown';
      const mapped = mapError(request.error, requestId);
      if (mapped.internal) {
        getLogger().error('request failed', {
          routeKey: request.event.routeKey,
          requestId,
          error: request.error as Error,
        });
        getMetrics().addMetric(Metric.ApiErrors, 'Count', 1);
      }
      request.response = mapped.response;
    },
  };

  const core = async (
    _event: APIGatewayProxyEventV2,
    context: LambdaContext,
    opts?: { signal: AbortSignal },
  ): Promise<APIGatewayProxyStructuredResultV2> => {
    const internal = (context as unknown as { [INTERNAL]?: Internal })[INTERNAL];
    if (!internal?.route || !internal.req) throw new Error('strata-http middleware did not run');
    internal.req.signal = opts?.signal;
    return (await internal.route.handler(internal.req)) as APIGatewayProxyStructuredResultV2;
  };

  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(core).use(edge);
  return async (event: APIGatewayProxyEventV2, context?: Partial<LambdaContext>) => {
    const metrics = getMetrics();
    try {
      return await handler(event, (context ?? {}) as LambdaContext);
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}
