import { describe, expect, it } from 'vitest';
import {
  decide,
  type ObjectChange,
  RollupDeltas,
  reduceChanges,
  type StoredObject,
} from '../../../functions/core/index-apply.ts';

const at = new Date('2024-03-01T10:00:00Z');
const put = (path: string, sequencer: string | undefined, size = 1, etag = 'e'): ObjectChange => ({
  kind: 'put',
  key: `data${path}`,
  path,
  size,
  etag,
  sequencer,
  lastModified: at,
});
const active = (size: number, sequencer: string | null, etag = 'e'): StoredObject => ({
  path: '/a/b',
  state: 'active',
  size,
  etag,
  sequencer,
  day: '2024-03-01',
});

describe('reduceChanges', () => {
  it('keeps the newest change per path, sorted by path', () => {
    const out = reduceChanges([put('/b', '2'), put('/a', '5', 5), put('/a', '7', 7), put('/a', '6', 6)]);
    expect(out.map((c) => [c.path, c.sequencer])).toEqual([
      ['/a', '7'],
      ['/b', '2'],
    ]);
  });
});

describe('decide', () => {
  it('applies only strictly newer sequencers', () => {
    expect(decide(active(1, '5'), put('/a/b', '5'))).toBeUndefined();
    expect(decide(active(1, '5'), put('/a/b', '4'))).toBeUndefined();
    expect(decide(active(1, '5'), put('/a/b', '6', 9))).toMatchObject({
      state: 'active',
      size: 9,
      sequencer: '6',
    });
  });

  it('turns deletes into tombstones that keep the sequencer', () => {
    const next = decide(active(1, '5'), { kind: 'delete', key: 'data/a/b', path: '/a/b', sequencer: '6' });
    expect(next).toMatchObject({ state: 'deleted', sequencer: '6', size: 0, day: null });
  });

  it('applies drift only when it changes something and keeps the stored sequencer', () => {
    expect(decide(active(1, '5', 'e'), put('/a/b', undefined, 1, 'e'))).toBeUndefined();
    expect(decide(active(1, '5', 'e'), put('/a/b', undefined, 2, 'f'))).toMatchObject({
      sequencer: '5',
      etag: 'f',
    });
    expect(decide(active(1, '5'), { kind: 'missing', key: 'data/a/b', path: '/a/b' })).toMatchObject({
      state: 'missing',
      sequencer: '5',
    });
    expect(decide(undefined, { kind: 'missing', key: 'data/a/b', path: '/a/b' })).toBeUndefined();
  });
});

describe('decide on a row reconcile healed (no sequencer)', () => {
  const healed: StoredObject = {
    ...active(5, null, 'v2'),
    source: 'drift',
    lastModified: new Date('2024-03-01T12:00:00Z'),
  };
  const event = (etag: string, when: string, sequencer = '9'): ObjectChange => ({
    ...(put('/a/b', sequencer, 3, etag) as Extract<ObjectChange, { kind: 'put' }>),
    lastModified: new Date(when),
  });

  it('ignores an event for another version that happened before the healed one', () => {
    expect(decide(healed, event('v1', '2024-03-01T11:00:00Z'))).toBeUndefined();
    expect(
      decide(healed, {
        kind: 'delete',
        key: 'data/a/b',
        path: '/a/b',
        sequencer: '9',
        at: new Date('2024-03-01T11:00:00Z'),
      }),
    ).toBeUndefined();
  });

  it("applies a later event, and the healed version's own event (which brings its sequencer)", () => {
    expect(decide(healed, event('v3', '2024-03-01T13:00:00Z'))).toMatchObject({ etag: 'v3', sequencer: '9' });
    expect(decide(healed, event('v2', '2024-03-01T11:59:59Z'))).toMatchObject({ etag: 'v2', sequencer: '9' });
  });

  it('leaves rows the indexer wrote to the sequencer guard alone', () => {
    expect(decide({ ...healed, source: 'event' }, event('v1', '2024-03-01T11:00:00Z'))).toMatchObject({
      etag: 'v1',
    });
  });
});

describe('RollupDeltas', () => {
  it('aggregates one delta per ancestor and day for the whole batch', () => {
    const r = new RollupDeltas();
    const next1 = decide(undefined, put('/a/b', '1', 10));
    const next2 = decide(active(4, '1'), put('/a/b', '2', 6));
    if (!next1 || !next2) throw new Error('expected writes');
    r.add('/a/b', undefined, next1, at);
    r.add('/a/b', active(4, '1'), next2, at);
    expect(r.dirs.get('/a')).toMatchObject({ files: 1, bytes: 12, parent: '/', name: 'a' });
    expect(r.dirs.get('/')).toMatchObject({ files: 1, bytes: 12, parent: null });
    expect(r.days.get('2024-03-01')).toEqual({ files: 1, bytes: 12 });
  });
});
