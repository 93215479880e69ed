/**
 * A synthetic index for the query benchmarks (explain.ts, resolve-sql.ts): `objects` rows for
 * 1,000 directories × objects/1,000 files over 30 days, 2 % of them tombstones, and one rollup row
 * per directory — written by SQL in one statement each, so a million rows take seconds.
 */
import type { Queryable } from '../../functions/adapters/pg/pool.ts';

export async function seedSyntheticIndex(db: Queryable, objects: number): Promise<void> {
  await db.query(
    `INSERT INTO objects (path, parent, name, key, state, size, etag, sequencer, last_modified, day)
     SELECT '/d' || (i % 1000) || '/f' || lpad(i::text, 8, '0'), '/d' || (i % 1000), 'f' || lpad(i::text, 8, '0'),
            'data/d' || (i % 1000) || '/f' || i, CASE WHEN i % 50 = 0 THEN 'deleted' ELSE 'active' END, i, md5(i::text),
            lpad(to_hex(i), 32, '0'), now(), DATE '2024-01-01' + (i % 30)
       FROM generate_series(1, $1) AS i`,
    [objects],
  );
  await db.query(
    `INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
     SELECT parent, '/', substr(parent, 2), count(*), sum(size), now() FROM objects WHERE state = 'active' GROUP BY parent`,
  );
}
