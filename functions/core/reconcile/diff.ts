/**
 * The reconcile diff engine: a streaming merge-join of an S3 listing and the index, both sorted in
 * UTF-8 byte order (key-order.ts). Both sides arrive as batches (a listing page, an index keyset
 * batch), so memory is one batch per side whatever the shard size, and the join loop itself is
 * synchronous within a batch: it awaits only to fetch the next batch or when the consumer's
 * callback returns a promise (a HeadObject refresh). An await per key would cost more than the
 * comparison itself and cap the engine well below the rate PostgreSQL can stream rows.
 *
 * Both inputs must be strictly increasing; an out-of-order key would turn into phantom drift (an
 * object reported both missing and added), so it is detected and thrown instead.
 */
import { StrataError } from '../errors.ts';
import { compareKeys } from './key-order.ts';
import type { DiffItem, IndexedObject, ListedObject } from './types.ts';
import { normalizeEtag } from './types.ts';

/** One side of the join: a single batch, or a stream of batches in key order. */
export type Source<T> = T[] | AsyncIterable<T[]> | Iterable<T[]>;

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

/** A read position in a stream of batches. */
class Cursor<T extends { key: string }> {
  private batch: T[] = [];
  private i = 0;
  private done = false;
  private last: string | undefined;
  private readonly it: AsyncIterator<T[]> | Iterator<T[]>;

  constructor(
    source: Source<T>,
    private readonly side: 'listing' | 'index',
  ) {
    if (Array.isArray(source)) this.it = [source][Symbol.iterator]();
    else if (Symbol.asyncIterator in source) this.it = (source as AsyncIterable<T[]>)[Symbol.asyncIterator]();
    else this.it = (source as Iterable<T[]>)[Symbol.iterator]();
  }

  get head(): T | undefined {
    return this.batch[this.i];
  }

  /** Makes `head` the next item (fetching batches as needed); undefined at the end. */
  async fill(): Promise<void> {
    while (this.i >= this.batch.length && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.batch = r.value;
        this.i = 0;
      }
    }
    this.check();
  }

  /** Moves to the next item; returns a promise only when a new batch must be fetched. */
  advance(): Promise<void> | undefined {
    this.i++;
    if (this.i >= this.batch.length) return this.fill();
    this.check();
    return undefined;
  }

  private check(): void {
    const h = this.batch[this.i];
    if (h === undefined) return;
    if (this.last !== undefined && compareKeys(h.key, this.last) <= 0)
      throw new KeyOrderError(this.side, this.last, h.key);
    this.last = h.key;
  }

  async close(): Promise<void> {
    if (!this.done) await this.it.return?.();
  }
}

/**
 * Calls `onItem` for every key in either stream, in key order. Index rows already `deleted` that
 * S3 does not list agree with S3 and produce no item. When `onItem` returns a promise, the join
 * waits for it (backpressure for heals that call S3).
 */
export async function mergeJoin(
  listing: Source<ListedObject>,
  index: Source<IndexedObject>,
  onItem: (item: DiffItem) => void | Promise<void>,
): Promise<void> {
  const l = new Cursor(listing, 'listing');
  const i = new Cursor(index, 'index');
  try {
    await l.fill();
    await i.fill();
    for (;;) {
      const a = l.head;
      const b = i.head;
      if (a === undefined && b === undefined) return;
      const c = a === undefined ? 1 : b === undefined ? -1 : compareKeys(a.key, b.key);
      let r: void | Promise<void>;
      if (c < 0) {
        const listed = a as ListedObject;
        r = onItem({ kind: 'added', key: listed.key, listed });
        if (r) await r;
        const p = l.advance();
        if (p) await p;
      } else if (c > 0) {
        const indexed = b as IndexedObject;
        if (indexed.state !== 'deleted') {
          r = onItem({ kind: 'missing', key: indexed.key, indexed });
          if (r) await r;
        }
        const p = i.advance();
        if (p) await p;
      } else {
        r = onItem(classifyPair(a as ListedObject, b as IndexedObject));
        if (r) await r;
        const p = l.advance();
        if (p) await p;
        const q = i.advance();
        if (q) await q;
      }
    }
  } finally {
    // Release the sources (e.g. stop an index reader) when the join ends early or fails.
    await l.close();
    await i.close();
  }
}
