import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter, PrioritySemaphore } from '../../../mount-client/object-client/limiter.ts';

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { wait, open };
}

describe('ConcurrencyLimiter', () => {
  it('gives a freed slot to a waiting demand read before earlier read-ahead', async () => {
    // Prepare: one slot, held; two prefetches queue, then a demand read.
    const limiter = new ConcurrencyLimiter(1, 1);
    const order: string[] = [];
    const hold = gate();
    const first = limiter.run('b', () => hold.wait, { demand: false });
    const job = (name: string) => async () => {
      order.push(name);
    };
    const p1 = limiter.run('b', job('prefetch-1'), { demand: false });
    const p2 = limiter.run('b', job('prefetch-2'), { demand: false });
    const d = limiter.run('b', job('demand'), { demand: true });
    // Act
    hold.open();
    await Promise.all([first, p1, p2, d]);
    // Assess
    expect(order).toEqual(['demand', 'prefetch-1', 'prefetch-2']);
  });

  it('lets a queued prefetch jump ahead when a demand read raises its ticket', async () => {
    const limiter = new ConcurrencyLimiter(1, 1);
    const order: string[] = [];
    const hold = gate();
    const first = limiter.run('b', () => hold.wait, { demand: false });
    const ticket = { demand: false };
    const p1 = limiter.run('b', async () => void order.push('other'), { demand: false });
    const p2 = limiter.run('b', async () => void order.push('joined'), ticket);
    ticket.demand = true; // a demand read joined this block's flight
    hold.open();
    await Promise.all([first, p1, p2]);
    expect(order).toEqual(['joined', 'other']);
  });

  it('never runs more than the limit at once and frees slots on failure', async () => {
    const limiter = new ConcurrencyLimiter(2, 2);
    let running = 0;
    let peak = 0;
    const jobs = Array.from({ length: 8 }, (_, i) =>
      limiter
        .run(
          'b',
          async () => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((r) => setTimeout(r, 1));
            running--;
            if (i % 3 === 0) throw new Error('boom');
          },
          { demand: i % 2 === 0 },
        )
        .catch(() => undefined),
    );
    await Promise.all(jobs);
    expect(peak).toBe(2);
    expect(limiter.active).toBe(0);
    expect(limiter.pending).toBe(0);
  });

  it('rejects a limit below one', () => {
    expect(() => new PrioritySemaphore(0)).toThrow(/must be ≥ 1/);
  });
});
