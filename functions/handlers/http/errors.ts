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
