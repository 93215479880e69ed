/**
 * Per-stage deployment settings, typed and validated once. A stage is picked with
 * `-c strata:stage=<name>` (cdk.json defaults to `dev`); everything a stack varies by stage lives here,
 * so stacks never branch on the stage name.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';

export type StageName = 'dev' | 'prod' | 'localstack';

/** The PostgreSQL the functions use: Aurora created by the stack, or an external URL (LocalStack). */
export type DatabaseConfig =
  | {
      kind: 'aurora';
      /** Aurora Serverless v2 capacity range in ACUs (1 ACU ≈ 2 GiB RAM). */
      minCapacity: number;
      maxCapacity: number;
      /** Readers in addition to the writer; 0 in dev (no failover target, half the cost). */
      readers: number;
      deletionProtection: boolean;
      backupRetentionDays: number;
      // Every Aurora stage gets an RDS Proxy (not a setting): it pools connections so a burst of
      // Lambda environments cannot exhaust max_connections.
    }
  | { kind: 'external'; url: string };

export type UpstashConfig =
  /** Name of a Secrets Manager secret holding `{"url": "...", "token": "..."}`, created before deploy. */
  | { kind: 'secret'; secretName: string }
  /** Plain URL and token, for LocalStack's local REST proxy only. */
  | { kind: 'plain'; url: string; token: string }
  /** No Redis: the in-process LRU alone (Redis is an accelerator, never the source of truth). */
  | { kind: 'none' };

export interface StageConfig {
  stage: StageName;
  /** Stack name prefix; one app can hold several stages side by side. */
  prefix: string;
  /** Explicit account/region, or undefined for an environment-agnostic synth (no lookups either way). */
  env?: { account: string; region: string };
  dataPrefix: string;
  bucket: {
    /** Explicit bucket name; default `strata-<stage>-<account>-<region>` (infra/lib/bucket.ts). */
    name?: string;
    /** Days a replaced or deleted object version is kept (undo window for out-of-band overwrites). */
    noncurrentVersionExpirationDays: number;
    removalPolicy: RemovalPolicy;
    /** Server access logs into a separate bucket (cdk-nag S1); off in LocalStack. */
    accessLogs: boolean;
  };
  network:
    | {
        kind: 'vpc';
        maxAzs: number;
        /** Lambdas in private subnets reach Upstash (internet) and SQS/Secrets Manager through NAT. */
        natGateways: number;
      }
    | { kind: 'none' };
  database: DatabaseConfig;
  upstash: UpstashConfig;
  api: {
    /** Steady-state requests/s across the stage; protects the database from a runaway client. */
    throttleRateLimit: number;
    throttleBurstLimit: number;
  };
  logRetention: 'ONE_WEEK' | 'ONE_MONTH' | 'THREE_MONTHS' | 'ONE_YEAR';
  /** Custom endpoints the functions use (LocalStack); undefined in AWS. */
  endpoints?: { s3: string; sqs: string };
  alarms: {
    /** E-mail subscribed to the alarm topic, if any. */
    email?: string;
    /** Oldest ingest message age that pages someone: index lag beyond this is user-visible. */
    maxIngestAge: Duration;
    maxReconcileAge: Duration;
  };
  /** Run the cdk-nag AwsSolutions pack at synth (off in LocalStack, where several services are absent). */
  nag: boolean;
}

const common = {
  dataPrefix: 'data/',
  api: { throttleRateLimit: 500, throttleBurstLimit: 1000 },
  alarms: { maxIngestAge: Duration.minutes(5), maxReconcileAge: Duration.hours(2) },
} satisfies Partial<StageConfig>;

export const stages: Record<StageName, StageConfig> = {
  dev: {
    ...common,
    stage: 'dev',
    prefix: 'Strata-dev',
    bucket: { noncurrentVersionExpirationDays: 7, removalPolicy: RemovalPolicy.DESTROY, accessLogs: true },
    network: { kind: 'vpc', maxAzs: 2, natGateways: 1 },
    database: {
      kind: 'aurora',
      minCapacity: 0.5,
      maxCapacity: 4,
      readers: 0,
      deletionProtection: false,
      backupRetentionDays: 1,
    },
    upstash: { kind: 'none' },
    logRetention: 'ONE_WEEK',
    nag: true,
  },
  prod: {
    ...common,
    stage: 'prod',
    prefix: 'Strata-prod',
    bucket: { noncurrentVersionExpirationDays: 30, removalPolicy: RemovalPolicy.RETAIN, accessLogs: true },
    network: { kind: 'vpc', maxAzs: 2, natGateways: 2 },
    database: {
      kind: 'aurora',
      minCapacity: 1,
      maxCapacity: 32,
      readers: 1,
      deletionProtection: true,
      backupRetentionDays: 14,
    },
    upstash: { kind: 'secret', secretName: 'strata/prod/upstash' },
    api: { throttleRateLimit: 2000, throttleBurstLimit: 5000 },
    logRetention: 'THREE_MONTHS',
    nag: true,
  },
  localstack: {
    ...common,
    stage: 'localstack',
    prefix: 'Strata-localstack',
    // LocalStack's default account and region; explicit so cdklocal needs no credentials lookup.
    env: { account: '000000000000', region: 'us-east-1' },
    bucket: { noncurrentVersionExpirationDays: 1, removalPolicy: RemovalPolicy.DESTROY, accessLogs: false },
    network: { kind: 'none' },
    // Host names resolve on the compose network that LocalStack attaches Lambda containers to
    // (LAMBDA_DOCKER_NETWORK in localstack/docker-compose.yml).
    database: { kind: 'external', url: 'postgres://strata:strata@postgres:5432/strata' },
    upstash: { kind: 'plain', url: 'http://upstash:80', token: 'strata-local-token' },
    logRetention: 'ONE_WEEK',
    endpoints: {
      s3: 'http://localhost.localstack.cloud:4566',
      sqs: 'http://localhost.localstack.cloud:4566',
    },
    nag: false,
  },
};

/** Resolves `strata:stage` (and optional `strata:account`/`strata:region`) into a stage config. */
export function stageConfig(
  name: string | undefined,
  overrides: { account?: string; region?: string; alarmEmail?: string; upstashSecretName?: string } = {},
): StageConfig {
  const stage = (name ?? 'dev') as StageName;
  const base = stages[stage];
  if (!base) {
    throw new Error(
      `unknown stage "${name}"; pass -c strata:stage=<${Object.keys(stages).join('|')}> (infra/config/stages.ts)`,
    );
  }
  let env = base.env;
  if (overrides.account || overrides.region) {
    if (!overrides.account || !overrides.region)
      throw new Error('set both -c strata:account=<id> and -c strata:region=<region>, or neither');
    env = { account: overrides.account, region: overrides.region };
  }
  return {
    ...base,
    env,
    alarms: { ...base.alarms, email: overrides.alarmEmail ?? base.alarms.email },
    upstash: overrides.upstashSecretName
      ? { kind: 'secret', secretName: overrides.upstashSecretName }
      : base.upstash,
  };
}
