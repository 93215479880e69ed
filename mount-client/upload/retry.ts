/**
 * Retries for presigned PUTs: transient failures (network errors, 5xx, 429 throttling) are retried
 * with full-jitter exponential backoff; anything else (403 expired/bad signature, 400 BadDigest)
 * fails at once, because repeating the same request cannot fix it.
 */
export class PutError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PutError';
  }
}

export interface RetryPolicy {
  /** Attempts after the first. 5 rides out a ~10 s S3 hiccup at the backoff below. */
  retries: number;
  /** First backoff ceiling; doubles per attempt. */
  baseMs: number;
  /** Backoff ceiling: long enough to let throttling clear, short enough to keep a CLI responsive. */
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseMs: 200, maxMs: 5000 };

export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  return random() * Math.min(policy.maxMs, policy.baseMs * 2 ** attempt);
}

export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (err: unknown, attempt: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const retryable = err instanceof PutError ? err.retryable : !signal?.aborted;
      if (!retryable || attempt >= policy.retries || signal?.aborted) throw err;
      onRetry?.(err, attempt);
      await new Promise((r) => setTimeout(r, backoffMs(attempt, policy)));
    }
  }
}

export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}
