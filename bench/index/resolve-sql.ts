/**
 * Resolve's database statement, before and after it learned to flag a file that is also a
 * directory (RESOLVE_SQL: the primary-key probe plus, for a visible file, one probe of
 * dir_rollups_children), side by side on one synthetic index, interleaved in rounds so the
 * machine's noise falls on both alike. Cold caches in the API are what make this statement run;
 * warm resolves never reach PostgreSQL.
 *
 * Usage: npx tsx bench/index/resolve-sql.ts [--objects 1000000] [--resolves 20000] [--rounds 4]
 * [--concurrency 8] [--shared-buffers 128MB]
 */
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { RESOLVE_SQL } from '../../functions/adapters/pg/index-store.ts';
import { startTestDb } from '../../test/integration/index/db.ts';
import { seedSyntheticIndex } from './synthetic.ts';

const { values: args } = parseArgs({
  options: {
    objects: { type: 'string', default: '1000000' },
    resolves: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
    'shared-buffers': { type: 'string', default: '128MB' },
  },
});
const N = Number(args.objects);
const R = Number(args.resolves);
const ROUNDS = Number(args.rounds);
const CONC = Number(args.concurrency);

/** The statement resolve ran before (getObject's). */
const BEFORE_SQL = `SELECT path, key, state, size::float8 AS size, etag, version_id, last_modified, content_type,
            sha256, metadata, to_char(day, 'YYYY-MM-DD') AS day
       FROM objects WHERE path = $1 AND parent <> ''`;

const db = await startTestDb({ sharedBuffers: args['shared-buffers'] });
try {
  await db.pool.query('SET statement_timeout = 0');
  // The same synthetic index as bench/index/explain.ts (synthetic.ts).
  await seedSyntheticIndex(db.pool, N);
  await db.pool.query('VACUUM ANALYZE');

  // The same random paths for both statements in every round (a fixed LCG: reproducible).
  let x = 12345;
  const paths = Array.from({ length: R }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const i = 1 + (x % N);
    return `/d${i % 1000}/f${String(i).padStart(8, '0')}`;
  });
  const run = async (sql: string, withParent: boolean) => {
    const limit = pLimit(CONC);
    const t = performance.now();
    await Promise.all(
      paths.map((p) =>
        limit(() =>
          db.pool.query(
            sql,
            withParent ? [p, p.slice(0, p.lastIndexOf('/')), p.slice(p.lastIndexOf('/') + 1)] : [p],
          ),
        ),
      ),
    );
    return R / ((performance.now() - t) / 1000);
  };
  await run(BEFORE_SQL, false); // warm both: the table and its indexes into shared buffers
  await run(RESOLVE_SQL, true);
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which goes first so a drifting machine does not favour one.
    if (i % 2 === 0) {
      before.push(await run(BEFORE_SQL, false));
      after.push(await run(RESOLVE_SQL, true));
    } else {
      after.push(await run(RESOLVE_SQL, true));
      before.push(await run(BEFORE_SQL, false));
    }
  }
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)] as number;
  const n = (v: number) => Math.round(v).toLocaleString('en');
  process.stdout.write(
    [
      `Resolve statement, ${N.toLocaleString('en')} objects, ${R.toLocaleString('en')} random resolves per pass, ${CONC} connections, shared_buffers ${args['shared-buffers']}, ${ROUNDS} interleaved rounds`,
      '',
      '| statement | resolves/s per round | median | ratio |',
      '| --- | --- | ---: | ---: |',
      `| before: primary-key probe only | ${before.map(n).join(', ')} | ${n(median(before))} | 1.00× |`,
      `| now: + is-it-a-directory probe (RESOLVE_SQL) | ${after.map(n).join(', ')} | ${n(median(after))} | ${(median(after) / median(before)).toFixed(2)}× |`,
      '',
    ].join('\n'),
  );
} finally {
  await db.stop();
}
