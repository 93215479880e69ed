import { describe, expect, it } from 'vitest';
import { KeyOrderError, mergeJoin } from '../../../functions/core/reconcile/diff.ts';
import type { DiffItem, IndexedObject, ListedObject } from '../../../functions/core/reconcile/types.ts';

const at = new Date('2024-01-01T00:00:00Z');
const listed = (key: string, etag = 'e', size = 1): ListedObject => ({ key, etag: `"${etag}"`, size });
const indexed = (
  key: string,
  etag = 'e',
  size = 1,
  state: IndexedObject['state'] = 'active',
): IndexedObject => ({
  key,
  etag,
  size,
  state,
  changedAt: at,
});

async function collect(l: ListedObject[], i: IndexedObject[]): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  await mergeJoin(l, i, (d) => {
    out.push([d.kind === 'changed' ? `changed:${d.reason}` : d.kind, d.key]);
  });
  return out;
}

describe('mergeJoin', () => {
  it('classifies added, missing, changed and unchanged keys', async () => {
    // Prepare
    const l = [listed('a'), listed('b', 'new'), listed('c', 'e', 2), listed('e'), listed('g')];
    const i = [
      indexed('b'),
      indexed('c'),
      indexed('d'),
      indexed('e'),
      indexed('f', 'e', 1, 'deleted'),
      indexed('g', 'e', 1, 'missing'),
    ];
    // Act
    const out = await collect(l, i);
    // Assess: etags compare without quotes; deleted rows S3 agrees with produce nothing
    expect(out).toEqual([
      ['added', 'a'],
      ['changed:etag', 'b'],
      ['changed:size', 'c'],
      ['missing', 'd'],
      ['unchanged', 'e'],
      ['changed:state', 'g'],
    ]);
  });

  it('handles empty sides', async () => {
    expect(await collect([], [])).toEqual([]);
    expect(await collect([listed('a')], [])).toEqual([['added', 'a']]);
    expect(await collect([], [indexed('a')])).toEqual([['missing', 'a']]);
  });

  it('joins in UTF-8 byte order, where emoji sort after U+FFxx characters', async () => {
    // Byte order: 'x\uff5e' (EF BD 9E) < 'x😀' (F0 9F 98 80)
    const keys = ['x\uff5e', 'x😀'];
    const out = await collect(
      keys.map((k) => listed(k)),
      keys.map((k) => indexed(k)),
    );
    expect(out.map(([kind]) => kind)).toEqual(['unchanged', 'unchanged']);
  });

  it('refuses input that is not in byte order instead of reporting phantom drift', async () => {
    // JavaScript's default sort puts the emoji first: what an index read without COLLATE "C" might do
    const wrong = ['x😀', 'x\uff5e'];
    await expect(
      collect(
        wrong.map((k) => listed(k)),
        [],
      ),
    ).rejects.toBeInstanceOf(KeyOrderError);
    await expect(
      collect(
        [],
        wrong.map((k) => indexed(k)),
      ),
    ).rejects.toThrow(/COLLATE "C"/);
  });

  it('streams: pulls the next batch only when the current one is used up, and awaits async consumers', async () => {
    // Prepare: two streams of 1,000 batches of 100 keys; count how far the index was pulled
    let pulled = 0;
    const keyOf = (n: number) => `k${String(n).padStart(7, '0')}`;
    async function* index(): AsyncGenerator<IndexedObject[]> {
      for (let b = 0; b < 1000; b++) {
        pulled++;
        yield Array.from({ length: 100 }, (_, j) => indexed(keyOf(b * 100 + j)));
      }
    }
    async function* listing(): AsyncGenerator<ListedObject[]> {
      for (let b = 0; b < 1000; b++) yield Array.from({ length: 100 }, (_, j) => listed(keyOf(b * 100 + j)));
    }
    // Act: the consumer is slow (async) for one item, then aborts the join after 250 items
    const seen: DiffItem[] = [];
    let slowDone = false;
    const stop = new Error('enough');
    await expect(
      mergeJoin(listing(), index(), (d) => {
        seen.push(d);
        if (seen.length === 10) {
          return new Promise<void>((r) =>
            setTimeout(() => {
              slowDone = true;
              r();
            }, 5),
          );
        }
        if (seen.length === 11) expect(slowDone).toBe(true);
        if (seen.length === 250) throw stop;
      }),
    ).rejects.toBe(stop);
    // Assess: three batches pulled for 250 items, not the whole stream
    expect(seen.every((d) => d.kind === 'unchanged')).toBe(true);
    expect(pulled).toBe(3);
  });
});
