/**
 * The local API Gateway: a node:http server on 127.0.0.1 that turns requests into API Gateway
 * HTTP API (payload format 2.0) events for the handler that owns the route in routes.ts, and maps
 * the handler's result back to HTTP the way API Gateway does. No maintained package does this
 * faithfully (design.md §4), hence this file.
 *
 * Faithful in the details handlers notice: `rawPath`/`rawQueryString` as sent; repeated query
 * parameters and headers comma-joined; header names lower-cased; cookies moved from the `cookie`
 * header into `cookies`; non-text bodies base64-encoded with `isBase64Encoded`; a result without
 * `statusCode` becomes a 200 JSON response; `cookies` in a result become `set-cookie` headers; an
 * unhandled handler error is API Gateway's 500 `{"message":"Internal Server Error"}`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { HttpRoute, LambdaName } from '../functions/handlers/routes.ts';
import { readBody, sendJson } from './http-util.ts';
import { HandlerMissingError } from './lambda-runtime.ts';

export interface HttpAdapterOptions {
  routes: HttpRoute[];
  invoke: (lambda: LambdaName, event: APIGatewayProxyEventV2) => Promise<unknown>;
  /** 0 = a free port. */
  port?: number;
  log?: (fields: Record<string, unknown>) => void;
}

export interface HttpAdapter {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface CompiledRoute {
  route: HttpRoute;
  method: string;
  segments: string[];
  /** Per segment: the path parameter's name, or undefined for a literal (parsed once, not per request). */
  params: Array<string | undefined>;
  hasParams: boolean;
}

export function compileRoutes(routes: HttpRoute[]): CompiledRoute[] {
  return routes.map((route) => {
    const [method, path] = route.routeKey.split(' ') as [string, string];
    const segments = path.split('/').slice(1);
    const params = segments.map((seg) => /^\{(\w+)\}$/.exec(seg)?.[1]);
    return { route, method, segments, params, hasParams: params.some((p) => p !== undefined) };
  });
}

/** Finds the route for a method and raw path; path parameters match exactly one segment. */
export function matchRoute(
  compiled: CompiledRoute[],
  method: string,
  rawPath: string,
): { route: HttpRoute; pathParameters?: Record<string, string> } | undefined {
  const parts = rawPath.split('/').slice(1);
  for (const c of compiled) {
    if (c.method !== method && c.method !== 'ANY') continue;
    if (c.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      const got = parts[i] as string;
      const param = c.params[i];
      if (param !== undefined) {
        if (got.length === 0) ok = false;
        else params[param] = safeDecode(got);
      } else ok = c.segments[i] === got;
    }
    if (ok) return { route: c.route, ...(c.hasParams ? { pathParameters: params } : {}) };
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const TEXT_TYPES = [
  /^text\//,
  /^application\/(json|xml|javascript|x-www-form-urlencoded)\b/,
  /\+(json|xml)\b/,
];

export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const ct = contentType.toLowerCase();
  return TEXT_TYPES.some((re) => re.test(ct));
}

export function buildEvent(input: {
  method: string;
  rawUrl: string;
  rawHeaders: string[];
  body: Buffer;
  sourceIp: string;
  domainName: string;
  httpVersion: string;
  routeKey: string;
  pathParameters?: Record<string, string>;
  now?: Date;
}): APIGatewayProxyEventV2 {
  const q = input.rawUrl.indexOf('?');
  const rawPath = q >= 0 ? input.rawUrl.slice(0, q) : input.rawUrl;
  const rawQueryString = q >= 0 ? input.rawUrl.slice(q + 1) : '';

  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i < input.rawHeaders.length; i += 2) {
    const name = (input.rawHeaders[i] as string).toLowerCase();
    const value = input.rawHeaders[i + 1] as string;
    if (name === 'cookie') {
      cookies.push(
        ...value
          .split(';')
          .map((c) => c.trim())
          .filter(Boolean),
      );
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }

  let queryStringParameters: Record<string, string> | undefined;
  if (rawQueryString) {
    queryStringParameters = {};
    for (const [k, v] of new URLSearchParams(rawQueryString)) {
      queryStringParameters[k] = k in queryStringParameters ? `${queryStringParameters[k]},${v}` : v;
    }
  }

  const now = input.now ?? new Date();
  const requestId = randomUUID();
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: input.routeKey,
    rawPath,
    rawQueryString,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(queryStringParameters ? { queryStringParameters } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: input.domainName,
      domainPrefix: input.domainName.split('.')[0]?.split(':')[0] ?? 'local',
      http: {
        method: input.method,
        path: rawPath,
        protocol: `HTTP/${input.httpVersion}`,
        sourceIp: input.sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: input.routeKey,
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    ...(input.pathParameters ? { pathParameters: input.pathParameters } : {}),
    isBase64Encoded: false,
  };
  if (input.body.length > 0) {
    if (isTextContentType(headers['content-type'])) event.body = input.body.toString('utf8');
    else {
      event.body = input.body.toString('base64');
      event.isBase64Encoded = true;
    }
  }
  return event;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** API Gateway's `requestContext.time` format: `12/Mar/2020:19:03:58 +0000`. */
function apiGatewayTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(
    d.getUTCMinutes(),
  )}:${p(d.getUTCSeconds())} +0000`;
}

export interface MappedResponse {
  statusCode: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/** API Gateway's interpretation of a payload-format-2.0 handler result. */
export function mapResult(result: unknown): MappedResponse {
  const looksStructured =
    typeof result === 'object' && result !== null && !Array.isArray(result) && 'statusCode' in result;
  if (!looksStructured) {
    // A result without statusCode is the body itself: a string as is, anything else as JSON.
    const body =
      result === undefined || result === null
        ? ''
        : typeof result === 'string'
          ? result
          : JSON.stringify(result);
    return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(body) };
  }
  const r = result as APIGatewayProxyStructuredResultV2;
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  if (r.cookies && r.cookies.length > 0) headers['set-cookie'] = r.cookies;
  const raw = r.body ?? '';
  const body = r.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  return { statusCode: Number(r.statusCode ?? 200), headers, body };
}

export async function startHttpAdapter(options: HttpAdapterOptions): Promise<HttpAdapter> {
  const compiled = compileRoutes(options.routes);
  const log = options.log ?? (() => {});
  const server: Server = createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      log({ event: 'http_adapter_error', error: (err as Error).message });
      if (!res.headersSent) sendJson(res, 500, { message: 'Internal Server Error' });
      else res.destroy();
    });
  });

  // server.address() is a getsockname(2) system call: read it once after listen, not per request.
  let boundPort = 0;
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const match = matchRoute(compiled, method, rawPath);
    if (!match) {
      req.resume();
      return sendJson(res, 404, {
        error: {
          code: 'not_found',
          message: `no route for ${method} ${rawPath}; see functions/handlers/routes.ts`,
        },
      });
    }
    const body = await readBody(req);
    if (!body) return sendJson(res, 413, { message: 'Request Entity Too Large' });
    const event = buildEvent({
      method,
      rawUrl,
      rawHeaders: req.rawHeaders,
      body,
      sourceIp: req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1',
      domainName: req.headers.host ?? `127.0.0.1:${boundPort}`,
      httpVersion: req.httpVersion,
      routeKey: match.route.routeKey,
      pathParameters: match.pathParameters,
    });
    let result: unknown;
    try {
      result = await options.invoke(match.route.lambda, event);
    } catch (err) {
      if (err instanceof HandlerMissingError) {
        return sendJson(res, 501, {
          error: {
            code: 'not_implemented',
            message: `${match.route.routeKey} is served by ${err.entry}, which does not exist yet`,
          },
        });
      }
      log({
        event: 'handler_error',
        lambda: match.route.lambda,
        routeKey: match.route.routeKey,
        requestId: event.requestContext.requestId,
        error: (err as Error).message,
      });
      return sendJson(res, 500, { message: 'Internal Server Error' });
    }
    const mapped = mapResult(result);
    res.writeHead(mapped.statusCode, { ...mapped.headers, 'content-length': mapped.body.length });
    res.end(method === 'HEAD' ? undefined : mapped.body);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  boundPort = port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
