/**
 * Retry with full-jitter exponential backoff (delay = random(0, min(cap, base·2^attempt)), the AWS
 * Architecture Blog variant that spreads a thundering herd best). Only TransientError is retried;
 * typed permanent errors (precondition failed, not found) pass straight through. When the budget is
 * spent the last transient error becomes an S3ReadError (EIO class).
 */
import { S3ReadError, TransientError } from './errors.ts';

export interface RetryPolicy {
  /**
   * Total attempts per block. 6: with 10% of attempts failing (the fault-injection test rate) a
   * block fails for good with probability 1e-6; worst-case backoff stays ≈3 s, far under the 15 s
   * FUSE op timeout (design.md §4).
   */
  maxAttempts: number;
  /** 100 ms: a retried S3 500/503 usually succeeds on a different front-end almost at once. */
  baseDelayMs: number;
  /** 2 s: bounds one wait so the whole budget fits well inside the FUSE op timeout. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 2000 };

export async function withRetry<T>(
  what: string,
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  onRetry?: (err: TransientError, n: number) => void,
  signal?: AbortSignal,
  random: () => number = Math.random,
): Promise<T> {
  let last: TransientError | undefined;
  for (let n = 0; n < policy.maxAttempts; n++) {
    if (n > 0) {
      const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      await sleep(random() * cap, signal);
    }
    try {
      return await attempt(n);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      last = err;
      if (signal?.aborted) break;
      if (n + 1 < policy.maxAttempts) onRetry?.(err, n + 1);
    }
  }
  throw new S3ReadError(
    `${what}: giving up after ${policy.maxAttempts} attempts (${last?.message ?? 'aborted'}); check S3 reachability and credentials`,
    policy.maxAttempts,
    last?.status,
    { cause: last },
  );
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
