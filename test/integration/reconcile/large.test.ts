/**
 * A 10,000-object shard through the API → queue → worker path: dry run first (nothing written),
 * then the real run, then drift on top of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeCount,
  deleteObjects,
  type Harness,
  journalCount,
  putObjects,
  runAndWait,
  startHarness,
  stateOf,
} from './helpers.ts';

const N = 10_000;
let h: Harness;
const paths = Array.from({ length: N }, (_, i) => `/big/obj-${String(i).padStart(5, '0')}.dat`);

beforeAll(async () => {
  // 250-key pages: 40 listing pages and 40 index batches for the shard.
  h = await startHarness('large', { STRATA_RECONCILE_PAGE_SIZE: '250' });
  await putObjects(h, paths, (p) => p.slice(-9));
});
afterAll(async () => {
  await h?.stop();
});

describe('a 10,000-object shard', () => {
  it('dry run reports everything as added and writes nothing', async () => {
    const run = await runAndWait(h, { prefix: '/big', dryRun: true });
    expect(run).toMatchObject({ dryRun: true, shards: { total: 1, done: 1 } });
    expect(run.counts).toMatchObject({ scanned: N, added: N, missing: 0 });
    expect(run.samples?.length).toBeGreaterThan(0);
    expect(run.samples?.[0]).toEqual({ kind: 'added', path: paths[0] });
    expect(await activeCount(h)).toBe(0);
    expect(await journalCount(h)).toBe(0);
  });

  it('reconciles correctly: every object indexed once, then drift on top is healed', async () => {
    const run = await runAndWait(h, { prefix: '/big' });
    expect(run.counts).toMatchObject({ scanned: N, added: N, unchanged: 0 });
    expect(await activeCount(h)).toBe(N);
    expect(await journalCount(h, run.id)).toBe(N);

    // Drift: 100 deleted, 50 new, 10 overwritten with a different size
    await deleteObjects(h, paths.slice(5000, 5100));
    await putObjects(
      h,
      Array.from({ length: 50 }, (_, i) => `/big/zz-new-${i}.dat`),
    );
    await putObjects(h, paths.slice(9000, 9010), () => 'longer body than before');
    const again = await runAndWait(h, { prefix: '/big' });
    expect(again.counts).toMatchObject({
      scanned: N - 100 + 50,
      added: 50,
      missing: 100,
      refreshed: 10,
      unchanged: N - 100 - 10,
    });
    expect(await stateOf(h, paths[5050] as string)).toBe('missing');
    expect(await activeCount(h)).toBe(N - 100 + 50);
  });
});
