/**
 * Typed errors of the Strata core. Each carries a stable machine `code` (part of the HTTP error
 * contract `{"error":{"code","message"}}`) and an optional `cause`. Transport mapping happens once
 * per edge: HTTP in functions/handlers/http/errors.ts, errno in mount-client/fuse/errno.ts.
 */
export class StrataError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad input: the request can never succeed as sent. Message says what to fix. */
export class ValidationError extends StrataError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'invalid_request', message, options);
  }
}

export class NotFoundError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('not_found', message, options);
  }
}

export class UnauthorizedError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unauthorized', message, options);
  }
}

export class ForbiddenError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('forbidden', message, options);
  }
}

export class ConflictError extends StrataError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'conflict', message, options);
  }
}

export class QuotaExceededError extends StrataError {
  readonly remainingBytes: number;
  constructor(message: string, remainingBytes: number, options?: { cause?: unknown }) {
    super('quota_exceeded', message, options);
    this.remainingBytes = remainingBytes;
  }
}

/** The object changed under a pinned read (etag/versionId mismatch). FUSE maps it to ESTALE. */
export class PreconditionFailedError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('precondition_failed', message, options);
  }
}

/** A dependency is down or overloaded; safe to retry later. */
export class UnavailableError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}
