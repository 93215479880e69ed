/**
 * Reconcile benchmarks, side by side in one run (issue 6):
 *
 * 1. The diff engine alone at 100k and 1M objects: merge-join of the real PostgreSQL index reader
 *    (PgReconcileIndex.read: keyset batches of 1000 in COLLATE "C" order) with a synthetic listing
 *    carrying 1% added / 1% missing / 1% changed keys, heal decisions included, nothing written.
 *    Next to it the same join over two synthetic in-memory streams (the join's own ceiling).
 *    Each measurement runs in a fresh child process so its peak RSS (getrusage maxrss) is its own;
 *    an idle child gives the baseline.
 * 2. End to end through the emulator: objects PUT straight into fauxqs (no events), then
 *    - the emulator's own listing rate (ListObjectsV2, 1000 per page) — the ceiling;
 *    - an import run (POST /v1/reconcile → planner → SQS → worker → PostgreSQL), all keys added;
 *    - a steady-state run over the same bucket, all keys unchanged (what the schedule does daily).
 *
 * Usage: npx tsx bench/reconcile/run.ts [--sizes 100000,1000000] [--e2e-objects 200000]
 * Prints a markdown table.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import pg from 'pg';
import { migrate } from '../../functions/adapters/pg/migrate.ts';
import { createPool } from '../../functions/adapters/pg/pool.ts';
import { PgReconcileIndex } from '../../functions/adapters/pg/reconcile-store.ts';
import { mergeJoin } from '../../functions/core/reconcile/diff.ts';
import { decideHeal, tally } from '../../functions/core/reconcile/heal.ts';
import { emptyCounts, type IndexedObject, type ListedObject } from '../../functions/core/reconcile/types.ts';
import { startPostgres } from '../../local/postgres.ts';
import { startStack } from '../../local/stack.ts';
import { ApiClient } from '../../mount-client/api/client.ts';

const SELF = fileURLToPath(import.meta.url);
const DATA_PREFIX = 'data/';
const keyAt = (i: number) => `${DATA_PREFIX}bench/k${String(i).padStart(8, '0')}`;

interface ChildResult {
  n: number;
  seconds: number;
  rate: number;
  /** Objects per CPU-second of this process: comparable across runs on a loaded machine. */
  cpuRate: number;
  maxRssMb: number;
}

// ---------------------------------------------------------------------------------------------
// Child side: one measurement, then report peak RSS.

// Pages of 1000, like ListObjectsV2 and the index reader's keyset batches.
const PAGE = 1000;

/** Synthetic listing of index keys 0..n-1 with 1% drift: every 100th missing, +1 added per 100, every 100th+50 changed. */
async function* syntheticListing(n: number): AsyncGenerator<ListedObject[]> {
  let page: ListedObject[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 100 !== 0) page.push({ key: keyAt(i), etag: i % 100 === 50 ? '"changed"' : '"e"', size: 1 });
    if (i % 100 === 99) page.push({ key: `${keyAt(i)}x`, etag: '"e"', size: 1 }); // added behind the index
    if (page.length >= PAGE) {
      yield page;
      page = [];
    }
  }
  if (page.length > 0) yield page;
}

async function* syntheticIndex(n: number): AsyncGenerator<IndexedObject[]> {
  const changedAt = new Date(0);
  for (let b = 0; b < n; b += PAGE) {
    const batch: IndexedObject[] = [];
    for (let i = b; i < Math.min(n, b + PAGE); i++)
      batch.push({ key: keyAt(i), etag: 'e', size: 1, state: 'active', changedAt });
    yield batch;
  }
}

