/**
 * The local Strata stack behind `npm start` and every integration test: embedded PostgreSQL,
 * fauxqs S3+SQS in-process, the API Gateway HTTP adapter, SQS pollers with Lambda semantics, the S3
 * notification synthesizer, the schedule runner and the Upstash REST adapter over redis-server.
 *
 * Everything binds 127.0.0.1 on free ports and nothing here is a module-level singleton, so several
 * stacks can run at once (parallel test files). One caveat is inherent to running handlers
 * in-process: handlers read their configuration from process.env once per process (as in Lambda),
 * so within one process the first stack whose handlers ran defines their config — run one stack per
 * test file (vitest forks a process per file).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import pg from 'pg';
import { migrate } from '../functions/adapters/pg/migrate.ts';
import { createToken } from '../functions/adapters/pg/tokens.ts';
import { parseToken, secretMatches } from '../functions/core/tokens.ts';
import {
  httpRoutes,
  type LambdaName,
  lambdas,
  type QueueName,
  queueConsumers,
  schedules,
} from '../functions/handlers/routes.ts';
import type { DevJson } from '../mount-client/cli/config.ts';

import { type Emulator, type ObjectMutation, startEmulator } from './emulator.ts';
import { type HttpAdapter, startHttpAdapter } from './http-adapter.ts';
import { invokeHandler, REPO_ROOT } from './lambda-runtime.ts';
import { type Poller, startPoller } from './poller.ts';
import { type LocalPostgres, startPostgres } from './postgres.ts';
import { type LocalRedis, redisServerOnPath, startRedisServer } from './redis.ts';
import { buildS3EventRecord, Sequencer, s3EventMessage } from './s3-events.ts';
import { lockStateDir } from './state-lock.ts';
import { startUpstashAdapter, type UpstashAdapter } from './upstash-adapter.ts';

export type { LambdaName };

export interface StackOptions {
  /** Where PostgreSQL data, emulator state and dev.json live. Default `<repo>/.strata`. */
  stateDir?: string;
  /** HTTP API port; 0 = a free port. Default 0 (npm start passes 8787). */
  apiPort?: number;
  /** Synthesize S3 event notifications to the ingest queue. Default true. */
  events?: boolean;
  /** Period of the schedule runner (routes.ts schedules); 0 = off. Default 300 000 (5 min). */
  scheduleIntervalMs?: number;
  /** 'auto' = REDIS_URL, else redis-server when on PATH, else none. Default 'auto'. */
  redis?: 'auto' | 'off' | { url: string };
  /** Use this PostgreSQL instead of the embedded one (DATABASE_URL also does). */
  databaseUrl?: string;
  /**
   * Keep PostgreSQL data and S3/SQS state under stateDir across restarts. Default: true for the
   * default stateDir (npm start), false for an explicit one (tests: faster, removed on stop).
   */
  persist?: boolean;
  /** Run the SQS pollers (indexer, reconcile worker). Off lets a test read the queues itself. Default true. */
  consumers?: boolean;
  /** Visibility timeout the pollers use; short so failed messages are retried quickly. Default 3 s. */
  visibilityTimeoutSeconds?: number;
  log?: (line: string) => void;
  /** Extra server env for the handlers (e.g. small thresholds in tests). */
  env?: Record<string, string>;
}

