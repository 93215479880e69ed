import { describe, expect, it } from 'vitest';
import { emptyCounts, type ReconcileRun } from '../../../functions/core/reconcile/types.ts';
import {
  parseStallTimeout,
  ReconcileStalledError,
  summarize,
  waitForRun,
} from '../../../mount-client/cli/commands/reconcile.ts';

const run = (over: Partial<ReconcileRun> = {}): ReconcileRun => ({
  id: '6f1c1f5e-0000-4000-8000-000000000001',
  scope: '/',
  dryRun: false,
  graceSeconds: 0,
  trigger: 'api',
  status: 'running',
  startedAt: new Date(0).toISOString(),
  shards: { total: 4, done: 0 },
  counts: emptyCounts(),
  ...over,
});

/** A fake clock advanced only by the fake sleep: no real time passes. */
function fakeTime() {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
  };
}

describe('waitForRun (strata reconcile --wait, strata import)', () => {
  it('gives up after the stall timeout without progress, naming the run and how to inspect it', async () => {
    // Prepare: the run advances once, then a shard hangs (its message is on its way to the DLQ)
    const replies = [run({ shards: { total: 4, done: 1 } })];
    const fetch = async () => replies.shift() ?? run({ shards: { total: 4, done: 1 } });
    const time = fakeTime();
    // Act
    const err = await waitForRun(run(), fetch, {
      pollIntervalMs: 500,
      stallTimeoutMs: 10_000,
      verb: 'import',
      ...time,
    }).catch((e: unknown) => e);
    // Assess
    expect(err).toBeInstanceOf(ReconcileStalledError);
    expect((err as Error).message).toMatch(
      /import run 6f1c1f5e-0000-4000-8000-000000000001 made no progress for 10 s.*strata reconcile-status 6f1c1f5e-0000-4000-8000-000000000001/,
    );
    // Stalled = 10 s after the last change (which came on the first poll, at 0.5 s)
    expect(time.now()).toBe(10_500);
  });

  it('keeps waiting while the run makes progress, however long it takes', async () => {
    let polls = 0;
    const fetch = async () => {
      polls++;
      const c = { ...emptyCounts(), scanned: polls * 100 };
      return polls < 100 ? run({ counts: c }) : run({ status: 'succeeded', counts: c });
    };
    const final = await waitForRun(run(), fetch, {
      pollIntervalMs: 500,
      stallTimeoutMs: 2000,
      verb: 'reconcile',
      ...fakeTime(),
    });
    expect(final).toMatchObject({ status: 'succeeded', counts: { scanned: 10_000 } });
  });

  it('returns a failed run (the caller exits non-zero) and the summary lists the failed shards', async () => {
    const failed = run({
      status: 'failed',
      error:
        'shard 2 failed at segment 0 after 5 attempts (its message goes to the reconcile DLQ): S3 throttled',
      failedShards: [{ shardId: 2, segment: 0, attempts: 5, error: 'S3 throttled' }],
    });
    const final = await waitForRun(run(), async () => failed, {
      pollIntervalMs: 500,
      stallTimeoutMs: 0,
      verb: 'reconcile',
      ...fakeTime(),
    });
    expect(final.status).toBe('failed');
    expect(summarize(final)).toContain('shard 2 failed at segment 0 after 5 attempts: S3 throttled');
  });

  it('0 disables the stall timeout; bad values are rejected with the fix', async () => {
    let polls = 0;
    const fetch = async () => (++polls < 50 ? run() : run({ status: 'succeeded' }));
    const final = await waitForRun(run(), fetch, {
      pollIntervalMs: 60_000,
      stallTimeoutMs: 0,
      verb: 'reconcile',
      ...fakeTime(),
    });
    expect(final.status).toBe('succeeded');
    expect(parseStallTimeout('0')).toBe(0);
    expect(parseStallTimeout('900')).toBe(900);
    expect(() => parseStallTimeout('-1')).toThrow(/whole number of seconds/);
    expect(() => parseStallTimeout('soon')).toThrow(/0 waits for ever/);
  });
});

describe('summarize a dry run', () => {
  it('lists the sampled changes', () => {
    const text = summarize(
      run({ dryRun: true, status: 'succeeded', samples: [{ kind: 'add', path: '/a' }] }),
    );
    expect(text).toMatch(/these would change:\n {4}add {8}\/a$/);
  });

  it('says nothing would change instead of an empty list', () => {
    const text = summarize(run({ dryRun: true, status: 'succeeded', samples: [] }));
    expect(text).toMatch(/dry run: nothing was written; nothing would change$/);
    expect(text).not.toContain('these would change');
  });

  it('while running, points at reconcile-status instead of an empty list', () => {
    const text = summarize(run({ dryRun: true }));
    expect(text).toContain(
      '`strata reconcile-status 6f1c1f5e-0000-4000-8000-000000000001` shows what would change',
    );
  });
});
