/**
 * The deployment map of Strata's Lambdas: which handler module serves which HTTP routes, queues and
 * schedules. The local stack (local/) and the CDK app (infra/) both read this one table, so a route
 * added here is served locally and deployed to AWS without touching either.
 *
 * Every module exports `handler`. HTTP modules receive API Gateway HTTP API v2 events and dispatch on
 * `event.routeKey` internally.
 */
export type LambdaName =
  | 'health'
  | 'query'
  | 'uploads'
  | 'admin'
  | 'reconcileApi'
  | 'peers'
  | 'indexer'
  | 'reconcilePlanner'
  | 'reconcileWorker'
  | 'uploadCleanup'
  | 'migrate';

export interface LambdaSpec {
  /** Module path relative to the repository root. */
  entry: string;
  description: string;
  /** Seconds; SQS visibility timeouts are derived from it (≥ 6×, design.md §5). */
  timeoutSeconds: number;
  memoryMb: number;
}

export const lambdas: Record<LambdaName, LambdaSpec> = {
  health: {
    entry: 'functions/handlers/health.ts',
    description: 'GET /health',
    timeoutSeconds: 5,
    memoryMb: 256,
  },
  query: {
    entry: 'functions/handlers/query.ts',
    description: 'resolve, list, dates, by-date, changes, stats, delete',
    timeoutSeconds: 10,
    memoryMb: 1024,
  },
  uploads: {
    entry: 'functions/handlers/uploads.ts',
    description: 'presigned single and multipart uploads',
    timeoutSeconds: 15,
    memoryMb: 512,
  },
  admin: {
    entry: 'functions/handlers/admin.ts',
    description: 'token management',
    timeoutSeconds: 30,
    memoryMb: 512,
  },
  reconcileApi: {
    entry: 'functions/handlers/reconcile-api.ts',
    description: 'on-demand reconcile runs and their status',
    timeoutSeconds: 30,
    memoryMb: 512,
  },
  peers: {
    entry: 'functions/handlers/peers.ts',
    description: 'mount-client peer registry',
    // Twice the database connect timeout (pool.ts CONNECT_TIMEOUT_MS): at 5 s a database that
    // does not answer timed the Lambda out instead of answering 503.
    timeoutSeconds: 10,
    memoryMb: 256,
  },
  indexer: {
    entry: 'functions/handlers/indexer.ts',
    description: 'S3 events from SQS into the PostgreSQL index',
    timeoutSeconds: 60,
    memoryMb: 1024,
  },
  reconcilePlanner: {
    entry: 'functions/handlers/reconcile-planner.ts',
    description: 'splits the bucket into reconcile shards',
    timeoutSeconds: 120,
    memoryMb: 512,
  },
  reconcileWorker: {
    entry: 'functions/handlers/reconcile-worker.ts',
    description: 'merge-joins one shard of the bucket with the index and heals drift',
    timeoutSeconds: 300,
    memoryMb: 1024,
  },
  uploadCleanup: {
    entry: 'functions/handlers/upload-cleanup.ts',
    description: 'aborts expired multipart uploads',
    timeoutSeconds: 120,
    memoryMb: 256,
  },
  migrate: {
    entry: 'functions/handlers/migrate.ts',
    description: 'applies database migrations at deploy (custom resource)',
    timeoutSeconds: 300,
    memoryMb: 512,
  },
};

export interface HttpRoute {
  /** API Gateway route key, e.g. `GET /v1/resolve`. Path parameters as `{name}`. */
  routeKey: string;
  lambda: LambdaName;
  /** No bearer token required. */
  public?: boolean;
}

export const httpRoutes: HttpRoute[] = [
  { routeKey: 'GET /health', lambda: 'health', public: true },
  { routeKey: 'GET /v1/resolve', lambda: 'query' },
  { routeKey: 'GET /v1/list', lambda: 'query' },
  { routeKey: 'GET /v1/dates', lambda: 'query' },
  { routeKey: 'GET /v1/by-date/{date}', lambda: 'query' },
  { routeKey: 'GET /v1/changes', lambda: 'query' },
  { routeKey: 'GET /v1/stats', lambda: 'query' },
  { routeKey: 'DELETE /v1/files', lambda: 'query' },
  { routeKey: 'POST /v1/uploads', lambda: 'uploads' },
  { routeKey: 'POST /v1/uploads:batch', lambda: 'uploads' },
  { routeKey: 'GET /v1/uploads/{id}/parts', lambda: 'uploads' },
  { routeKey: 'POST /v1/uploads/{id}/complete', lambda: 'uploads' },
  { routeKey: 'DELETE /v1/uploads/{id}', lambda: 'uploads' },
  { routeKey: 'PUT /v1/quotas', lambda: 'uploads' },
  { routeKey: 'GET /v1/quotas', lambda: 'uploads' },
  { routeKey: 'POST /v1/tokens', lambda: 'admin' },
  { routeKey: 'GET /v1/tokens', lambda: 'admin' },
  { routeKey: 'DELETE /v1/tokens/{id}', lambda: 'admin' },
  { routeKey: 'POST /v1/reconcile', lambda: 'reconcileApi' },
  { routeKey: 'GET /v1/reconcile/{id}', lambda: 'reconcileApi' },
  { routeKey: 'POST /v1/peers/heartbeat', lambda: 'peers' },
  { routeKey: 'GET /v1/peers', lambda: 'peers' },
  { routeKey: 'GET /v1/peers/config', lambda: 'peers' },
];

export type QueueName = 'ingest' | 'reconcile';

export interface QueueConsumer {
  queue: QueueName;
  lambda: LambdaName;
  batchSize: number;
  /** Seconds Lambda waits to fill a batch; small so index lag stays well under a second. */
  maxBatchingWindowSeconds: number;
  /** Receives before a message is moved to the DLQ. */
  maxReceiveCount: number;
}

export const queueConsumers: QueueConsumer[] = [
  // Big batches make the indexer's one-transaction-per-batch cheap per event.
  { queue: 'ingest', lambda: 'indexer', batchSize: 100, maxBatchingWindowSeconds: 0, maxReceiveCount: 5 },
  {
    queue: 'reconcile',
    lambda: 'reconcileWorker',
    batchSize: 1,
    maxBatchingWindowSeconds: 0,
    maxReceiveCount: 5,
  },
];

export interface Schedule {
  lambda: LambdaName;
  /** Minutes between runs in AWS; the local stack scales it with its own flag. */
  everyMinutes: number;
}

export const schedules: Schedule[] = [
  { lambda: 'reconcilePlanner', everyMinutes: 60 },
  { lambda: 'uploadCleanup', everyMinutes: 15 },
];