export interface LocalStack {
  dev: DevJson;
  /** The server env handed to handlers (also set on process.env). */
  env: Record<string, string>;
  s3: S3Client;
  sqs: SQSClient;
  pool: pg.Pool;
  queues: { ingest: string; ingestDlq: string; reconcile: string; reconcileDlq: string };
  adminToken: string;
  stateDir: string;
  /** Child processes the stack started (for orphan checks). */
  processes: { postgres?: number; redis?: number };
  /** Notes for the banner: what is persisted, what is missing. */
  notes: string[];
  /** Resolves once the consumed queues are empty, no batch is in flight and no notification is pending. */
  drain(timeoutMs?: number): Promise<void>;
  invoke(lambda: LambdaName, event: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

export const BUCKET = 'strata-local';
export const DATA_PREFIX = 'data/';
export const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
// The emulator does not check signatures; any non-empty pair works. Never real credentials.
const CREDENTIALS = { accessKeyId: 'strata-local', secretAccessKey: 'strata-local-secret' };
const QUEUE_NAMES: Record<QueueName, { main: string; dlq: string }> = {
  ingest: { main: 'strata-ingest', dlq: 'strata-ingest-dlq' },
  reconcile: { main: 'strata-reconcile', dlq: 'strata-reconcile-dlq' },
};
/** Default schedule period: often enough to see reconcile work locally, rare enough to stay idle. */
export const DEFAULT_SCHEDULE_INTERVAL_MS = 300_000;
/** Failed messages come back after this long; AWS uses ≥ 6× the function timeout, far too slow here. */
const DEFAULT_VISIBILITY_TIMEOUT_S = 3;

/** DATABASE_URL values this module put on process.env (a later stack must not mistake them for the user's). */
const exportedUrls = new Set<string>();

export function defaultStateDir(): string {
  return join(REPO_ROOT, '.strata');
}

export async function startStack(opts: StackOptions = {}): Promise<LocalStack> {
  const stateDir = resolve(opts.stateDir ?? defaultStateDir());
  const persist = opts.persist ?? opts.stateDir === undefined;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const logEvent = (fields: Record<string, unknown>) =>
    log(JSON.stringify({ t: new Date().toISOString(), ...fields }));
  const notes: string[] = [];
  const events = opts.events ?? true;
  const visibility = opts.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_TIMEOUT_S;
  await mkdir(stateDir, { recursive: true });
  const unlock = await lockStateDir(stateDir);

  const cleanups: { name: string; fn: () => Promise<void> }[] = [];
  const onStop = (name: string, fn: () => Promise<void>) => cleanups.push({ name, fn });
  // Registered first so it runs last: the directory stays ours until everything in it is stopped.
  onStop('state-dir lock', unlock);
  const cleanup = async () => {
    for (const { name, fn } of cleanups.splice(0).reverse()) {
      const started = Date.now();
      try {
        await fn();
      } catch (err) {
        logEvent({ event: 'stop_error', component: name, error: (err as Error).message });
      }
      if (process.env.STRATA_DEBUG_STOP)
        logEvent({ event: 'stopped', component: name, ms: Date.now() - started });
    }
  };
  const exitGuard = { redisPid: undefined as number | undefined, pgPid: undefined as number | undefined };
  // Safety net for an abrupt process.exit(): no redis-server or postgres left behind.
  const onExit = () => {
    for (const [pid, sig] of [
      [exitGuard.redisPid, 'SIGKILL'],
      [exitGuard.pgPid, 'SIGINT'],
    ] as const) {
      if (pid)
        try {
          // redis-server runs in its own process group under a watchdog: kill the group.
          process.kill(pid === exitGuard.redisPid ? -pid : pid, sig);
        } catch {}
    }
  };
  process.on('exit', onExit);
  onStop('exit-guard', async () => {
    process.off('exit', onExit);
  });

  try {
    // Mutations can only arrive once clients know the endpoint, i.e. after setup below.
    let notify: (m: ObjectMutation) => void = () => {};
    // DATABASE_URL from the user's environment, not one an earlier stack in this process exported.
    const inherited = process.env.DATABASE_URL;
    const databaseUrl =
      opts.databaseUrl ?? (inherited && !exportedUrls.has(inherited) ? inherited : undefined);
    const [postgres, emulator, redis] = (await Promise.all([
      startPostgres({ dataDir: join(stateDir, 'pg'), persist, databaseUrl, log }).then((p) => {
        exitGuard.pgPid = p.pid;
        onStop('postgres', () => p.stop());
        return p;
      }),
      startEmulator({
        dataDir: persist ? join(stateDir, 'emulator') : undefined,
        region: REGION,
        credentials: CREDENTIALS,
        onMutation: (m) => notify(m),
      }).then((e) => {
        onStop('emulator', () => e.stop());
        return e;
      }),
      startRedis(opts.redis ?? 'auto', notes).then((r) => {
        if (r) {
          exitGuard.redisPid = r.pid;
          onStop('redis', () => r.stop());
        }
        return r;
      }),
    ])) as [LocalPostgres, Emulator, LocalRedis | undefined];

    const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
    pool.on('error', (err) => logEvent({ event: 'pg_pool_error', error: err.message }));
    onStop('pg-pool', () => pool.end());
    await migrate(pool, { log: (line) => logEvent({ event: 'migration', line }) });
    const token = await devToken(pool, join(stateDir, 'dev-token'), persist);

    let upstash: UpstashAdapter | undefined;
    if (redis) {
      upstash = await startUpstashAdapter({
        redisUrl: redis.url,
        token: randomBytes(24).toString('base64url'),
      });
      const u = upstash;
      onStop('upstash-adapter', () => u.close());
    }

    const s3 = new S3Client({
      region: REGION,
      endpoint: emulator.endpoint,
      forcePathStyle: true,
      credentials: CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const sqs = new SQSClient({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS });
    onStop('aws-clients', async () => {
      s3.destroy();
      sqs.destroy();
    });
    emulator.createBucket(BUCKET);
    const queues = await createQueues(sqs, emulator.endpoint, visibility);

    // S3 → SQS notifications. Pending sends are tracked so drain() sees events not yet enqueued.
    const sequencer = new Sequencer();
    const pendingSends = new Set<Promise<unknown>>();
    if (events) {
      notify = (m) => {
        if (m.bucket !== BUCKET) return;
        const record = buildS3EventRecord({ ...m, region: REGION, sequencer: sequencer.next() });
        const p = sqs
          .send(
            new SendMessageCommand({ QueueUrl: queues.ingest.url, MessageBody: s3EventMessage([record]) }),
          )
          .catch((err: unknown) =>
            logEvent({ event: 'notification_failed', key: m.key, error: (err as Error).message }),
          )
          .finally(() => pendingSends.delete(p));
        pendingSends.add(p);
      };
    } else notes.push('S3 event notifications are off (--events off): index changes only through reconcile');
    onStop('notifications', async () => {
      notify = () => {};
      await Promise.allSettled([...pendingSends]);
    });

    const env: Record<string, string> = {
      DATABASE_URL: postgres.url,
      STRATA_BUCKET: BUCKET,
      STRATA_DATA_PREFIX: DATA_PREFIX,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      STRATA_S3_ENDPOINT: emulator.endpoint,
      STRATA_SQS_ENDPOINT: emulator.endpoint,
      STRATA_INGEST_QUEUE_URL: queues.ingest.url,
      STRATA_RECONCILE_QUEUE_URL: queues.reconcile.url,
      ...(upstash ? { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: upstash.token } : {}),
      // An external Redis (REDIS_URL, or a url in options) may be shared with other stacks — parallel
      // test files, a second `npm start` — which use the same bucket name: a namespace of its own
      // keeps their caches and peer registries apart. A redis-server we started is ours alone.
      ...(redis && redis.pid === undefined ? { STRATA_CACHE_NAMESPACE: `local-${randomUUID()}` } : {}),
      // fauxqs refuses request bodies over 11 MiB, so anything larger must go multipart locally
      // (AWS takes single PUTs up to 5 GiB; the deployed default stays 64 MiB).
      STRATA_MULTIPART_THRESHOLD: String(8 * 1024 * 1024),
      ...opts.env,
    };
    // Handlers are imported into this process and read process.env at cold start, like in Lambda.
    Object.assign(process.env, env);
    exportedUrls.add(env.DATABASE_URL as string);
    const invoke = (lambda: LambdaName, event: unknown) => invokeHandler(lambda, event, REGION);

    const present = (name: LambdaName) => existsSync(join(REPO_ROOT, lambdas[name].entry));
    const pollers = new Map<QueueName, Poller>();
    for (const c of opts.consumers === false ? [] : queueConsumers) {
      if (!present(c.lambda)) {
        notes.push(
          `${lambdas[c.lambda].entry} does not exist yet: the ${c.queue} queue is not consumed (messages wait there)`,
        );
        continue;
      }
      const q = queues[c.queue];
      const poller = startPoller({
        sqs,
        queueUrl: q.url,
        queueArn: q.arn,
        region: REGION,
        batchSize: c.batchSize,
        maxBatchingWindowSeconds: c.maxBatchingWindowSeconds,
        maxReceiveCount: c.maxReceiveCount,
        visibilityTimeoutSeconds: visibility,
        handler: (event) => invoke(c.lambda, event),
        log: logEvent,
        name: QUEUE_NAMES[c.queue].main,
      });
      pollers.set(c.queue, poller);
      onStop(`poller ${c.queue}`, () => poller.stop());
    }

    const http: HttpAdapter = await startHttpAdapter({
      routes: httpRoutes,
      invoke: (lambda, event) => invoke(lambda, event),
      port: opts.apiPort ?? 0,
      log: logEvent,
    });
    onStop('http', () => http.close());

    const scheduleMs = opts.scheduleIntervalMs ?? DEFAULT_SCHEDULE_INTERVAL_MS;
    if (scheduleMs > 0) {
      const stopSchedules = startSchedules(scheduleMs, present, invoke, logEvent);
      onStop('schedules', stopSchedules);
    }

    if (!persist && postgres.embedded) notes.push('state is temporary: removed when the stack stops');
    const dev: DevJson = {
      apiUrl: http.url,
      token,
      s3Endpoint: emulator.endpoint,
      bucket: BUCKET,
      dataPrefix: DATA_PREFIX,
      region: REGION,
      databaseUrl: postgres.url,
      redis: upstash ? { url: upstash.url, token: upstash.token } : null,
    };

    let stopping: Promise<void> | undefined;
    return {
      dev,
      env,
      s3,
      sqs,
      pool,
      queues: {
        ingest: queues.ingest.url,
        ingestDlq: queues.ingestDlq.url,
        reconcile: queues.reconcile.url,
        reconcileDlq: queues.reconcileDlq.url,
      },
      adminToken: token,
      stateDir,
      processes: { postgres: postgres.pid, redis: redis?.pid },
      notes,
      invoke,
      async drain(timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        let last = '';
        for (;;) {
          await Promise.allSettled([...pendingSends]);
          let busy = pendingSends.size > 0;
          const counts: string[] = [];
          for (const [name, poller] of pollers) {
            const n = await queueDepth(sqs, queues[name].url);
            counts.push(`${name}: ${n} queued, ${poller.inFlight} batch in flight`);
            if (n > 0 || poller.inFlight > 0) busy = true;
          }
          last = counts.join('; ');
          if (!busy) return;
          if (Date.now() > deadline)
            throw new Error(
              `drain timed out after ${timeoutMs} ms (${last}); see the stack log for handler errors`,
            );
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      stop() {
        stopping ??= cleanup();
        return stopping;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function startRedis(mode: StackOptions['redis'], notes: string[]): Promise<LocalRedis | undefined> {
  if (mode === 'off') {
    notes.push('Redis is off: the metadata cache runs in-process only');
    return undefined;
  }
  if (typeof mode === 'object') return { url: mode.url, stop: async () => {} };
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => {} };
  if (redisServerOnPath()) return startRedisServer();
  notes.push(
    'no Redis: redis-server is not on PATH and REDIS_URL is unset, so the cache is in-process only (apt-get install -y redis-server)',
  );
  return undefined;
}

/**
 * The dev token (all scopes). A persisted stack reuses the previous run's token while it is still
 * valid, so mounts and shells configured with it keep working across restarts; the token is kept
 * in `<stateDir>/dev-token` (0600) because dev.json is removed when the stack stops.
 */
async function devToken(pool: pg.Pool, tokenFile: string, persist: boolean): Promise<string> {
  if (persist && existsSync(tokenFile)) {
    const previous = readFileSync(tokenFile, 'utf8').trim();
    const parsed = parseToken(previous);
    if (parsed) {
      const { rows } = await pool.query<{ secret_hash: Buffer }>(
        'SELECT secret_hash FROM tokens WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())',
        [parsed.id],
      );
      if (rows[0] && secretMatches(parsed.secret, rows[0].secret_hash)) return previous;
    }
  }
  const { token } = await createToken(pool, {
    name: 'local dev (npm start)',
    scopes: ['read', 'write', 'admin'],
  });
  if (persist) await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  return token;
}

interface QueueRef {
  url: string;
  arn: string;
}

async function createQueues(
  sqs: SQSClient,
  endpoint: string,
  visibilitySeconds: number,
): Promise<Record<QueueName | 'ingestDlq' | 'reconcileDlq', QueueRef>> {
  // URLs are built from the current endpoint: persisted queues remember the port of an earlier run.
  const ref = (name: string): QueueRef => ({
    url: `${endpoint}/${ACCOUNT}/${name}`,
    arn: `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`,
  });
  const out = {} as Record<QueueName | 'ingestDlq' | 'reconcileDlq', QueueRef>;
  for (const c of queueConsumers) {
    const names = QUEUE_NAMES[c.queue];
    const dlq = ref(names.dlq);
    const main = ref(names.main);
    // DLQs keep messages 14 days (the SQS maximum), as in AWS, so nothing failed is lost.
    await sqs.send(
      new CreateQueueCommand({ QueueName: names.dlq, Attributes: { MessageRetentionPeriod: '1209600' } }),
    );
    const attributes = {
      VisibilityTimeout: String(visibilitySeconds),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: c.maxReceiveCount }),
    };
    await sqs.send(new CreateQueueCommand({ QueueName: names.main }));
    // Set separately: CreateQueue on an existing (persisted) queue must not differ in attributes.
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: main.url, Attributes: attributes }));
    out[c.queue] = main;
    out[c.queue === 'ingest' ? 'ingestDlq' : 'reconcileDlq'] = dlq;
  }
  return out;
}

/** Messages in a queue: visible, in flight and delayed (what drain waits on; also read by bench/index/soak.ts). */
export async function queueDepth(sqs: SQSClient, url: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const a = out.Attributes ?? {};
  return (
    Number(a.ApproximateNumberOfMessages ?? 0) +
    Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(a.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

/**
 * Invokes routes.ts schedules with EventBridge's scheduled-event shape. One local period for all
 * schedules (AWS periods are minutes to hours — too slow to try things); a run still in progress is
 * not started again, as a Lambda with reserved concurrency 1 would not be.
 */
function startSchedules(
  periodMs: number,
  present: (name: LambdaName) => boolean,
  invoke: (lambda: LambdaName, event: unknown) => Promise<unknown>,
  logEvent: (fields: Record<string, unknown>) => void,
): () => Promise<void> {
  const running = new Map<LambdaName, Promise<unknown>>();
  const tick = () => {
    for (const s of schedules) {
      if (running.has(s.lambda) || !present(s.lambda)) continue;
      const event = {
        version: '0',
        id: randomUUID(),
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        account: ACCOUNT,
        time: new Date().toISOString(),
        region: REGION,
        resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/strata-local-${s.lambda}`],
        detail: {},
      };
      const p = invoke(s.lambda, event)
        .catch((err: unknown) =>
          logEvent({ event: 'schedule_failed', lambda: s.lambda, error: (err as Error).message }),
        )
        .finally(() => running.delete(s.lambda));
      running.set(s.lambda, p);
    }
  };
  const timer = setInterval(tick, periodMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await Promise.allSettled([...running.values()]);
  };
}
