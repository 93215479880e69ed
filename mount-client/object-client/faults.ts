/**
 * Fault injection for tests and chaos runs: wraps a transport so a fraction of attempts fail the
 * way S3 fails in production — an HTTP 503 SlowDown, a request that hangs until the timeout, or a
 * connection reset halfway through the body (the real request is made, its bytes are thrown away).
 * Injected failures go through the same retry loop and metrics as real ones.
 */
import { TransientError } from './errors.ts';
import type { RangeRequest, RangeTransport } from './transport.ts';

export interface FaultOptions {
  /** Fraction of attempts answered with a 503 (e.g. 0.05). */
  errorRate?: number;
  /** Fraction of attempts that hang `timeoutMs` and then time out. */
  timeoutRate?: number;
  /** Fraction of attempts whose connection is reset mid-body. */
  resetRate?: number;
  /** How long an injected timeout hangs (default 50 ms, so tests stay fast). */
  timeoutMs?: number;
  /** Deterministic randomness for reproducible runs. */
  random?: () => number;
}

export interface FaultCounts {
  errors: number;
  timeouts: number;
  resets: number;
}

export function withFaults(
  inner: RangeTransport,
  f: FaultOptions,
): RangeTransport & { injected: FaultCounts } {
  const random = f.random ?? Math.random;
  const injected: FaultCounts = { errors: 0, timeouts: 0, resets: 0 };
  const e = f.errorRate ?? 0;
  const t = e + (f.timeoutRate ?? 0);
  const r = t + (f.resetRate ?? 0);
  return {
    name: `${inner.name}+faults`,
    injected,
    async get(req: RangeRequest): Promise<Buffer> {
      const x = random();
      if (x < e) {
        injected.errors++;
        throw new TransientError('http-5xx', `injected HTTP 503 SlowDown for ${req.object.key}`, 503);
      }
      if (x < t) {
        injected.timeouts++;
        await new Promise((res) => setTimeout(res, f.timeoutMs ?? 50));
        throw new TransientError('timeout', `injected timeout for ${req.object.key}`);
      }
      const data = await inner.get(req);
      if (x < r) {
        injected.resets++;
        throw new TransientError('reset', `injected connection reset after ${data.length >> 1} bytes`);
      }
      return data;
    },
    close: () => inner.close(),
  };
}

/** A small seeded PRNG (mulberry32) so a fault run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
