/**
 * The single HTTP error mapper: every error thrown by a route handler or middleware becomes
 * `{"error":{"code","message"}}` here and nowhere else. Typed core errors keep their message (it
 * is written for the caller); anything else is a 500 with the request id and no internals, and is
 * logged in full for operators.
 */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  PreconditionFailedError,
  QuotaExceededError,
  StrataError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.ts';

export function statusFor(err: StrataError): number {
  if (err instanceof ValidationError) return 400;
  if (err instanceof UnauthorizedError) return 401;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof ConflictError) return 409;
  if (err instanceof PreconditionFailedError) return 412;
  if (err instanceof QuotaExceededError) return 413;
  if (err instanceof UnavailableError) return 503;
  return 500;
}

export function jsonResponse(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

export interface MappedError {
  response: APIGatewayProxyStructuredResultV2;
  /** True when the error was unexpected (a bug or an outage) and must be logged in full. */
  internal: boolean;
}

/**
 * Connection-level failures of a backing service (PostgreSQL, S3): the request was fine and a
 * retry shortly may succeed, so they are 503 with Retry-After — not a 500 that reads as a bug.
 * Node socket errors, and the PostgreSQL SQLSTATEs for shutdown, "not accepting connections yet",
 * too many connections and class 08 (connection exception).
 */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
// pg-pool's own wording for an exhausted connect timeout and a connection lost mid-query.
const UNREACHABLE_MESSAGE = /timeout exceeded when trying to connect|Connection terminated/i;

function unreachableCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string' && UNREACHABLE_CODES.has(e.code)) return e.code;
  if (typeof e?.message === 'string' && UNREACHABLE_MESSAGE.test(e.message)) return 'connection lost';
  return undefined;
}

/**
 * A statement cancelled by the server (SQLSTATE 57014: the pool's statement timeout, or an
 * operator's pg_cancel_backend): the database was busy or a lock was held, the request itself was
 * fine, so a retry shortly may succeed. It was a 500 "internal error", which reads as a bug and
 * told clients not to retry.
 */
function cancelledStatement(err: unknown, requestId: string): MappedError | undefined {
  if ((err as { code?: unknown } | undefined)?.code !== '57014') return undefined;
  const why = /statement timeout/i.test(String((err as { message?: unknown }).message))
    ? 'the database did not answer within the statement timeout (STRATA_DB_STATEMENT_TIMEOUT_MS)'
    : 'the database cancelled the query';
  return {
    response: jsonResponse(
      503,
      {
        error: {
          code: 'unavailable',
          message: `${why}; retry shortly, and quote request id ${requestId} if it persists`,
          requestId,
        },
      },
      { 'retry-after': '1' },
    ),
    internal: true,
  };
}

export function mapError(err: unknown, requestId: string): MappedError {
  if (err instanceof StrataError) {
    const status = statusFor(err);
    if (status !== 500) {
      const error: Record<string, unknown> = { code: err.code, message: err.message };
      if (err instanceof QuotaExceededError) error.remainingBytes = err.remainingBytes;
      const headers: Record<string, string> = {};
      // 503s are transient by definition; tell clients when to come back.
      if (status === 503) headers['retry-after'] = '1';
      if (status === 401) headers['www-authenticate'] = 'Bearer realm="strata"';
      return { response: jsonResponse(status, { error }, headers), internal: status === 503 };
    }
  }
  const unreachable = unreachableCode(err);
  if (unreachable) {
    return {
      response: jsonResponse(
        503,
        {
          error: {
            code: 'unavailable',
            message: `a backing service (database or storage) is unreachable (${unreachable}); retry shortly, and quote request id ${requestId} if it persists`,
            requestId,
          },
        },
        { 'retry-after': '1' },
      ),
      internal: true,
    };
  }
  const cancelled = cancelledStatement(err, requestId);
  if (cancelled) return cancelled;
  return {
    response: jsonResponse(500, {
      error: {
        code: 'internal',
        message: `internal error; quote request id ${requestId} when reporting it`,
        requestId,
      },
    }),
    internal: true,
  };
}
