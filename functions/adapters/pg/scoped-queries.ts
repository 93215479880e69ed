/**
 * Index queries for tokens limited to path prefixes. The filter runs in SQL, so every row that
 * reaches the handler is visible to the token: page sizes stay full and cursors / sequences are
 * built only from visible rows (a cursor or `nextSince` taken from a filtered-out row would name
 * another team's path or reveal its write activity).
 *
 * Prefixes are normalized directory paths (`/team-a`); a path is within one when it equals it or
 * lies beneath it (core/paths.ts isWithin).
 */
import type { Change, ChangeOp, Entry } from '../../core/api-types.ts';
import { type DayRow, dayPage } from './index-store.ts';
import type { Queryable } from './pool.ts';

/** SQL predicate: `col` lies within one of the prefixes in `$n::text[]`. */
function withinSql(col: string, n: number): string {
  return `EXISTS (SELECT 1 FROM unnest($${n}::text[]) p WHERE ${col} = p OR (${col} >= p || '/' AND ${col} < p || '/' || chr(1114111)))`;
}

function prefixParam(prefixes: string[]): string[] {
  return prefixes.map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));
}

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
 * Cost: a range scan of the journal from `since` (the seq primary key), filtered.
 */
export async function changesWithin(
  db: Queryable,
  since: number,
  limit: number,
  prefixes: string[],
): Promise<{ changes: Change[]; latest: number }> {
  const params = [since, prefixParam(prefixes)];
  const [page, latest] = await Promise.all([
    db.query<{
      seq: string;
      op: ChangeOp;
      path: string;
      etag: string | null;
      size: number | null;
      at: Date;
      run_id: string | null;
    }>(
      `SELECT seq, op, path, etag, size::float8 AS size, at, run_id FROM changes c
        WHERE seq > $1 AND ${withinSql('c.path', 2)} ORDER BY seq LIMIT $3`,
      [...params, limit],
    ),
    db.query<{ latest: string | null }>(
      `SELECT max(seq) AS latest FROM changes c WHERE seq > $1 AND ${withinSql('c.path', 2)}`,
      params,
    ),
  ]);
  return {
    changes: page.rows.map((r) => ({
      seq: Number(r.seq),
      op: r.op,
      path: r.path,
      ...(r.etag ? { etag: r.etag } : {}),
      ...(r.size !== null ? { size: r.size } : {}),
      at: r.at.toISOString(),
      ...(r.run_id ? { runId: r.run_id } : {}),
    })),
    latest: Math.max(since, Number(latest.rows[0]?.latest ?? 0)),
  };
}
