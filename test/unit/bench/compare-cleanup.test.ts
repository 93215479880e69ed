import { describe, expect, it } from 'vitest';
import { CleanupRegistry } from '../../../bench/compare/cleanup.ts';

describe('CleanupRegistry', () => {
  it('runs every cleanup once, newest first, and keeps going past failures', async () => {
    const reg = new CleanupRegistry();
    const order: string[] = [];
    reg.add('stack', () => {
      order.push('stack');
    });
    reg.add('mount', () => {
      throw new Error('still mounted');
    });
    reg.add('proxy', async () => {
      await new Promise((r) => setTimeout(r, 5));
      order.push('proxy');
    });
    expect(reg.pending()).toEqual(['stack', 'mount', 'proxy']);
    const failures = await reg.runAll();
    expect(order).toEqual(['proxy', 'stack']);
    expect(failures.map((f) => [f.name, f.error.message])).toEqual([['mount', 'still mounted']]);
    expect(reg.pending()).toEqual([]);
    expect(await reg.runAll()).toEqual([]);
    expect(order).toEqual(['proxy', 'stack']);
  });

  it('lets a resource be released early, after which runAll skips it', async () => {
    const reg = new CleanupRegistry();
    let n = 0;
    const release = reg.add('mount', () => {
      n++;
    });
    await release();
    await release();
    await reg.runAll();
    expect(n).toBe(1);
  });

  it('shares one run between concurrent runAll calls (signal during normal shutdown)', async () => {
    const reg = new CleanupRegistry();
    let n = 0;
    reg.add('slow', async () => {
      await new Promise((r) => setTimeout(r, 10));
      n++;
    });
    await Promise.all([reg.runAll(), reg.runAll()]);
    expect(n).toBe(1);
  });
});
