/**
 * Errors of the object client. FUSE maps them once (mount-client/fuse/errno.ts):
 * PreconditionFailedError → ESTALE (the object changed under a pinned read), NotFoundError → ENOENT
 * (permanent, never retried), S3ReadError → EIO (raised only after the retry budget is spent, or
 * for a permanent non-404 refusal such as 403).
 */
import { StrataError } from '../../functions/core/errors.ts';

export { NotFoundError, PreconditionFailedError } from '../../functions/core/errors.ts';

export class S3ReadError extends StrataError {
  constructor(
    message: string,
    readonly attempts: number,
    readonly status?: number,
    options?: { cause?: unknown; s3Code?: string },
  ) {
    super('io_error', message, options);
    this.s3Code = options?.s3Code;
  }

  /** S3's error `<Code>` when it answered one (InvalidObjectState, AccessDenied, …). */
  readonly s3Code?: string;
}

/** One attempt failed in a way worth retrying (5xx, 429, timeout, reset, short body). */
export class TransientError extends StrataError {
  constructor(
    readonly reason:
      | 'http-5xx'
      | 'throttled'
      | 'timeout'
      | 'reset'
      | 'short-body'
      | 'network'
      | 'expired-url'
      | 'bad-range',
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super('transient', message, options);
  }
}