async function child(mode: string, n: number, url?: string): Promise<void> {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  if (mode !== 'idle') {
    const cutoff = new Date();
    const counts = emptyCounts();
    let index: AsyncIterable<IndexedObject[]>;
    let pool: pg.Pool | undefined;
    if (mode === 'pg') {
      pool = createPool({ connectionString: url as string, max: 1, statementTimeoutMs: 60_000 });
      const reader = new PgReconcileIndex(pool, { dataPrefix: DATA_PREFIX });
      index = reader.read({ prefix: `${DATA_PREFIX}bench/` }, undefined, keyAt(n - 1));
    } else index = syntheticIndex(n);
    await mergeJoin(syntheticListing(n), index, (item) => tally(counts, decideHeal(item, cutoff)));
    await pool?.end();
    if (counts.missing !== Math.ceil(n / 100)) throw new Error(`wrong diff: ${JSON.stringify(counts)}`);
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const result: ChildResult = {
    n,
    seconds,
    rate: n / seconds,
    cpuRate: n / ((cpu.user + cpu.system) / 1e6),
    maxRssMb: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(mode: string, n: number, url?: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [...process.execArgv, SELF, '--child', mode, '--n', String(n), ...(url ? ['--url', url] : [])],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop() as string))
        : reject(new Error(`child ${mode} exited ${code}`)),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Parent side.

async function benchDiff(sizes: number[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-bench-reconcile-'));
  const server = await startPostgres({ dataDir: join(dir, 'pg'), persist: false, log: () => {} });
  const rows: string[] = [];
  try {
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    await migrate(pool);
    const max = Math.max(...sizes);
    const t0 = performance.now();
    await pool.query(
      `INSERT INTO objects (path, parent, name, key, state, size, etag, updated_at)
       SELECT '/bench/k' || lpad(i::text, 8, '0'), '/bench', 'k' || lpad(i::text, 8, '0'),
              'data/bench/k' || lpad(i::text, 8, '0'), 'active', 1, 'e', now() - interval '1 hour'
         FROM generate_series(0, $1::int - 1) AS i`,
      [max],
    );
    await pool.query('ANALYZE objects');
    await pool.end();
    process.stderr.write(`seeded ${max} index rows in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const idle = await runChild('idle', 0);
    rows.push(`| idle child (baseline) | – | – | – | – | ${idle.maxRssMb.toFixed(0)} |`);
    for (const n of sizes) {
      const mem = await runChild('memory', n);
      const db = await runChild('pg', n, server.url);
      rows.push(
        `| merge-join, synthetic index (ceiling) | ${n.toLocaleString('en-US')} | ${fmt(mem.rate)} | ${fmt(mem.cpuRate)} | 1.00 | ${mem.maxRssMb.toFixed(0)} |`,
        `| merge-join, PostgreSQL index reader | ${n.toLocaleString('en-US')} | ${fmt(db.rate)} | ${fmt(db.cpuRate)} | ${(db.rate / mem.rate).toFixed(2)} | ${db.maxRssMb.toFixed(0)} |`,
      );
    }
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

async function benchEndToEnd(objects: number): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-bench-reconcile-e2e-'));
  const stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    events: false,
    log: () => {},
    redis: 'off',
    // The local queue's visibility timeout is seconds: cap segments so a long shard is not redelivered.
    env: {
      POWERTOOLS_METRICS_DISABLED: 'true',
      STRATA_LOG_LEVEL: 'ERROR',
      STRATA_RECONCILE_SEGMENT_MAX_MS: '2000',
    },
  });
  const api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken, timeoutMs: 60_000 });
  try {
    const t0 = performance.now();
    const limit = pLimit(32);
    // 100 directories so the planner has something to shard.
    await Promise.all(
      Array.from({ length: objects }, (_, i) =>
        limit(() =>
          stack.s3.send(
            new PutObjectCommand({
              Bucket: stack.dev.bucket,
              Key: `${DATA_PREFIX}d${String(i % 100).padStart(3, '0')}/f${String(i).padStart(8, '0')}`,
              Body: 'x',
            }),
          ),
        ),
      ),
    );
    process.stderr.write(`seeded ${objects} objects in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

    const l0 = performance.now();
    let listed = 0;
    let token: string | undefined;
    do {
      const out = await stack.s3.send(
        new ListObjectsV2Command({
          Bucket: stack.dev.bucket,
          Prefix: DATA_PREFIX,
          MaxKeys: 1000,
          ContinuationToken: token,
        }),
      );
      listed += out.KeyCount ?? 0;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    const listRate = listed / ((performance.now() - l0) / 1000);

    const timedRun = async (label: string, expectField: 'added' | 'unchanged') => {
      const r0 = performance.now();
      const run = await api.request<{ id: string }>('POST', '/v1/reconcile', { body: { graceSeconds: 0 } });
      await stack.drain(3_600_000);
      const seconds = (performance.now() - r0) / 1000;
      const done = await api.request<{
        status: string;
        counts: Record<string, number>;
        shards: { total: number };
      }>('GET', `/v1/reconcile/${run.id}`);
      if (done.status !== 'succeeded' || done.counts[expectField] !== objects) {
        throw new Error(`${label}: unexpected run result ${JSON.stringify(done)}`);
      }
      const rate = objects / seconds;
      return `| ${label} (${done.shards.total} shards) | ${objects.toLocaleString('en-US')} | ${fmt(rate)} | ${(rate / listRate).toFixed(2)} |`;
    };
    return [
      `| emulator ListObjectsV2 alone (ceiling) | ${listed.toLocaleString('en-US')} | ${fmt(listRate)} | 1.00 |`,
      await timedRun('reconcile import: all keys added', 'added'),
      await timedRun('reconcile steady state: all keys unchanged', 'unchanged'),
    ];
  } finally {
    await api.close();
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    n: { type: 'string' },
    url: { type: 'string' },
    sizes: { type: 'string', default: '100000,1000000' },
    'e2e-objects': { type: 'string', default: '200000' },
    'skip-e2e': { type: 'boolean', default: false },
  },
});

if (values.child) {
  await child(values.child, Number(values.n), values.url);
} else {
  const sizes = (values.sizes as string).split(',').map(Number);
  const diffRows = await benchDiff(sizes);
  console.log('### Diff engine (merge-join + heal decisions, nothing written)\n');
  console.log(
    '| stream | objects | objects/s (wall) | objects per CPU-s (client) | vs ceiling (wall) | peak RSS (MB) |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of diffRows) console.log(r);
  if (!values['skip-e2e']) {
    const e2eRows = await benchEndToEnd(Number(values['e2e-objects']));
    console.log('\n### End to end through the emulator (local stack, one worker at a time)\n');
    console.log('| path | objects | objects/s | vs emulator listing |');
    console.log('|---|---:|---:|---:|');
    for (const r of e2eRows) console.log(r);
  }
}
