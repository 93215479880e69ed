/**
 * Redis through `@upstash/redis` (HTTP), an accelerator only — never the source of truth.
 *
 * Design note. Every call goes through `RedisGuard`, which turns any failure into "no answer"
 * (logged and counted by the caller-supplied hooks) and opens a short circuit breaker so that a
 * Redis outage costs one timed-out request per breaker window, not one per API request. Callers
 * then fall back to PostgreSQL. Requests time out quickly because a cache lookup slower than the
 * database it fronts is worse than no cache.
 */
import { Redis, type Requester } from '@upstash/redis';
import { Pool } from 'undici';

export interface RedisSettings {
  url: string;
  token: string;
  /** Per-request timeout. A warm PostgreSQL probe takes ~1 ms; a cache that hangs longer is useless. */
  timeoutMs?: number;
}

export function createRedis(settings: RedisSettings): Redis {
  const timeoutMs = settings.timeoutMs ?? 500;
  const redis = new Redis({
    url: settings.url,
    token: settings.token,
    // No SDK-level retries: the guard falls back to PostgreSQL instead of waiting.
    retry: false,
    // Values are JSON we wrote ourselves; skip the SDK's per-value JSON.parse guessing.
    automaticDeserialization: false,
    enableTelemetry: false,
    readYourWrites: false,
  });
  // The SDK's transport is WHATWG fetch with a fresh AbortSignal.timeout per request; under load
  // that was most of a Redis hit's CPU (streams, DOMException, timers). Commands only need
  // `request`, so they get a keep-alive undici Pool with undici's own cheap timeouts instead.
  (redis as unknown as { client: Requester }).client = leanRequester(settings.url, settings.token, timeoutMs);
  return redis;
}

/**
 * The Upstash REST protocol over one keep-alive connection pool: POST a JSON command (or an array
 * of them to `/pipeline`), get `{result}` / `[{result|error}]` back. No `Upstash-Encoding: base64`:
 * every value Strata stores is JSON text, which the plain encoding carries unchanged.
 */
export function leanRequester(url: string, token: string, timeoutMs: number): Requester {
  const base = new URL(url);
  const prefix = base.pathname.replace(/\/$/, '');
  // One process serves one request at a time in Lambda; the local stack serves many, and 32
  // sockets to a server on the same machine is ample without letting a burst open hundreds.
  const pool = new Pool(base.origin, { connections: 32, keepAliveTimeout: 30_000 });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  return {
    readYourWrites: false,
    async request<TResult>(req: { path?: string[]; body?: unknown }) {
      const res = await pool.request({
        method: 'POST',
        path: `${prefix}/${(req.path ?? []).join('/')}`,
        headers,
        body: JSON.stringify(req.body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      let body: { result?: TResult; error?: string };
      try {
        body = JSON.parse(text) as { result?: TResult; error?: string };
      } catch (err) {
        throw new Error(`Redis REST answered HTTP ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`, {
          cause: err,
        });
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw new Error(`Redis REST error (HTTP ${res.statusCode}): ${body.error ?? text.slice(0, 200)}`);
      }
      return body;
    },
  };
}

export interface RedisGuardHooks {
  onFailure?: (op: string, err: unknown) => void;
}

/**
 * Wraps a Redis client so that failures are swallowed (after `onFailure`) and a breaker skips
 * Redis entirely for `breakerMs` after a failure.
 */
export class RedisGuard {
  private openUntil = 0;
  failures = 0;
  constructor(
    readonly redis: Redis | undefined,
    private readonly hooks: RedisGuardHooks = {},
    /** Skip Redis this long after a failure: long enough to spare requests the timeout, short enough to notice recovery. */
    private readonly breakerMs = 2000,
  ) {}

  get available(): boolean {
    return this.redis !== undefined && Date.now() >= this.openUntil;
  }

  /** Runs `fn` against Redis; resolves undefined when Redis is absent, broken, or the breaker is open. */
  async run<T>(op: string, fn: (redis: Redis) => Promise<T>): Promise<T | undefined> {
    if (!this.redis || Date.now() < this.openUntil) return undefined;
    try {
      return await fn(this.redis);
    } catch (err) {
      this.failures++;
      this.openUntil = Date.now() + this.breakerMs;
      this.hooks.onFailure?.(op, err);
      return undefined;
    }
  }
}
