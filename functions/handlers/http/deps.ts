/**
 * Clients shared by every API Lambda, created once per execution environment (cold start) and
 * injectable for tests: `setDeps({ pool, redis, ... })` replaces any of them, `resetDeps()` drops
 * them. Nothing here connects eagerly; the first request pays the connection.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from '@upstash/redis';
import { createS3Client } from '../../adapters/aws/s3-client.ts';
import { createPool, type Pool } from '../../adapters/pg/pool.ts';
import { createRedis, RedisGuard } from '../../adapters/redis/client.ts';
import { config, type ServerConfig } from '../../config.ts';
import { Metric } from '../../core/metrics.ts';
import { getLogger, getMetrics, MetricUnit } from './observability.ts';

export interface Deps {
  config: ServerConfig;
  pool: Pool;
  s3: S3Client;
  /** Guarded Redis: absent or failing Redis resolves to "no answer" (see adapters/redis/client.ts). */
  redis: RedisGuard;
}

let current: Partial<Deps> = {};

export function deps(): Deps {
  current.config ??= config();
  const cfg = current.config;
  current.pool ??= createPool({
    connectionString: requireDatabaseUrl(cfg),
    max: cfg.env.STRATA_DB_POOL_MAX,
    statementTimeoutMs: cfg.env.STRATA_DB_STATEMENT_TIMEOUT_MS,
  });
  current.s3 ??= createS3Client({ region: cfg.region, endpoint: cfg.s3Endpoint });
  current.redis ??= guardRedis(
    cfg.env.UPSTASH_REDIS_REST_URL && cfg.env.UPSTASH_REDIS_REST_TOKEN
      ? createRedis({
          url: cfg.env.UPSTASH_REDIS_REST_URL,
          token: cfg.env.UPSTASH_REDIS_REST_TOKEN,
          timeoutMs: cfg.env.STRATA_REDIS_TIMEOUT_MS,
        })
      : undefined,
  );
  return current as Deps;
}

/** Wraps a Redis client with the standard failure hooks (log + `RedisFailures` metric). */
export function guardRedis(redis: Redis | undefined): RedisGuard {
  return new RedisGuard(redis, {
    onFailure: (op, err) => {
      getLogger().warn('redis unavailable; serving from PostgreSQL', { op, error: (err as Error).message });
      getMetrics().addMetric(Metric.RedisFailures, MetricUnit.Count, 1);
    },
  });
}

function requireDatabaseUrl(cfg: ServerConfig): string {
  if (cfg.env.DATABASE_URL) return cfg.env.DATABASE_URL;
  throw new Error(
    'DATABASE_URL is not set: the API needs PostgreSQL (set DATABASE_URL, or run `npm start` for the local stack)',
  );
}

export function setDeps(overrides: Partial<Deps>): void {
  current = { ...current, ...overrides };
}

export function resetDeps(): void {
  current = {};
}
