import { describe, expect, it, vi } from 'vitest';
import {
  PreconditionFailedError,
  S3ReadError,
  TransientError,
} from '../../../mount-client/object-client/errors.ts';
import { withRetry } from '../../../mount-client/object-client/retry.ts';

const policy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

describe('withRetry', () => {
  it('retries transient failures and returns the first success', async () => {
    let n = 0;
    const retried: string[] = [];
    const r = await withRetry(
      'op',
      policy,
      async () => {
        if (++n < 3) throw new TransientError('http-5xx', 'HTTP 503', 503);
        return 'ok';
      },
      (e) => retried.push(e.reason),
    );
    expect(r).toBe('ok');
    expect(retried).toEqual(['http-5xx', 'http-5xx']);
  });

  it('becomes an S3ReadError (EIO class) with the cause after the budget', async () => {
    let n = 0;
    const err = await withRetry('read x', policy, async () => {
      n++;
      throw new TransientError('timeout', 'timed out');
    }).catch((e: unknown) => e);
    expect(n).toBe(4);
    expect(err).toBeInstanceOf(S3ReadError);
    expect((err as S3ReadError).attempts).toBe(4);
    expect((err as S3ReadError).cause).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/read x: giving up after 4 attempts \(timed out\)/);
  });

  it('never retries permanent errors', async () => {
    let n = 0;
    await expect(
      withRetry('op', policy, async () => {
        n++;
        throw new PreconditionFailedError('changed');
      }),
    ).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(n).toBe(1);
  });

  it('waits a full-jitter delay bounded by base·2^n and the cap', async () => {
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    const spy = ((fn: () => void, ms: number) => {
      delays.push(ms);
      return real(fn, 0);
    }) as typeof setTimeout;
    globalThis.setTimeout = spy;
    try {
      await withRetry(
        'op',
        { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 },
        async () => {
          throw new TransientError('reset', 'reset');
        },
        undefined,
        undefined,
        () => 1, // the top of each jitter range
      ).catch(() => undefined);
    } finally {
      globalThis.setTimeout = real;
    }
    expect(delays).toEqual([100, 200, 300, 300]);
  });
});

describe('withRetry deadline', () => {
  it('aborts the attempt in flight and gives up with an EIO-class error when the deadline passes', async () => {
    // Prepare: attempts that hang until aborted, many attempts allowed.
    let attempts = 0;
    let signal: AbortSignal | undefined;
    // Act
    const err = await withRetry(
      'read x',
      { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 2, deadlineMs: 50 },
      (_n, ctx) => {
        attempts++;
        signal = ctx.signal;
        return new Promise<never>((_res, rej) => {
          ctx.signal.addEventListener('abort', () => rej(new Error('aborted')), { once: true });
        });
      },
    ).catch((e: unknown) => e);
    // Assess
    expect(err).toBeInstanceOf(S3ReadError);
    expect((err as Error).message).toMatch(/deadline passed/);
    expect(attempts).toBe(1);
    // The attempt only ends when aborted: the deadline cut it off (no elapsed-time bound, which a
    // stalled CI machine could break).
    expect(signal?.aborted).toBe(true);
  });

  it('restarts the clock once at startClock (queue time is not charged to the fetch)', async () => {
    // Fake timers: which of the deadline and the sleeps is due first is exact. With real ones the
    // 80 ms margins held only if no stall (GC, preemption) landed between arming the deadline and
    // starting a sleep.
    vi.useFakeTimers();
    try {
      const r = withRetry(
        'op',
        { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1, deadlineMs: 200 },
        async (_n, ctx) => {
          await new Promise((res) => setTimeout(res, 120)); // "queued" for a slot
          ctx.startClock();
          await new Promise((res) => setTimeout(res, 120)); // the transfer itself
          return ctx.signal.aborted ? 'aborted' : 'ok';
        },
      );
      await vi.advanceTimersByTimeAsync(240);
      expect(await r).toBe('ok');
    } finally {
      vi.useRealTimers();
    }
  });
});
