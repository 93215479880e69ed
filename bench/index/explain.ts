/**
 * Prints EXPLAIN (ANALYZE, BUFFERS) of the index's hot queries on a synthetic index of
 * --objects rows (default 1,000,000: 1,000 directories × 1,000 files over 30 days), for
 * docs/index-design.md. Usage: npx tsx bench/index/explain.ts [--objects 1000000]
 */
import { parseArgs } from 'node:util';
import { changesSql, ISO, RESOLVE_SQL } from '../../functions/adapters/pg/index-store.ts';
import { startTestDb } from '../../test/integration/index/db.ts';
import { seedSyntheticIndex } from './synthetic.ts';

const { values } = parseArgs({ options: { objects: { type: 'string', default: '1000000' } } });
const N = Number(values.objects);
const db = await startTestDb();
const c = await db.pool.connect();
try {
  await c.query('SET statement_timeout = 0');
  await seedSyntheticIndex(c, N);
  // 100,000 journal entries as the indexer writes them: one change_batches row per batch of 100.
  await c.query(
    `INSERT INTO change_batches (seq, n, op, path, state, etag, size)
     SELECT 1 + (r / 100) * 100, count(*), array_agg('put'::text ORDER BY r), array_agg(path ORDER BY r),
            array_agg('active'::text ORDER BY r), array_agg(etag ORDER BY r), array_agg(size ORDER BY r)
       FROM (SELECT row_number() OVER (ORDER BY path) - 1 AS r, path, etag, size FROM objects LIMIT 100000) x
      GROUP BY r / 100`,
  );
  await c.query('VACUUM ANALYZE');
  const show = async (title: string, sql: string, params: unknown[]) => {
    const { rows } = await c.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF) ${sql}`, params);
    process.stdout.write(`-- ${title}\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n\n`);
  };
  await show(
    'resolve (getObjectForResolve): one probe of the primary key; for a visible file, one probe of dir_rollups_children (is it a directory too?)',
    RESOLVE_SQL,
    ['/d7/f00500007', '/d7', 'f00500007'],
  );
  await show(
    'list, first page of files (listDir)',
    `SELECT name, size::float8 AS size, etag, ${ISO('last_modified')} AS mtime FROM objects WHERE parent = $1 AND state = 'active' AND (name > $2 OR (name = $2 AND $3)) ORDER BY name LIMIT $4`,
    ['/d7', '', false, 1001],
  );
  await show(
    'list, keyset page after a cursor',
    `SELECT name, size::float8 AS size, etag, ${ISO('last_modified')} AS mtime FROM objects WHERE parent = $1 AND state = 'active' AND (name > $2 OR (name = $2 AND $3)) ORDER BY name LIMIT $4`,
    ['/d7', 'f00500007', false, 1001],
  );
  await show(
    'list, subdirectories (rollup deltas summed per child)',
    `SELECT name, sum(files)::float8 AS files, sum(bytes)::float8 AS bytes, ${ISO('max(mtime)')} AS mtime FROM dir_rollups WHERE parent = $1 AND name > $2 GROUP BY name HAVING sum(files) > 0 ORDER BY name LIMIT $3`,
    ['/', 'd5', 1001],
  );
  await show(
    'by-date page (listByDay)',
    `SELECT path, name, size, etag, last_modified FROM objects WHERE day = $1 AND state = 'active' AND path > $2 ORDER BY path LIMIT $3`,
    ['2024-01-07', '/d5', 1001],
  );
  await show(
    'changes since (poller, changesSince): batch rows in seq order from since - 4095, below the commit-order cut-off, unnested, stopping at LIMIT',
    changesSql(false),
    [1050, 1000],
  );
  await show('changes since, prefix-limited token (changesSince with prefixes)', changesSql(true), [
    1050,
    1000,
    ['/d7'],
  ]);
} finally {
  c.release();
  await db.stop();
}
