/**
 * A small server speaking Upstash Redis's REST protocol in front of a real redis-server, so
 * `@upstash/redis` (what the Lambdas use) talks to real Redis locally and in tests (design.md §4).
 *
 * Protocol, as the @upstash/redis client uses it:
 * - `POST /` with a JSON command array (`["SET","k","v"]`) → `{"result": …}`; a Redis error is HTTP
 *   400 `{"error": "ERR …"}` (the client throws on non-2xx).
 * - `POST /pipeline` and `POST /multi-exec` with an array of command arrays → HTTP 200 and an array
 *   of `{"result"}` / `{"error"}` per command, in order (errors inside a pipeline do not fail it).
 * - The path form: `GET|POST /set/k/v` (segments are URL-decoded arguments; a POST body is appended
 *   as the last argument).
 * - `Authorization: Bearer <token>` (or `?_token=`); anything else is 401 `{"error":"Unauthorized"}`.
 * - `Upstash-Encoding: base64` (the client's default): every string in a result is base64 of its
 *   UTF-8 bytes, except the status reply `OK`, which the client expects verbatim.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis, Command as RedisCommand } from 'ioredis';
import { MAX_BODY_BYTES, readBody, sendJson as send } from './http-util.ts';

export interface UpstashAdapter {
  url: string;
  token: string;
  close(): Promise<void>;
}

type Command = [string, ...(string | number)[]];

export async function startUpstashAdapter(options: {
  redisUrl: string;
  token: string;
}): Promise<UpstashAdapter> {
  // maxRetriesPerRequest: a stopped Redis should surface as an error response, not hang a request.
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
  redis.on('error', () => {}); // surfaced per request; avoid unhandled 'error' events
  const server: Server = createServer((req, res) => {
    handle(redis, options.token, req, res).catch((err: unknown) => {
      send(res, 500, { error: `adapter error: ${(err as Error).message}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token: options.token,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      redis.disconnect();
    },
  };
}

async function handle(redis: Redis, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (!authorized(req, url, token)) return send(res, 401, { error: 'Unauthorized' });
  const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
  const raw = await readBody(req);
  if (raw === undefined) return send(res, 413, { error: `request body larger than ${MAX_BODY_BYTES} bytes` });
  const path = url.pathname.replace(/\/+$/, '');

  if (path === '/pipeline' || path === '/multi-exec') {
    if (req.method !== 'POST') return send(res, 405, { error: `${path} accepts POST only` });
    const commands = parseCommands(raw, true) as Command[] | string;
    if (typeof commands === 'string') return send(res, 400, { error: commands });
    const results = path === '/pipeline' ? await pipeline(redis, commands) : await multiExec(redis, commands);
    if (typeof results === 'string') return send(res, 400, { error: results });
    return send(
      res,
      200,
      results.map((r) => ('error' in r ? r : { result: encode(r.result, base64) })),
    );
  }

  let command: Command | string;
  if (path === '' && req.method === 'POST') command = parseCommands(raw, false) as Command | string;
  else {
    const args = path
      .split('/')
      .filter((s) => s.length > 0)
      .map((s) => decodeURIComponent(s));
    if (req.method === 'POST' && raw.length > 0) args.push(raw.toString('utf8'));
    command = args.length > 0 ? (args as Command) : 'empty command';
  }
  if (typeof command === 'string') return send(res, 400, { error: command });
  try {
    const result = await redis.sendCommand(rawCommand(command));
    return send(res, 200, { result: encode(result, base64) });
  } catch (err) {
    return send(res, 400, { error: (err as Error).message });
  }
}

function authorized(req: IncomingMessage, url: URL, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : (url.searchParams.get('_token') ?? '');
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function parseCommands(raw: Buffer, many: boolean): Command[] | Command | string {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return 'request body is not JSON; send a command as a JSON array, e.g. ["GET","key"]';
  }
  const isCommand = (c: unknown): c is Command =>
    Array.isArray(c) &&
    c.length > 0 &&
    typeof c[0] === 'string' &&
    c.every((a) => typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean');
  if (!many) return isCommand(body) ? body : 'expected a JSON array command such as ["GET","key"]';
  if (!Array.isArray(body) || body.length === 0 || !body.every(isCommand))
    return 'expected a non-empty JSON array of command arrays such as [["SET","k","v"],["GET","k"]]';
  return body;
}

type Outcome = { result: unknown } | { error: string };
/** ioredis pipelines queue Command objects through sendCommand; its typings omit it. */
type CommandQueue = { sendCommand(c: RedisCommand): unknown };

async function pipeline(redis: Redis, commands: Command[]): Promise<Outcome[]> {
  const p = redis.pipeline();
  for (const c of commands) (p as unknown as CommandQueue).sendCommand(rawCommand(c));
  const replies = (await p.exec()) ?? [];
  return replies.map(([err, result]) => (err ? { error: err.message } : { result }));
}

async function multiExec(redis: Redis, commands: Command[]): Promise<Outcome[] | string> {
  const m = redis.multi();
  for (const c of commands) (m as unknown as CommandQueue).sendCommand(rawCommand(c));
  try {
    const replies = await m.exec();
    if (!replies) return 'transaction aborted';
    return replies.map(([err, result]) => (err ? { error: err.message } : { result }));
  } catch (err) {
    // A command rejected while queueing aborts the whole transaction (EXECABORT), as in Redis.
    return (err as Error).message;
  }
}

/**
 * A command whose reply is passed through as Redis sent it. ioredis reshapes some replies (HGETALL
 * → an object, XREAD, HRANDFIELD …); the REST protocol sends Redis's own arrays, which is what
 * @upstash/redis deserializes.
 */
function rawCommand(c: Command): RedisCommand {
  const cmd = new RedisCommand(c[0].toLowerCase(), c.slice(1).map(String));
  (cmd as unknown as { transformReply: (r: unknown) => unknown }).transformReply = toText;
  return cmd;
}

function toText(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (Array.isArray(value)) return value.map(toText);
  return value;
}

function encode(value: unknown, base64: boolean): unknown {
  if (!base64) return value;
  if (typeof value === 'string')
    return value === 'OK' ? value : Buffer.from(value, 'utf8').toString('base64');
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (Array.isArray(value)) return value.map((v) => encode(v, base64));
  return value;
}
