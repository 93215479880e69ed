/**
 * Retry with full-jitter exponential backoff (delay = random(0, min(cap, base·2^attempt)), the AWS
 * Architecture Blog variant that spreads a thundering herd best). Only TransientError is retried;
 * typed permanent errors (precondition failed, not found) pass straight through. When the budget is
 * spent — attempts or the overall deadline, whichever comes first — the last transient error
 * becomes an S3ReadError (EIO class).
 *
 * What must stay true: attempts alone do NOT fit the FUSE op timeout. Six attempts of up to 3 s to
 * first byte plus 5 s per stalled chunk, with backoff between them, can take well over a minute,
 * and fuse-native fails any op after 15 s (design.md §4). The deadline is what bounds a block
 * fetch: no attempt starts and no backoff sleep extends past it, and the attempt in flight is
 * aborted when it passes. The FUSE read waiting on the fetch has its own deadline on top
 * (data-path.ts READ_DEADLINE_MS), so a reader gets a clean EIO before fuse-native gives up.
 */
import { S3ReadError, TransientError } from './errors.ts';

export interface RetryPolicy {
  /**
   * Total attempts per block. 6: with 10% of attempts failing (the fault-injection test rate) a
   * block fails for good with probability 1e-6.
   */
  maxAttempts: number;
  /** 100 ms: a retried S3 500/503 usually succeeds on a different front-end almost at once. */
  baseDelayMs: number;
  /** 2 s: bounds one wait so several retries still fit inside the deadline. */
  maxDelayMs: number;
  /**
   * 11 s from the first attempt of a block fetch: under fuse-native's 15 s op timeout with room for
   * the queueing and copying around it (the FUSE read's own deadline is 12 s).
   */
  deadlineMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 100,
  maxDelayMs: 2000,
  deadlineMs: 11_000,
};

/**
 * Runs `attempt` until it succeeds, fails permanently, or the budget is spent. Each attempt gets a
 * signal that aborts when the caller's signal does or the deadline passes. The deadline clock
 * runs from the call; the first `startClock()` restarts it once — callers that queue for a
 * concurrency slot call it when the first attempt actually starts, so time spent queued behind
 * other reads is not charged to this fetch (the FUSE read deadline bounds that wait).
 */
export async function withRetry<T>(
  what: string,
  policy: Partial<RetryPolicy> & Pick<RetryPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>,
  attempt: (n: number, ctx: { signal: AbortSignal; startClock: () => void }) => Promise<T>,
  onRetry?: (err: TransientError, n: number) => void,
  signal?: AbortSignal,
  random: () => number = Math.random,
): Promise<T> {
  const deadline = new AbortController();
  const both = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
  let endsAt = Number.POSITIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  let restarted = false;
  const arm = () => {
    if (policy.deadlineMs === undefined || deadline.signal.aborted) return;
    clearTimeout(timer);
    endsAt = Date.now() + policy.deadlineMs;
    timer = setTimeout(() => deadline.abort(new Error('deadline')), policy.deadlineMs);
    timer.unref?.();
  };
  // The clock runs from now; the first startClock() call restarts it once (see above).
  const startClock = () => {
    if (restarted) return;
    restarted = true;
    arm();
  };
  if (policy.deadlineMs !== undefined && !(policy.deadlineMs > 0)) deadline.abort();
  else arm();
  let last: TransientError | undefined;
  let n = 0;
  try {
    for (; n < policy.maxAttempts; n++) {
      if (n > 0) {
        const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
        const wait = random() * cap;
        if (Date.now() + wait >= endsAt) break; // the retry could not start before the deadline
        await sleep(wait, both);
      }
      if (both.aborted) break;
      try {
        return await attempt(n, { signal: both, startClock });
      } catch (err) {
        if (both.aborted) {
          // The deadline (or the caller) cut this attempt off: whatever it threw is an abort.
          if (err instanceof TransientError) last = err;
          n++;
          break;
        }
        if (!(err instanceof TransientError)) throw err;
        last = err;
        if (n + 1 < policy.maxAttempts) onRetry?.(err, n + 1);
      }
    }
  } finally {
    clearTimeout(timer);
  }
  const why = deadline.signal.aborted
    ? `the ${((policy.deadlineMs ?? 0) / 1000).toFixed(1)} s deadline passed${last ? ` (last: ${last.message})` : ''}`
    : (last?.message ?? 'aborted');
  throw new S3ReadError(
    `${what}: giving up after ${n} attempt${n === 1 ? '' : 's'} (${why}); check S3 reachability and credentials`,
    n,
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
