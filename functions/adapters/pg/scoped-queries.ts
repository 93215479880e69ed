/**
 * Index queries for tokens limited to path prefixes. The filter runs in SQL, so every row that
 * reaches the handler is visible to the token: page sizes stay full and cursors / sequences are
 * built only from visible rows (a cursor or `nextSince` taken from a filtered-out row would name
 * another team's path or reveal its write activity).
 *
 * Prefixes are normalized directory paths (`/team-a`); a path is within one when it equals it or
 * lies beneath it (core/paths.ts isWithin).
 */
import type { Change, Entry } from '../../core/api-types.ts';
import { changesSince, type DayRow, dayPage, prefixParam, withinSql } from './index-store.ts';
import type { Queryable } from './pool.ts';

/** listByDay restricted to prefixes; keyset cursor = last (visible) path. */
export async function listByDayWithin(
  db: Queryable,
  day: string,
  limit: number,
  afterPath: string,
  prefixes: string[],
): Promise<{ entries: Entry[]; next?: string }> {
  const { rows } = await db.query<DayRow>(
    `SELECT path, name, size::float8 AS size, etag, last_modified FROM objects o
      WHERE day = $1 AND state = 'active' AND path > $2 AND ${withinSql('o.path', 4)}
      ORDER BY path LIMIT $3`,
    [day, afterPath, limit + 1, prefixParam(prefixes)],
  );
  return dayPage(rows, limit);
}

/**
 * Journal entries within prefixes after `since`, and the highest such sequence (`latest`). Both
 * come from visible rows only, so a prefix-limited poller learns nothing about other trees; it
 * still makes progress because every non-empty page moves `since` to its last visible entry.
 * The one journal reader lives in index-store.ts (changesSince) so the commit-order cut-off that
 * keeps readers from skipping entries is written once.
 */
export function changesWithin(
  db: Queryable,
  since: number,
  limit: number,
  prefixes: string[],
): Promise<{ changes: Change[]; latest: number }> {
  return changesSince(db, since, limit, prefixes);
}
