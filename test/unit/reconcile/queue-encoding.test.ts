import { describe, expect, it } from 'vitest';
import { encodeMessage } from '../../../functions/adapters/aws/reconcile-queue.ts';
import type { ShardMessage } from '../../../functions/core/reconcile/types.ts';

describe('encodeMessage', () => {
  it('sends any key as pure ASCII and restores it exactly', () => {
    // Prepare: keys SQS would refuse raw (U+FFFE, emoji outside some emulators' ranges, controls-free)
    const message: ShardMessage = {
      v: 1,
      runId: 'r',
      shardId: 0,
      segment: 2,
      range: { prefix: 'data/', from: 'data/raw 🗂/', to: 'data/\ufffe/' },
      after: 'data/café/日本/\u00a0x',
      dryRun: false,
      graceSeconds: 0,
    };
    // Act
    const body = encodeMessage(message);
    // Assess
    expect(/^[\x20-\x7e]*$/.test(body)).toBe(true);
    expect(JSON.parse(body)).toEqual(message);
  });
});
