/**
 * Server configuration, parsed once per execution environment from the environment (set by CDK in
 * AWS, by local/stack.ts locally). Handlers receive this object; nothing else reads process.env.
 */
import { z } from 'zod';
import { normalizePrefix } from './core/paths.ts';

const MiB = 1024 * 1024;

const schema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  /** Secrets Manager secret with {host, port, username, password, dbname} (AWS; RDS Proxy host). */
  DATABASE_SECRET_ARN: z.string().optional(),
  DATABASE_HOST: z.string().optional(),
  STRATA_BUCKET: z.string().min(1),
  STRATA_DATA_PREFIX: z.string().default('data/'),
  AWS_REGION: z.string().default('us-east-1'),
  /** Custom S3 endpoint (local emulator / LocalStack); unset in AWS. */
  STRATA_S3_ENDPOINT: z.string().url().optional(),
  STRATA_SQS_ENDPOINT: z.string().url().optional(),
  UPSTASH_REDIS_REST_URL: z.string().url().optional(),
  UPSTASH_REDIS_REST_TOKEN: z.string().optional(),
  /** Secrets Manager secret holding {url, token} for Upstash (AWS). */
  UPSTASH_SECRET_ARN: z.string().optional(),
  STRATA_INGEST_QUEUE_URL: z.string().optional(),
  STRATA_RECONCILE_QUEUE_URL: z.string().optional(),
  /** Presigned URL lifetime. Short: a leaked URL is useless within minutes. */
  STRATA_PRESIGN_EXPIRES_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(900),
  /** Above this size uploads go multipart (S3 single PUT allows 5 GiB; 64 MiB keeps retries cheap). */
  STRATA_MULTIPART_THRESHOLD: z.coerce
    .number()
    .int()
    .min(5 * MiB)
    .max(5 * 1024 * MiB) // S3's single-PUT limit
    .default(64 * MiB),
  /**
   * Preferred multipart part size (grown as needed to stay within 10,000 parts). 8 MiB is the AWS
   * CLI's default chunk size — parallel parts keep the pipe full, a failed part costs little to
   * retry — and it fits the local emulator's 11 MiB request body limit.
   */
  STRATA_MULTIPART_PART_SIZE: z.coerce
    .number()
    .int()
    .min(5 * MiB)
    .max(5 * 1024 * MiB)
    .default(8 * MiB),
  /**
   * Prefix of every Redis key Strata writes (metadata cache, peer registry), so two deployments
   * sharing one Redis database (stages on one Upstash DB, parallel test stacks on one REDIS_URL)
   * never read each other's entries. Default: derived from the bucket and data prefix.
   */
  STRATA_CACHE_NAMESPACE: z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, 'printable ASCII without spaces, at most 200 characters')
    .optional(),
  /** In-process metadata cache TTL: bounds staleness of a warm Lambda after an overwrite. */
  STRATA_CACHE_TTL_MS: z.coerce.number().int().min(0).default(1000),
  /**
   * Redis request timeout. Upstash answers in a few ms in-region; 500 ms tolerates a slow moment
   * while keeping a dead Redis from stalling requests (the breaker then skips it for 2 s).
   */
  STRATA_REDIS_TIMEOUT_MS: z.coerce.number().int().min(10).default(500),
  /** Statement timeout: a Lambda must never wait on a stuck query until its own timeout. */
  STRATA_DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
  /** Connections per execution environment: Lambda runs one request at a time per environment. */
  STRATA_DB_POOL_MAX: z.coerce.number().int().min(1).default(2),
  STRATA_LOG_LEVEL: z.string().default('INFO'),
  /** Keys per reconcile listing page. S3's maximum (1000): fewest round trips per object. */
  STRATA_RECONCILE_PAGE_SIZE: z.coerce.number().int().min(1).max(1000).default(1000),
  /**
   * A reconcile worker re-enqueues itself when less than this is left of its Lambda budget: one
   * page (1000 keys, one index batch, heals in one transaction) takes a few seconds; 30 s leaves
   * room for a slow page with HeadObject refreshes.
   */
  STRATA_RECONCILE_RESERVE_MS: z.coerce.number().int().min(0).default(30_000),
  /**
   * Optional cap on one segment's duration (0 = only the Lambda budget). Locally the SQS
   * visibility timeout is seconds, so a short cap keeps a long shard from being redelivered.
   */
  STRATA_RECONCILE_SEGMENT_MAX_MS: z.coerce.number().int().min(0).default(0),
  /** Shards per run; see core/reconcile/shards.ts for why 32. */
  STRATA_RECONCILE_MAX_SHARDS: z.coerce.number().int().min(1).max(1000).default(32),
  /** Grace of scheduled runs; see core/reconcile/plan.ts DEFAULT_GRACE_SECONDS for why 900. */
  STRATA_RECONCILE_GRACE_SECONDS: z.coerce.number().int().min(0).max(86_400).default(900),
});

export type Env = z.infer<typeof schema>;

export interface ServerConfig {
  env: Env;
  bucket: string;
  dataPrefix: string;
  region: string;
  s3Endpoint?: string;
  sqsEndpoint?: string;
  /** Redis key namespace (STRATA_CACHE_NAMESPACE, else `<bucket>/<data prefix>`). */
  cacheNamespace: string;
}

export function parseConfig(source: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid Strata server configuration: ${issues}`);
  }
  const env = parsed.data;
  return {
    env,
    bucket: env.STRATA_BUCKET,
    dataPrefix: normalizePrefix(env.STRATA_DATA_PREFIX),
    region: env.AWS_REGION,
    s3Endpoint: env.STRATA_S3_ENDPOINT,
    sqsEndpoint: env.STRATA_SQS_ENDPOINT,
    cacheNamespace:
      env.STRATA_CACHE_NAMESPACE ?? `${env.STRATA_BUCKET}/${normalizePrefix(env.STRATA_DATA_PREFIX)}`,
  };
}

let cached: ServerConfig | undefined;
/** The process-wide config (cold start). Tests pass their own instead. */
export function config(): ServerConfig {
  cached ??= parseConfig();
  return cached;
}
export function resetConfigForTests(): void {
  cached = undefined;
}
