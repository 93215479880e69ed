import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { decodeS3Key, parseS3Message } from '../../../functions/core/s3-event.ts';
import { isNewer, normalizeSequencer } from '../../../functions/core/sequencer.ts';
import { buildS3EventRecord, encodeEventKey, s3EventMessage } from '../../../local/s3-events.ts';

describe('S3 event parsing', () => {
  it('decodes form-URL-encoded keys (+ is a space, %2B is +)', () => {
    for (const key of ['a b/c+d.txt', '100%/x#y?z', 'émoji 🙂', 'plain/key']) {
      expect(decodeS3Key(encodeEventKey(key))).toBe(key);
    }
    expect(decodeS3Key('a+b%2Bc')).toBe('a b+c');
  });

  it('parses put and delete records with padded sequencers and bare etags', () => {
    const body = s3EventMessage([
      buildS3EventRecord({
        eventName: 'ObjectCreated:Put',
        bucket: 'b',
        key: 'data/a b',
        sequencer: '0A',
        size: 3,
        eTag: '"abc"',
      }),
      buildS3EventRecord({
        eventName: 'ObjectRemoved:DeleteMarkerCreated',
        bucket: 'b',
        key: 'data/x',
        sequencer: 'ff',
        versionId: 'v1',
      }),
    ]);
    const msg = parseS3Message(body);
    expect(msg.type).toBe('events');
    if (msg.type !== 'events') return;
    expect(msg.events[0]).toMatchObject({
      kind: 'put',
      key: 'data/a b',
      size: 3,
      etag: 'abc',
      sequencer: '0A'.padStart(32, '0'),
    });
    expect(msg.events[1]).toMatchObject({
      kind: 'delete',
      key: 'data/x',
      versionId: 'v1',
      sequencer: 'FF'.padStart(32, '0'),
    });
  });

  it('ignores s3:TestEvent and unwraps SNS envelopes', () => {
    const test = JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'b' });
    expect(parseS3Message(test)).toEqual({ type: 'test' });
    expect(parseS3Message(JSON.stringify({ Type: 'Notification', Message: test }))).toEqual({ type: 'test' });
  });

  it('rejects malformed messages with a ValidationError naming the problem', () => {
    expect(() => parseS3Message('not json')).toThrow(ValidationError);
    expect(() => parseS3Message('{"Records":[{"eventName":"ObjectCreated:Put"}]}')).toThrow(
      /s3\.object missing/,
    );
    const noSize = s3EventMessage([
      buildS3EventRecord({ eventName: 'ObjectRemoved:Delete', bucket: 'b', key: 'k', sequencer: '1' }),
    ]).replace('ObjectRemoved:Delete', 'ObjectCreated:Put');
    expect(() => parseS3Message(noSize)).toThrow(/size/);
    const tagging = noSize.replace('ObjectCreated:Put', 'ObjectTagging:Put');
    expect(() => parseS3Message(tagging)).toThrow(
      /"ObjectTagging:Put" is not ObjectCreated:\*, ObjectRemoved:\* or LifecycleExpiration:\*/,
    );
  });

  it('reads lifecycle expirations as removals, keeping the versionId of a noncurrent-version expiry', () => {
    const msg = s3EventMessage([
      buildS3EventRecord({
        eventName: 'LifecycleExpiration:Delete',
        bucket: 'b',
        key: 'k',
        sequencer: '2',
        versionId: 'v1',
      }),
      buildS3EventRecord({
        eventName: 'LifecycleExpiration:DeleteMarkerCreated',
        bucket: 'b',
        key: 'k',
        sequencer: '3',
      }),
    ]);
    const parsed = parseS3Message(msg);
    expect(parsed.type === 'events' && parsed.events.map((e) => [e.kind, e.eventName, e.versionId])).toEqual([
      ['delete', 'LifecycleExpiration:Delete', 'v1'],
      ['delete', 'LifecycleExpiration:DeleteMarkerCreated', undefined],
    ]);
  });

  it('orders sequencers of different lengths numerically after padding', () => {
    expect(isNewer(normalizeSequencer('100'), normalizeSequencer('FF'))).toBe(true);
    expect(isNewer(normalizeSequencer('FF'), normalizeSequencer('100'))).toBe(false);
    expect(isNewer(normalizeSequencer('1'), null)).toBe(true);
    expect(isNewer(normalizeSequencer('1'), normalizeSequencer('1'))).toBe(false);
    expect(() => normalizeSequencer('xyz')).toThrow(ValidationError);
  });
});
