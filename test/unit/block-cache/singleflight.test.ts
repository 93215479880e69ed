import { expect, it } from 'vitest';
import { Singleflight } from '../../../mount-client/block-cache/singleflight.ts';

it('runs one load for concurrent callers of a key and shares its result', async () => {
  const sf = new Singleflight<number>();
  let loads = 0;
  let release!: (n: number) => void;
  const gate = new Promise<number>((r) => {
    release = r;
  });
  const all = Array.from({ length: 10 }, () =>
    sf.do('k', () => {
      loads++;
      return gate;
    }),
  );
  expect(sf.size).toBe(1);
  release(42);
  expect(await Promise.all(all)).toEqual(Array(10).fill(42));
  expect(loads).toBe(1);
  expect(sf.size).toBe(0);
});

it('does not cache failures: the next call loads again', async () => {
  const sf = new Singleflight<number>();
  let loads = 0;
  await expect(
    sf.do('k', async () => {
      loads++;
      throw new Error('boom');
    }),
  ).rejects.toThrow('boom');
  expect(await sf.do('k', async () => ++loads)).toBe(2);
});

it('keeps different keys independent', async () => {
  const sf = new Singleflight<string>();
  const [a, b] = await Promise.all([sf.do('a', async () => 'A'), sf.do('b', async () => 'B')]);
  expect([a, b]).toEqual(['A', 'B']);
});
