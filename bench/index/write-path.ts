/**
 * The index write path alone (no S3-event parsing, no HEAD, no cache invalidation): N synthetic
 * puts in batches of 100 through applyObjectChangesAtomically, 8 batches in flight, then one
 * compaction of every touched directory — CPU per 1,000 events of this PostgreSQL cluster and of
 * this Node process. With `--variant file.sql …`, each file (a scratch `CREATE OR REPLACE
 * FUNCTION strata_apply_batch …` with a part removed, or any other DDL) is applied to a fresh
 * copy of the tables and measured after the unmodified function, in the same run: how the
 * breakdown in docs/index-design.md ("Where the time goes") was measured.
 *
 * Usage: npx tsx bench/index/write-path.ts [--events 50000] [--rounds 1] [--variant a.sql …]
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import {
  applyObjectChangesAtomically,
  compactRollups,
  type ObjectChange,
} from '../../functions/adapters/pg/index-store.ts';
import { createPool } from '../../functions/adapters/pg/pool.ts';
import { startTestDb } from '../../test/integration/index/db.ts';
import { clusterCpuSeconds } from './pg-cpu.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '50000' },
    // Variants are compared against a base run in the same process; repeat to see the spread.
    rounds: { type: 'string', default: '1' },
    variant: { type: 'string', multiple: true, default: [] },
    // As in run.ts (its option says why): npm start's 128MB, not the test clusters' 16MB.
    'shared-buffers': { type: 'string', default: '128MB' },
  },
});
const EVENTS = Number(args.events);
// 8 batches in flight, as in run.ts: SQS-triggered Lambdas run many batches at once.
const CONC = 8;

const db = await startTestDb({ sharedBuffers: args['shared-buffers'] });
try {
  const pool = createPool({ connectionString: db.url, max: CONC + 2, statementTimeoutMs: 60_000 });
  const base = (
    await pool.query<{ def: string }>("SELECT pg_get_functiondef('strata_apply_batch'::regproc) AS def")
  ).rows[0]?.def as string;
  const rows: string[][] = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const variant of ['(committed function)', ...(args.variant ?? [])]) {
      await pool.query(variant.startsWith('(') ? base : await readFile(variant, 'utf8'));
      await pool.query('TRUNCATE objects, dir_rollups, day_rollups, change_batches');
      // The keyspace of run.ts: 1,000 directories × 10 subdirectories, every event of a batch in
      // a different directory.
      const now = new Date();
      const batches: ObjectChange[][] = [];
      for (let i = 0; i < EVENTS; i += 100) {
        const b: ObjectChange[] = [];
        for (let j = i; j < Math.min(EVENTS, i + 100); j++) {
          const path = `/d${j % 1000}/s${(j >> 10) % 10}/f${j}.bin`;
          b.push({
            kind: 'put',
            key: `data${path}`,
            path,
            size: 1000 + j,
            etag: 'e',
            sequencer: String(j + 1).padStart(32, '0'),
            lastModified: now,
            contentType: 'application/octet-stream',
          });
        }
        batches.push(b);
      }
      const limit = pLimit(CONC);
      const pg0 = await clusterCpuSeconds(db.url);
      const n0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        batches.map((b) => limit(() => applyObjectChangesAtomically(pool, b, { source: 'event' }))),
      );
      const secs = (performance.now() - t0) / 1000;
      const pg1 = await clusterCpuSeconds(db.url);
      const node = process.cpuUsage(n0);
      const dirs = (await pool.query<{ d: string }>('SELECT DISTINCT dir AS d FROM dir_rollups')).rows.map(
        (r) => r.d,
      );
      const days = (
        await pool.query<{ d: string }>("SELECT DISTINCT to_char(day, 'YYYY-MM-DD') AS d FROM day_rollups")
      ).rows.map((r) => r.d);
      await compactRollups(pool, dirs, days, 1);
      const pg2 = await clusterCpuSeconds(db.url);
      const per1000 = (s: number) => ((s * 1e6) / EVENTS).toFixed(1);
      rows.push([
        variant,
        Math.round(EVENTS / secs).toLocaleString('en'),
        per1000(pg1 - pg0),
        per1000((node.user + node.system) / 1e6),
        per1000(pg2 - pg1),
      ]);
    }
  }
  process.stdout.write(
    `| write function | events/s | PG ms CPU / 1,000 | Node ms CPU / 1,000 | compaction afterwards, PG ms / 1,000 |\n| --- | --- | --- | --- | --- |\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`,
  );
  await pool.end();
} finally {
  await db.stop();
}
