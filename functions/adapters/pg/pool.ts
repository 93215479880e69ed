/**
 * PostgreSQL access sized for Lambda.
 *
 * Design note. One Lambda execution environment serves one request at a time, so its pool holds
 * one or two connections (config STRATA_DB_POOL_MAX, default 2: one for the request, one spare for
 * a fire-and-forget bookkeeping write such as a token's last_used_at). The pool is created at cold
 * start and reused across invocations; in AWS it points at RDS Proxy, which multiplexes thousands
 * of environments onto few server connections.
 *
 * Retries are only for errors that are provably safe to retry:
 * - a failure to *acquire* a connection (nothing was sent, so nothing can have happened);
 * - a whole transaction that PostgreSQL aborted with a serialization failure (40001) or deadlock
 *   (40P01): the server rolled everything back, so re-running the callback is equivalent to
 *   running it once — provided the callback has no side effects outside the transaction;
 * - a read-only statement whose connection died mid-flight (re-reading is harmless).
 * A write whose connection died after it was sent is never retried here: it may have committed.
 */
import pg from 'pg';

const { Pool } = pg;
export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that can run a query: a pool, a checked-out client, or a plain client. */
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient | pg.Client;

export interface PoolOptions {
  connectionString: string;
  /** Connections per execution environment (see the design note). */
  max?: number;
  /** Every statement is cancelled after this long: a Lambda must never sit on a stuck query. */
  statementTimeoutMs?: number;
  /**
   * Idle connections are closed after this long. A frozen Lambda does not run timers, so this
   * mostly matters for long-lived local processes; 60 s keeps RDS Proxy borrowing cheap.
   */
  idleTimeoutMs?: number;
  /** Waiting for a connection longer than this means the database is unreachable: fail fast. */
  connectionTimeoutMs?: number;
  applicationName?: string;
}

/**
 * Default connect timeout: a connection to RDS Proxy (TLS and authentication included) takes well
 * under a second; 5 s covers a cold proxy on a loaded network. It is waited once per request at
 * most (isConnectTimeout), so every Lambda using the database needs a timeout of at least twice
 * this — the wait, and as long again for the work before it — to answer 503 rather than time out
 * (test/unit/handlers/lambda-timeouts.test.ts).
 */
export const CONNECT_TIMEOUT_MS = 5000;

export function createPool(options: PoolOptions): Pool {
  const statementTimeout = options.statementTimeoutMs ?? 5000;
  const pool = new Pool({
    connectionString: options.connectionString,
    max: options.max ?? 2,
    idleTimeoutMillis: options.idleTimeoutMs ?? 60_000,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeout,
    // A transaction left open by a crashed handler must not hold row locks for long.
    idle_in_transaction_session_timeout: Math.max(10_000, statementTimeout * 2),
    application_name: options.applicationName ?? 'strata',
    // Let a short-lived process (CLI, tests) exit without an explicit end().
    allowExitOnIdle: true,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener Node
  // would crash the whole Lambda. The next checkout simply opens a fresh connection.
  pool.on('error', () => {});
  return pool;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / RDS Proxy pinning limits)
  '53300', // too_many_connections
]);

/** True for errors that mean "no connection" (class 08, refused, reset, server shutting down). */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  if (typeof e.code === 'string' && (e.code.startsWith('08') || CONNECTION_CODES.has(e.code))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(
    e.message ?? '',
  );
}

/**
 * A new connection that did not complete within `connectionTimeoutMillis` (pg-pool's wording, or the
 * client's own when its timer fires first). Never retried: the database is unreachable, not
 * blinking, and each retry waits the whole timeout again — 3 attempts × 5 s outlast the query
 * Lambda's 10 s, which then times out instead of answering 503 with Retry-After. Failures that
 * come fast (refused, reset, a pooled connection the server closed) are still retried.
 */
export function isConnectTimeout(err: unknown): boolean {
  const message = (err as { message?: unknown } | undefined)?.message;
  return (
    typeof message === 'string' &&
    /^(Connection terminated due to connection timeout|timeout expired)$/.test(message)
  );
}

/** Serialization failure or deadlock: PostgreSQL aborted the whole transaction. */
export function isTransactionRetryable(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === '40001' || code === '40P01';
}

export interface RetryOptions {
  /** Extra attempts after the first (default 3). */
  retries?: number;
}

function backoff(attempt: number): Promise<void> {
  // Full jitter, 20 ms doubling, capped at 500 ms: contention clears in milliseconds, and a
  // Lambda cannot afford long sleeps.
  const ms = Math.random() * Math.min(500, 20 * 2 ** attempt);
  return new Promise((r) => setTimeout(r, ms));
}

/** Checks out a client, retrying only the checkout itself (nothing was sent yet). */
export async function acquire(pool: Pool, options: RetryOptions = {}): Promise<PoolClient> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await pool.connect();
    } catch (err) {
      if (attempt >= retries || !isConnectionError(err) || isConnectTimeout(err)) throw err;
      await backoff(attempt);
    }
  }
}

/**
 * Runs `fn` inside BEGIN/COMMIT on one client. Retries the whole transaction on serialization
 * failures and deadlocks (the server rolled it back) and on a failed checkout. `fn` must have no
 * side effects outside the database, since it may run more than once.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  options: RetryOptions & { isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
): Promise<T> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    const client = await acquire(pool, options);
    let broken = false;
    try {
      await client.query(options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation}` : 'BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection is gone; do not return it to the pool
      }
      if (attempt < retries && isTransactionRetryable(err)) {
        await backoff(attempt);
        continue;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/**
 * A read-only query with retries on connection loss (re-reading is harmless). Never use it for
 * writes: a write whose connection died may have committed.
 */
export async function readQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  pool: Pool,
  text: string,
  values: unknown[] = [],
  options: RetryOptions = {},
): Promise<pg.QueryResult<R>> {
  const retries = options.retries ?? 2;
  for (let attempt = 0; ; attempt++) {
    try {
      return await pool.query<R>(text, values);
    } catch (err) {
      if (attempt >= retries || !isConnectionError(err) || isConnectTimeout(err)) throw err;
      await backoff(attempt);
    }
  }
}
