/**
 * The reconcile diff engine: a streaming merge-join of an S3 listing and the index, both sorted in
 * UTF-8 byte order (key-order.ts). It holds one item of each side at a time, so memory does not
 * depend on shard size; throughput is bounded by the two input streams.
 *
 * Both inputs must be strictly increasing; an out-of-order key would turn into phantom drift (an
 * object reported both missing and added), so it is detected and thrown instead.
 */
import { StrataError } from '../errors.ts';
import { compareKeys } from './key-order.ts';
import type { DiffItem, IndexedObject, ListedObject } from './types.ts';
import { normalizeEtag } from './types.ts';

/** An input stream was not sorted in UTF-8 byte order (e.g. the index read without COLLATE "C"). */
export class KeyOrderError extends StrataError {
  constructor(side: 'listing' | 'index', previous: string, next: string) {
    super(
      'key_order',
      `${side} is not in UTF-8 byte order: ${JSON.stringify(next)} came after ${JSON.stringify(previous)}; ` +
        `read the index with ORDER BY key COLLATE "C" and keep S3 listings unsorted (they already are)`,
    );
  }
}

/** Compares one key present on both sides. */
export function classifyPair(listed: ListedObject, indexed: IndexedObject): DiffItem {
  const key = listed.key;
  if (indexed.state !== 'active') return { kind: 'changed', key, listed, indexed, reason: 'state' };
  if (normalizeEtag(listed.etag) !== normalizeEtag(indexed.etag)) {
    return { kind: 'changed', key, listed, indexed, reason: 'etag' };
  }
  if (listed.size !== indexed.size) return { kind: 'changed', key, listed, indexed, reason: 'size' };
  if (listed.versionId && indexed.versionId && listed.versionId !== indexed.versionId) {
    return { kind: 'changed', key, listed, indexed, reason: 'version' };
  }
  return { kind: 'unchanged', key, listed, indexed };
}

/**
 * Index rows already `deleted` that S3 does not list agree with S3: they produce no item at all.
 */
export async function* mergeJoin(
  listing: AsyncIterable<ListedObject> | Iterable<ListedObject>,
  index: AsyncIterable<IndexedObject> | Iterable<IndexedObject>,
): AsyncGenerator<DiffItem> {
  const li = iterate(listing);
  const ii = iterate(index);
  let l = await li.next();
  let i = await ii.next();
  let lastListed: string | undefined;
  let lastIndexed: string | undefined;
  const advanceListing = async () => {
    lastListed = (l.value as ListedObject).key;
    l = await li.next();
    if (!l.done && compareKeys(l.value.key, lastListed) <= 0)
      throw new KeyOrderError('listing', lastListed, l.value.key);
  };
  const advanceIndex = async () => {
    lastIndexed = (i.value as IndexedObject).key;
    i = await ii.next();
    if (!i.done && compareKeys(i.value.key, lastIndexed) <= 0)
      throw new KeyOrderError('index', lastIndexed, i.value.key);
  };
  try {
    while (!l.done || !i.done) {
      const c = l.done ? 1 : i.done ? -1 : compareKeys(l.value.key, i.value.key);
      if (c < 0) {
        const listed = l.value as ListedObject;
        yield { kind: 'added', key: listed.key, listed };
        await advanceListing();
      } else if (c > 0) {
        const indexed = i.value as IndexedObject;
        if (indexed.state !== 'deleted') yield { kind: 'missing', key: indexed.key, indexed };
        await advanceIndex();
      } else {
        yield classifyPair(l.value as ListedObject, i.value as IndexedObject);
        await advanceListing();
        await advanceIndex();
      }
    }
  } finally {
    // Release cursors (e.g. a PostgreSQL portal) when the consumer stops early.
    await li.return?.();
    await ii.return?.();
  }
}

function iterate<T>(source: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in source
    ? (source as AsyncIterable<T>)[Symbol.asyncIterator]()
    : (source as Iterable<T>)[Symbol.iterator]();
}
