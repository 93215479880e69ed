/**
 * Redis through `@upstash/redis` (HTTP), an accelerator only — never the source of truth.
 *
 * Design note. Every call goes through `RedisGuard`, which turns any failure into "no answer"
 * (logged and counted by the caller-supplied hooks) and opens a short circuit breaker so that a
 * Redis outage costs one timed-out request per breaker window, not one per API request. Callers
 * then fall back to PostgreSQL. Requests time out quickly because a cache lookup slower than the
 * database it fronts is worse than no cache.
 */
import { Redis } from '@upstash/redis';

export interface RedisSettings {
  url: string;
  token: string;
  /** Per-request timeout. A warm PostgreSQL probe takes ~1 ms; a cache that hangs longer is useless. */
  timeoutMs?: number;
}

export function createRedis(settings: RedisSettings): Redis {
  const timeoutMs = settings.timeoutMs ?? 500;
  return new Redis({
    url: settings.url,
    token: settings.token,
    // No SDK-level retries: the guard falls back to PostgreSQL instead of waiting.
    retry: false,
    // A fresh signal per request (a single shared signal would abort everything after the first timeout).
    signal: () => AbortSignal.timeout(timeoutMs),
    // Values are JSON we wrote ourselves; skip the SDK's per-value JSON.parse guessing.
    automaticDeserialization: false,
    enableTelemetry: false,
  });
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
