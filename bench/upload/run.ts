/**
 * Upload benchmark: `strata upload` (the Uploader behind the CLI: API sessions + presigned PUTs)
 * vs the raw AWS SDK (PutObject per small file; lib-storage Upload for the large file) at the same
 * concurrency against the same local S3 (fauxqs in the local stack), side by side in one run.
 *
 *   npx tsx bench/upload/run.ts [--big-mib 1024] [--files 10000] [--concurrency 16] [--rounds 3]
 *                               [--only small|big|both] [--events off|on] [--persist off|on] [--tree DIR]
 *
 * Defaults are the sizes; pass smaller ones on a busy machine and say so.
 * - The local stack (bench/upload/stack.ts: API + PostgreSQL + fauxqs, S3 state in memory) runs in
 *   its own process, so the API and S3 are remote services to both clients, as in production.
 * - Rounds alternate the order (raw → strata, then strata → raw, …) and the table gives every
 *   round plus the median ratio: on a shared machine the load swings within seconds, and a single
 *   raw-then-strata pair once measured 0.67× and once 1.98× for the same code.
 * - `--events on` adds S3 notifications → SQS → indexer in the stack process (both sides' objects
 *   are indexed; strata's also settle their sessions); off by default, so the indexer does not
 *   compete for the emulator's CPU.
 * - `--persist on` gives the emulator `npm start`'s SQLite write-through (every object and part
 *   written synchronously on the stack's one thread; objects ≥ 1e9 bytes fail) — to measure it.
 * - `--tree DIR` benchmarks another checkout's uploader AND stack (e.g. an older commit unpacked
 *   with `git archive` and node_modules symlinked), so before/after run the same program.
 * - Both sides are warmed up first (module loading, keep-alive connections — a Lambda cold start
 *   in production, not upload cost).
 * - For strata it traces where a small file's time goes: API calls (count, mean, p95 latency) and
 *   how full the PUT slots were (sampled every 5 ms): idle slots while files remain = waiting.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import type { ApiClient as ApiClientType } from '../../mount-client/api/client.ts';
import type * as ScanModule from '../../mount-client/upload/scan.ts';
import type { Uploader as UploaderType } from '../../mount-client/upload/uploader.ts';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'big-mib': { type: 'string', default: '1024' },
    files: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    'big-rounds': { type: 'string', default: '1' },
    only: { type: 'string', default: 'both' },
    events: { type: 'string', default: 'off' },
    persist: { type: 'string', default: 'off' },
    tree: { type: 'string', default: resolve(import.meta.dirname, '../..') },
  },
});
const bigBytes = Number(values['big-mib']) * MiB;
const fileCount = Number(values.files);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const bigRounds = Number(values['big-rounds']);
const runSmall = values.only !== 'big';
const runBig = values.only !== 'small';
const tree = resolve(values.tree);
const treeModule = async <T>(rel: string) => (await import(pathToFileURL(join(tree, rel)).href)) as T;
const { ApiClient } = await treeModule<{ ApiClient: typeof ApiClientType }>('mount-client/api/client.ts');
const { scanArguments, scanDirectory } = await treeModule<typeof ScanModule>('mount-client/upload/scan.ts');
const { Uploader } = await treeModule<{ Uploader: typeof UploaderType }>('mount-client/upload/uploader.ts');

interface Dev {
  apiUrl: string;
  token: string;
  s3Endpoint?: string;
  bucket: string;
  region: string;
}

/** Starts bench/upload/stack.ts in its own process; returns its dev.json and a stop function. */
async function startLocalStack(
  stateDir: string,
): Promise<{ dev: Dev; stop: () => Promise<void>; pid: number }> {
  await mkdir(stateDir, { recursive: true });
  // One node process (no npx/tsx wrapper), so its PID is the one to signal and measure.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'stack.ts'),
      '--state-dir',
      stateDir,
      '--events',
      String(values.events),
      '--persist',
      String(values.persist),
      '--tree',
      tree,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const dev = JSON.parse(await readFile(join(stateDir, 'dev.json'), 'utf8')) as Dev;
      return { dev, stop, pid: child.pid as number };
    } catch {}
    if (child.exitCode !== null) throw new Error(`the local stack exited with code ${child.exitCode}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error('the local stack did not write dev.json within 120 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const work = await mkdtemp(join(tmpdir(), 'strata-bench-upload-'));
// PostgreSQL runs as the postgres user when we are root: it must traverse the state directory.
await chmod(work, 0o755);
const { dev, stop, pid: stackPid } = await startLocalStack(join(work, 'stack'));
const api = new ApiClient({ apiUrl: dev.apiUrl, token: dev.token, connections: 8 });
const s3 = new S3Client({
  region: dev.region,
  endpoint: dev.s3Endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, // the emulator checks no signature
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  // Same socket budget as the uploader (one per concurrent PUT).
  requestHandler: { httpAgent: { keepAlive: true, maxSockets: concurrency } },
});

/** CPU seconds (user + system) the stack process has used so far. */
async function stackCpu(): Promise<number> {
  // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks (100 Hz on Linux).
  const fields = (await readFile(`/proc/${stackPid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Measured {
  seconds: number;
  clientCpuMs: number;
  stackCpuMs: number;
}
async function time(fn: () => Promise<unknown>): Promise<Measured> {
  const t = performance.now();
  const c0 = process.cpuUsage();
  const s0 = await stackCpu();
  await fn();
  const seconds = (performance.now() - t) / 1000;
  const c = process.cpuUsage(c0);
  return { seconds, clientCpuMs: (c.user + c.system) / 1000, stackCpuMs: ((await stackCpu()) - s0) * 1000 };
}

// --- strata trace: API call latencies and PUT-slot occupancy -------------------------------------
const calls = new Map<string, number[]>();
const originalRequest = api.request.bind(api);
api.request = (async (method: string, path: string, options?: unknown) => {
  const t = performance.now();
  try {
    return await originalRequest(method, path, options as never);
  } finally {
    const name = `${method} ${path.replace(/\/uploads\/[^/]+/, '/uploads/{id}')}`;
    const list = calls.get(name) ?? [];
    calls.set(name, list);
    list.push(performance.now() - t);
  }
}) as typeof api.request;
interface Slots {
  samples: number;
  active: number;
  underfullWithWork: number;
  /** Underfull samples per tenth of the run (start-up, steady state and tail tell different stories). */
  byTenth: number[];
}
/** Samples the uploader's PUT limiter (a p-limit) while fn runs. */
async function withSlotSampling(u: UploaderType, fn: () => Promise<unknown>): Promise<Slots> {
  const limit = (u as unknown as { limit?: { activeCount: number; pendingCount: number } }).limit;
  const s: Slots = { samples: 0, active: 0, underfullWithWork: 0, byTenth: new Array(10).fill(0) };
  const start = performance.now();
  const underfullAt: number[] = [];
  const timer = setInterval(() => {
    if (!limit) return;
    s.samples++;
    s.active += limit.activeCount;
    if (limit.activeCount < concurrency) {
      s.underfullWithWork++;
      underfullAt.push(performance.now() - start);
    }
  }, 5);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const total = performance.now() - start;
  for (const t of underfullAt) {
    const i = Math.min(9, Math.floor((10 * t) / total));
    s.byTenth[i] = (s.byTenth[i] ?? 0) + 1;
  }
  return s;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] ?? 0;

const out: string[] = [];
try {
  const uploader = new Uploader({ api, concurrency, skipUnchanged: true });
  // Warm-up: module loading, token cache and keep-alive connections on both sides.
  const warm = join(work, 'warm.dat');
  await writeFile(warm, randomBytes(4096));
  await s3.send(
    new PutObjectCommand({ Bucket: dev.bucket, Key: 'data/bench/warm.dat', Body: await readFile(warm) }),
  );
  await uploader.upload((await scanArguments([warm], '/bench/warm')).files);
  calls.clear();
  const head = `tree ${tree}; concurrency ${concurrency}; events ${values.events}; local S3 = fauxqs (${values.persist === 'on' ? 'SQLite write-through' : 'in memory'}), stack in its own process`;
  out.push(head, '');
  process.stderr.write(`${head}\n`);

  if (runSmall) {
    const smallDir = join(work, 'small');
    for (let i = 0; i < fileCount; i++) {
      const sub = join(smallDir, String(i % 100).padStart(2, '0'));
      if (i < 100) await mkdir(sub, { recursive: true });
      await writeFile(join(sub, `f${i}.dat`), randomBytes(4096));
    }
    const rows: string[] = [];
    const ratios: number[] = [];
    const rawFps: number[] = [];
    const strataFps: number[] = [];
    const cpu = { raw: { client: 0, stack: 0 }, strata: { client: 0, stack: 0 } };
    const slots: Slots = { samples: 0, active: 0, underfullWithWork: 0, byTenth: new Array(10).fill(0) };
    for (let round = 1; round <= rounds; round++) {
      const scan = await scanDirectory(smallDir, `/bench/strata-small-${round}`);
      const raw = () =>
        time(async () => {
          const limit = pLimit(concurrency);
          await Promise.all(
            scan.files.map((f, i) =>
              limit(async () =>
                s3.send(
                  new PutObjectCommand({
                    Bucket: dev.bucket,
                    Key: `data/bench/raw-small-${round}/${i}.dat`,
                    Body: await readFile(f.abs),
                  }),
                ),
              ),
            ),
          );
        });
      const strata = () =>
        time(async () => {
          const s = await withSlotSampling(uploader, async () => {
            const summary = await uploader.upload(scan.files);
            if (summary.failed) throw new Error(`strata failed ${summary.failed} small files`);
          });
          slots.samples += s.samples;
          slots.active += s.active;
          slots.underfullWithWork += s.underfullWithWork;
          s.byTenth.forEach((n, i) => {
            slots.byTenth[i] = (slots.byTenth[i] ?? 0) + n;
          });
        });
      let r: Measured;
      let st: Measured;
      if (round % 2 === 1) {
        r = await raw();
        st = await strata();
      } else {
        st = await strata();
        r = await raw();
      }
      const fps = (m: Measured) => fileCount / m.seconds;
      rawFps.push(fps(r));
      strataFps.push(fps(st));
      ratios.push(r.seconds / st.seconds);
      cpu.raw.client += r.clientCpuMs;
      cpu.raw.stack += r.stackCpuMs;
      cpu.strata.client += st.clientCpuMs;
      cpu.strata.stack += st.stackCpuMs;
      const row = `| ${round} (${round % 2 ? 'raw first' : 'strata first'}) | ${fps(r).toFixed(0)} | ${fps(st).toFixed(0)} | ${(r.seconds / st.seconds).toFixed(2)}× |`;
      rows.push(row);
      process.stderr.write(`${row}\n`);
    }
    const n = fileCount * rounds;
    out.push(
      `### ${fileCount} files × 4 KiB, ${rounds} rounds`,
      '',
      '| round | raw AWS SDK (files/s) | strata upload (files/s) | strata / raw |',
      '|---|---|---|---|',
      ...rows,
      `| **median** | **${median(rawFps).toFixed(0)}** | **${median(strataFps).toFixed(0)}** | **${median(ratios).toFixed(2)}×** |`,
      '',
      '| CPU ms per file | client (bench process) | stack (API + S3 emulator) |',
      '|---|---|---|',
      `| raw | ${(cpu.raw.client / n).toFixed(2)} | ${(cpu.raw.stack / n).toFixed(2)} |`,
      `| strata | ${(cpu.strata.client / n).toFixed(2)} | ${(cpu.strata.stack / n).toFixed(2)} |`,
      '',
      `strata PUT slots: ${(slots.active / Math.max(1, slots.samples)).toFixed(1)} of ${concurrency} busy on average; ` +
        `fewer than ${concurrency} busy in ${((100 * slots.underfullWithWork) / Math.max(1, slots.samples)).toFixed(0)} % of 5 ms samples ` +
        `(per tenth of the run: ${slots.byTenth.map((n) => ((100 * n) / Math.max(1, slots.underfullWithWork)).toFixed(0)).join(' / ')} % of them).`,
      '',
      '| strata API call | count | mean ms | p95 ms |',
      '|---|---|---|---|',
      ...[...calls.entries()].map(
        ([k, v]) =>
          `| ${k} | ${v.length} | ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(1)} | ${pct(v, 0.95).toFixed(1)} |`,
      ),
      '',
    );
  }

  if (runBig) {
    // One large incompressible file; lib-storage uses the same part size and queue size.
    const big = join(work, 'big.bin');
    const chunk = randomBytes(8 * MiB);
    const fh = await open(big, 'w');
    for (let off = 0; off < bigBytes; off += chunk.length)
      await fh.write(chunk, 0, Math.min(chunk.length, bigBytes - off));
    await fh.close();
    const rows: string[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= bigRounds; round++) {
      const raw = () =>
        time(async () => {
          await new Upload({
            client: s3,
            params: {
              Bucket: dev.bucket,
              Key: `data/bench/raw-big-${round}.bin`,
              Body: createReadStream(big),
            },
            partSize: 8 * MiB,
            queueSize: concurrency,
          }).done();
        });
      const strata = () =>
        time(async () => {
          const summary = await uploader.upload(
            (await scanArguments([big], `/bench/strata-big-${round}`)).files,
          );
          if (summary.failed) throw new Error(`strata failed the large file: ${summary.results[0]?.reason}`);
        });
      let r: Measured;
      let st: Measured;
      if (round % 2 === 1) {
        r = await raw();
        st = await strata();
      } else {
        st = await strata();
        r = await raw();
      }
      const mbs = (m: Measured) => bigBytes / MiB / m.seconds;
      ratios.push(r.seconds / st.seconds);
      const row = `| ${round} | ${mbs(r).toFixed(1)} | ${mbs(st).toFixed(1)} | ${(r.seconds / st.seconds).toFixed(2)}× | ${(r.clientCpuMs / (bigBytes / MiB)).toFixed(2)} / ${(st.clientCpuMs / (bigBytes / MiB)).toFixed(2)} |`;
      rows.push(row);
      process.stderr.write(`${row}\n`);
    }
    out.push(
      `### 1 file × ${bigBytes / MiB} MiB`,
      '',
      '| round | raw AWS SDK (MiB/s) | strata upload (MiB/s) | strata / raw | client CPU ms/MiB raw / strata |',
      '|---|---|---|---|---|',
      ...rows,
      ...(bigRounds > 1 ? [`| **median** | | | **${median(ratios).toFixed(2)}×** | |`] : []),
      '',
    );
  }
  await uploader.close();
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  s3.destroy();
  await api.close();
  await stop();
  await rm(work, { recursive: true, force: true });
}
