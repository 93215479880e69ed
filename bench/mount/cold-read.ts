/**
 * Cold sequential read through a real `strata mount`, alone: the row of bench/mount/fs.ts that
 * issue 5's "cold ≥ 0.9× raw GETs" target is about, without the rest of that program (ceilings,
 * trees, warm rows), so it can be repeated quickly, run against an older tree, and profiled.
 *
 *   npx tsx bench/mount/cold-read.ts [--size-mib 256] [--runs 3] [--readers 1]
 *                                    [--cpu-prof <dir>] [--tree <other checkout>] [--threads]
 *                                    [--with-env KEY=VALUE ...]
 *
 * Per run: a fresh mount on an empty cache reads the file once with `cat` (or N concurrent cats);
 * (b') 8 concurrent 8 MiB ranged GETs against the same S3 server, interleaved with the mount runs.
 * --cpu-prof writes the mount child's V8 CPU profile (one .cpuprofile per mount) into <dir>.
 * --tree runs the mount from another checkout (e.g. `git archive` of an older commit with
 * node_modules symlinked) against the same backend, interleaved with this tree, for before/after.
 * --with-env adds a variant of this tree whose mount child gets extra environment, e.g.
 * `--with-env GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (transparent huge pages for malloc'd block
 * buffers: far fewer first-touch page faults). --threads prints the mount's CPU per thread.
 * Prints a markdown table: median MB/s, ratio vs (b'), mount CPU s/GiB.
 */
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Agent, request } from 'undici';
import { keyForPath } from '../../functions/core/paths.ts';
import { type Backend, BUCKET, DATA_PREFIX, startBackend } from '../../test/fuse/support/backend.ts';
import { startMount } from '../../test/fuse/support/mount-process.ts';
import { processCpuSeconds } from '../compare/measure.ts';
import { threadCpu, threadCpuSince } from './thread-cpu.ts';

const sh = promisify(exec);
const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string' },
    runs: { type: 'string' },
    readers: { type: 'string' },
    'cpu-prof': { type: 'string' },
    tree: { type: 'string' },
    threads: { type: 'boolean' },
    'with-env': { type: 'string', multiple: true },
  },
});
const sizeMiB = Number(values['size-mib'] ?? 256);
const runs = Number(values.runs ?? 3);
const readers = Number(values.readers ?? 1);
const bytes = sizeMiB * MiB;

const mbps = (n: number, s: number) => n / 1e6 / s;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function rawRangedGets(backend: Backend, path: string, size: number): Promise<number> {
  const url = await getSignedUrl(
    backend.s3,
    new GetObjectCommand({ Bucket: BUCKET, Key: keyForPath(DATA_PREFIX, path) }),
    { expiresIn: 600 },
  );
  const agent = new Agent({ connections: 8 });
  let next = 0;
  const worker = async () => {
    for (let start = next; start < size; start = next) {
      next += 8 * MiB;
      const r = await request(url, {
        dispatcher: agent,
        headers: { range: `bytes=${start}-${Math.min(size, start + 8 * MiB) - 1}` },
      });
      for await (const _ of r.body) {
        // discard
      }
    }
  };
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 8 }, worker));
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  await agent.close();
  return mbps(size, s);
}

const dir = mkdtempSync(join(tmpdir(), 'strata-bench-cold-'));
type Start = typeof startMount;
// The other tree's own mount launcher: it spawns that tree's bin/strata.js with its own sources.
const trees: Array<{ name: string; start: Start; env?: Record<string, string> }> = [
  { name: 'this tree', start: startMount },
];
if (values['with-env']?.length) {
  // A variant of this tree with extra environment for the mount child (e.g. glibc tunables).
  const env = Object.fromEntries(
    values['with-env'].map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  trees.push({ name: `this tree, ${values['with-env'].join(' ')}`, start: startMount, env });
}
if (values.tree) {
  const other = resolve(values.tree);
  const mod = (await import(join(other, 'test/fuse/support/mount-process.ts'))) as { startMount: Start };
  trees.push({ name: `--tree ${values.tree}`, start: mod.startMount });
}
const results = new Map<string, { mbps: number[]; cpu: number[] }>();
const raw: number[] = [];
const backend = await startBackend();
try {
  await backend.put('/big.bin', randomBytes(bytes));
  await rawRangedGets(backend, '/big.bin', bytes); // warm the server's read path
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const file = `${mnt}/big.bin`;
  const cmd =
    readers === 1
      ? `cat '${file}' > /dev/null`
      : `for i in $(seq ${readers}); do cat '${file}' > /dev/null & done; wait`;
  for (let run = 0; run < runs; run++) {
    raw.push(await rawRangedGets(backend, '/big.bin', bytes));
    for (const t of trees) {
      const cache = join(dir, `cache-${run}`);
      const env: Record<string, string> = { ...t.env };
      if (values['cpu-prof']) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${resolve(values['cpu-prof'])}`;
      const m = await t.start(
        backend,
        mnt,
        cache,
        ['--block-size', '8M', '--cache-size', `${2 * sizeMiB + 256}M`],
        env,
      );
      const pid = m.child.pid as number;
      const c0 = processCpuSeconds(pid);
      const th0 = threadCpu(pid);
      const t0 = process.hrtime.bigint();
      await sh(cmd);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = (processCpuSeconds(pid) - c0) / ((readers * bytes) / 1024 ** 3);
      const st = await m.stats();
      const disk = st.dataPath.disk as Record<string, number>;
      // Absent in trees older than the counter (--tree).
      const reads = (st.dataPath as { reads?: { now: number; waited: number } }).reads;
      if (values.threads) {
        console.error(`  mount CPU-s by thread: ${threadCpuSince(pid, th0)}`);
      }
      await m.stop();
      rmSync(cache, { recursive: true, force: true });
      const r = results.get(t.name) ?? { mbps: [], cpu: [] };
      r.mbps.push(mbps(readers * bytes, secs));
      r.cpu.push(cpu);
      results.set(t.name, r);
      console.error(
        `run ${run + 1} ${t.name}: ${mbps(readers * bytes, secs).toFixed(0)} MB/s, ${cpu.toFixed(2)} CPU-s/GiB, ${st.dataPath.s3.gets} S3 GETs, ${disk.writes} cache writes (${disk.writesSkipped ?? 0} skipped: disk a write backlog behind)${reads ? `, FUSE reads ${reads.now} served at once / ${reads.waited} waited on a fetch` : ''}`,
      );
    }
  }
} finally {
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
}

const b = median(raw);
console.log(
  `\n${sizeMiB} MiB, ${readers} reader(s), median of ${runs}; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${availableParallelism()} cores`,
);
console.log(`\n| measurement | MB/s | vs (b') | mount CPU s/GiB |\n|---|---:|---:|---:|`);
console.log(`| (b') raw ranged GETs, 8 × 8 MiB, same S3 server | ${b.toFixed(0)} | 1.00× | |`);
for (const [name, r] of results) {
  const v = median(r.mbps);
  console.log(
    `| Strata cold sequential, ${readers} reader(s) (${name}) | ${v.toFixed(0)} | ${(v / b).toFixed(2)}× | ${median(r.cpu).toFixed(2)} |`,
  );
}
