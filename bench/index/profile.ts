/**
 * Where the indexer's time goes (issue 3 profiling aid): runs N synthetic events through
 * `indexBatch` (same keyspace and concurrency as run.ts) and prints wall time per statement kind
 * (summed over batches; includes waiting for the 2 shared cores), Node CPU, and PostgreSQL CPU
 * (this cluster's processes only, from /proc; Linux).
 *
 * Usage: npx tsx bench/index/profile.ts [--events 20000] [--concurrency 8]
 */
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import pg from 'pg';
import { applyObjectChanges, type ObjectChange } from '../../functions/adapters/pg/index-store.ts';
import { createPool, type Pool, withTransaction } from '../../functions/adapters/pg/pool.ts';
import { RedisGuard } from '../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../functions/config.ts';
import { type IndexerDeps, indexBatch } from '../../functions/handlers/indexer.ts';
import { startTestDb } from '../../test/integration/index/db.ts';
import { putEvent, sqsRecord, BUCKET as TB, PREFIX as TP } from '../../test/integration/index/s3-events.ts';
import { clusterCpuSeconds } from './pg-cpu.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
process.env.STRATA_LOG_LEVEL = 'SILENT';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '8' },
    /** Also print the plan of every statement inside strata_apply_changes for one more batch (auto_explain). */
    explain: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(args.events);
const CONC = Number(args.concurrency);

/** Statement kind = its first words after WITH/whitespace, enough to tell the indexer's statements apart. */
function kind(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim().slice(0, 60);
}
const spent = new Map<string, { n: number; ms: number }>();
const orig = pg.Client.prototype.query;
// biome-ignore lint/suspicious/noExplicitAny: profiling shim over pg's overloaded query()
(pg.Client.prototype as any).query = function (this: pg.Client, ...a: any[]) {
  const text = typeof a[0] === 'string' ? a[0] : (a[0]?.text ?? '?');
  const t0 = performance.now();
  // biome-ignore lint/suspicious/noExplicitAny: see above
  const p = (orig as any).apply(this, a);
  if (p && typeof p.then === 'function') {
    return p.finally(() => {
      const k = kind(text);
      const s = spent.get(k) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      spent.set(k, s);
    });
  }
  return p;
};

const db = await startTestDb();
try {
  const pool = createPool({ connectionString: db.url, max: CONC + 2, statementTimeoutMs: 60_000 });
  const deps: IndexerDeps = {
    config: parseConfig({ STRATA_BUCKET: TB, STRATA_DATA_PREFIX: TP, STRATA_CACHE_TTL_MS: '0' }),
    pool,
    redis: new RedisGuard(undefined),
    head: async () => ({ etag: 'e', contentType: 'application/octet-stream' }),
  };
  const now = new Date();
  const batches: ReturnType<typeof sqsRecord>[][] = [];
  for (let i = 0; i < EVENTS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(EVENTS, i + 100); j++)
      batch.push(
        sqsRecord(putEvent(`data/d${j % 1000}/s${(j >> 10) % 10}/f${j}.bin`, j + 1, 1000 + j, 'e', now)),
      );
    batches.push(batch);
  }
  const limit = pLimit(CONC);
  const pg0 = await clusterCpuSeconds(db.url);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(batches.map((b) => limit(() => indexBatch(deps, b))));
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const pgSecs = (await clusterCpuSeconds(db.url)) - pg0;
  process.stdout.write(
    `${EVENTS} events in ${secs.toFixed(2)} s = ${Math.round(EVENTS / secs)} events/s; ` +
      `Node CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, PostgreSQL CPU ${pgSecs.toFixed(2)} s\n\n`,
  );
  process.stdout.write('| statement | count | total wall ms | ms per call |\n| --- | --- | --- | --- |\n');
  for (const [k, s] of [...spent.entries()].sort((a, b) => b[1].ms - a[1].ms))
    process.stdout.write(`| \`${k}\` | ${s.n} | ${Math.round(s.ms)} | ${(s.ms / s.n).toFixed(2)} |\n`);
  if (args.explain) await explainOneBatch(pool);
  await pool.end();
} finally {
  await db.stop();
}

/**
 * auto_explain, loaded for one session (no server restart), reports each nested statement of the
 * write function as a NOTICE with ANALYZE timings: where a batch spends its server time.
 */
async function explainOneBatch(pool: Pool): Promise<void> {
  const changes: ObjectChange[] = Array.from({ length: 100 }, (_, k) => {
    const j = EVENTS + k;
    return {
      kind: 'put',
      key: `data/d${j % 1000}/s${(j >> 10) % 10}/f${j}.bin`,
      path: `/d${j % 1000}/s${(j >> 10) % 10}/f${j}.bin`,
      size: 1000 + j,
      etag: 'e',
      sequencer: String(j + 1).padStart(32, '0'),
      lastModified: new Date(),
    };
  });
  await withTransaction(pool, async (c) => {
    c.on('notice', (n) => process.stdout.write(`\n${n.message}\n`));
    await c.query(`LOAD 'auto_explain'`);
    for (const s of [
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_analyze = on',
      'auto_explain.log_buffers = on',
      'auto_explain.log_nested_statements = on',
      "auto_explain.log_level = 'notice'",
    ])
      await c.query(`SET LOCAL ${s}`);
    await applyObjectChanges(c, changes, { source: 'event' });
    c.removeAllListeners('notice');
  });
}
