/**
 * What reconciliation does about one difference. Pure: the worker applies the returned action.
 *
 * The in-flight guard: a row whose last change is newer than `cutoff` (= when this listing started,
 * minus the grace period, both on the database clock) is never touched. Such a row was written by
 * an event the listing snapshot may not reflect yet (an object indexed moments ago and not yet
 * listed, or an overwrite listed with its old etag); healing it would race the indexer and revert
 * newer truth. The next run sees it settled.
 */
import type { DiffItem, ListedObject, ReconcileCounts } from './types.ts';

export type HealAction =
  /** Index the listed object as-is (the listing carries what an S3 event carries). */
  | { do: 'put'; key: string; object: ListedObject; count: 'added' }
  /** Refresh from HeadObject, then index (content changed behind the index's back). */
  | { do: 'refresh'; key: string; listed: ListedObject; count: 'refreshed' }
  | { do: 'mark-missing'; key: string; count: 'missing' }
  | { do: 'mark-deleted'; key: string; count: 'deleted' }
  | { do: 'none'; key: string; count: 'unchanged' | 'skippedRecent' };

export function decideHeal(item: DiffItem, cutoff: Date): HealAction {
  const key = item.key;
  if (item.kind === 'unchanged') return { do: 'none', key, count: 'unchanged' };
  if (item.kind !== 'added' && item.indexed.changedAt.getTime() > cutoff.getTime()) {
    return { do: 'none', key, count: 'skippedRecent' };
  }
  switch (item.kind) {
    case 'added':
      return { do: 'put', key, object: item.listed, count: 'added' };
    case 'changed':
      // A row that was missing/deleted and is listed again with its old content is simply restored;
      // different content needs HeadObject for the fresh metadata.
      return item.reason === 'state'
        ? { do: 'put', key, object: item.listed, count: 'added' }
        : { do: 'refresh', key, listed: item.listed, count: 'refreshed' };
    case 'missing':
      // Two-step removal: a listing can lag a fresh write, so one miss only flags the row; a second
      // run (its cutoff past the flagging time) confirms the deletion.
      return item.indexed.state === 'missing'
        ? { do: 'mark-deleted', key, count: 'deleted' }
        : { do: 'mark-missing', key, count: 'missing' };
  }
}

export function tally(counts: ReconcileCounts, action: HealAction): void {
  counts[action.count] += 1;
}
