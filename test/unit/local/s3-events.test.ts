import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildS3EventRecord,
  decodeEventKey,
  encodeEventKey,
  Sequencer,
  s3EventMessage,
} from '../../../local/s3-events.ts';

describe('encodeEventKey', () => {
  it.each([
    ['data/a b.txt', 'data/a+b.txt'],
    ['data/a+b.txt', 'data/a%2Bb.txt'],
    ['data/100%.txt', 'data/100%25.txt'],
    ['data/#1?.txt', 'data/%231%3F.txt'],
    ['data/café/ü.txt', 'data/caf%C3%A9/%C3%BC.txt'],
    ['data/🎉 party.txt', 'data/%F0%9F%8E%89+party.txt'],
    ['data/a-b_c.d*e/f', 'data/a-b_c.d*e/f'],
  ])('%s → %s', (key, encoded) => {
    expect(encodeEventKey(key)).toBe(encoded);
    expect(decodeEventKey(encoded)).toBe(key);
  });

  it('round-trips any Unicode key', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        (key) => decodeEventKey(encodeEventKey(key)) === key,
      ),
    );
  });

  it('never leaves a space or a literal + in the encoded form', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (key) => {
        const enc = encodeEventKey(key);
        return !enc.includes(' ') && (enc.match(/\+/g)?.length ?? 0) === (key.match(/ /g)?.length ?? 0);
      }),
    );
  });
});

describe('buildS3EventRecord', () => {
  it('builds an ObjectCreated record in the shape S3 sends', () => {
    const r = buildS3EventRecord({
      eventName: 'ObjectCreated:Put',
      bucket: 'b',
      key: 'data/a b',
      size: 5,
      eTag: '"5d41402abc4b2a76b9719d911017c592"',
      sequencer: '0000000000000001',
      region: 'eu-west-1',
      eventTime: new Date('2024-01-02T03:04:05.678Z'),
    });
    expect(r).toMatchObject({
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: 'eu-west-1',
      eventTime: '2024-01-02T03:04:05.678Z',
      eventName: 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: 'b', arn: 'arn:aws:s3:::b' },
        object: {
          key: 'data/a+b',
          size: 5,
          eTag: '5d41402abc4b2a76b9719d911017c592',
          sequencer: '0000000000000001',
        },
      },
    });
    expect(r.s3.object).not.toHaveProperty('versionId');
    expect(JSON.parse(s3EventMessage([r]))).toEqual({ Records: [r] });
  });

  it('gives removal records no size or eTag, and DeleteMarkerCreated its versionId', () => {
    const del = buildS3EventRecord({
      eventName: 'ObjectRemoved:Delete',
      bucket: 'b',
      key: 'k',
      sequencer: '01',
    });
    expect(del.s3.object).toEqual({ key: 'k', sequencer: '01' });
    const marker = buildS3EventRecord({
      eventName: 'ObjectRemoved:DeleteMarkerCreated',
      bucket: 'b',
      key: 'k',
      versionId: 'v1',
      sequencer: '02',
    });
    expect(marker.s3.object).toEqual({ key: 'k', versionId: 'v1', sequencer: '02' });
  });

  it('refuses an ObjectCreated record without a size', () => {
    expect(() =>
      buildS3EventRecord({ eventName: 'ObjectCreated:Copy', bucket: 'b', key: 'k', sequencer: '01' }),
    ).toThrow(/size/);
  });
});

describe('Sequencer', () => {
  it('issues strictly increasing fixed-width uppercase hex, even when the clock stands still or goes back', () => {
    const times = [1000, 1000, 1000, 999, 2000, 1500];
    let i = 0;
    const seq = new Sequencer(() => times[Math.min(i++, times.length - 1)] as number);
    const out = times.map(() => seq.next());
    for (const s of out) expect(s).toMatch(/^[0-9A-F]{16}$/);
    for (let j = 1; j < out.length; j++) expect(out[j]! > out[j - 1]!).toBe(true);
  });
});
