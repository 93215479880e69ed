/**
 * The mount's data path without FUSE, old tree vs new tree side by side: CPU seconds per GiB and
 * V8 garbage collections (major = full mark-compact) for a cold sequential read from S3, a warm
 * read from the disk tier after a restart, and a re-read from the memory tier. FUSE and the kernel
 * are left out on purpose: this isolates what the block buffers cost the mount process.
 *
 * Usage: npx tsx bench/mount/data-path-gc.ts [--size-mib 256] [--old <tree>] [--rounds 2]
 *   --old: another checkout of this repository (e.g. `git worktree add /tmp/strata-old <commit>`,
 *   with node_modules symlinked) measured the same way in the same run.
 * Each variant runs in its own child process (GC counts must not mix) against one fauxqs S3 server
 * in a third process (bench/mount/s3-server.ts); rounds alternate old/new to spread machine noise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PerformanceObserver, constants as perf } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string' },
    old: { type: 'string' },
    rounds: { type: 'string' },
    'memory-mib': { type: 'string' },
    child: { type: 'string' },
  },
});

interface Phase {
  mbps: number;
  cpu: number;
  /** System (kernel) share of cpu: page faults, page-cache copies, I/O submission. */
  sys: number;
  major: number;
  minor: number;
}
type Result = Record<'cold' | 'disk' | 'memory', Phase>;

if (values.child) {
  process.stdout.write(`${JSON.stringify(await child(JSON.parse(values.child)))}\n`);
  process.exit(0);
}

/** One variant: imports the data path from `tree` and reads the object three ways. */
async function child(o: {
  tree: string;
  endpoint: string;
  object: { bucket: string; key: string; size: number; etag: string };
  memoryBytes: number;
}): Promise<Result> {
  const { createDataPath } = await import(join(o.tree, 'mount-client/object-client/data-path.ts'));
  const { Registry } = await import('prom-client');
  const cacheDir = mkdtempSync(join(tmpdir(), 'strata-gc-bench-'));
  const gcs = { major: 0, minor: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perf.NODE_PERFORMANCE_GC_MAJOR) gcs.major++;
      else if (kind === perf.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    }
  }).observe({ entryTypes: ['gc'] });
  const open = () =>
    createDataPath({
      cacheDir,
      cacheSizeBytes: 4 * o.object.size,
      minFreeBytes: 0,
      region: 'us-east-1',
      endpoint: o.endpoint,
      metrics: new Registry(),
      memoryCacheBytes: o.memoryBytes,
    });
  /**
   * Reads the object like the FUSE binding (StrataFs.readInto): 128 KiB requests into one reused
   * buffer, readNowInto first (memory tier or a verified disk slice), then readNow, then read.
   */
  async function phase(dp: Awaited<ReturnType<typeof open>>): Promise<Phase> {
    const into = Buffer.allocUnsafe(128 * 1024);
    await new Promise((r) => setImmediate(r));
    const g0 = { ...gcs };
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = dp.open(o.object);
    for (let off = 0; off < o.object.size; off += into.length) {
      if (r.readNowInto?.(off, into.length, into) !== undefined) continue;
      const now = r.readNow?.(off, into.length);
      if (now) now.copy(into);
      else (await r.read(off, into.length)).copy(into);
    }
    r.close();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    await new Promise((res) => setTimeout(res, 50)); // let the observer deliver the last entries
    const gib = o.object.size / 1024 ** 3;
    return {
      mbps: o.object.size / 1e6 / secs,
      cpu: (c.user + c.system) / 1e6 / gib,
      sys: c.system / 1e6 / gib,
      major: (gcs.major - g0.major) / gib,
      minor: (gcs.minor - g0.minor) / gib,
    };
  }
  try {
    let dp = await open();
    const cold = await phase(dp);
    await dp.close();
    dp = await open();
    const disk = await phase(dp);
    const memory = await phase(dp);
    await dp.close();
    return { cold, disk, memory };
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function runChild(tree: string, endpoint: string, object: unknown, memoryBytes: number): Promise<Result> {
  return new Promise((res, rej) => {
    const p = spawn(
      process.execPath,
      [
        ...process.execArgv,
        new URL(import.meta.url).pathname,
        '--child',
        JSON.stringify({ tree, endpoint, object, memoryBytes }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.on('exit', (code) =>
      code === 0
        ? res(JSON.parse(out.trim().split('\n').pop() ?? '{}'))
        : rej(new Error(`child exited ${code}`)),
    );
  });
}

const sizeMiB = Number(values['size-mib'] ?? 256);
const rounds = Number(values.rounds ?? 3);
/**
 * Memory tier (default 256 MiB, the mount's default). An object larger than it makes the stream
 * evict, which is where block buffers are recycled; one that fits measures first-fill only.
 */
const memoryMiB = Number(values['memory-mib'] ?? 256);
const newTree = resolve(new URL('../..', import.meta.url).pathname);
const variants: [string, string][] = [['new', newTree]];
if (values.old) variants.unshift(['old', resolve(values.old)]);

process.env.AWS_ACCESS_KEY_ID ??= 'bench';
process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
const server: ChildProcess = spawn(
  process.execPath,
  [...process.execArgv, new URL('./s3-server.ts', import.meta.url).pathname],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
try {
  const endpoint: string = await new Promise((res, rej) => {
    server.stdout?.once('data', (d) => res(JSON.parse(String(d)).endpoint));
    server.once('exit', () => rej(new Error('s3-server exited')));
  });
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const key = 'gc/stream.bin';
  await new Upload({
    client: s3,
    params: { Bucket: 'bench', Key: key, Body: randomBytes(sizeMiB * MiB) },
    partSize: 8 * MiB,
  }).done();
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'bench', Key: key }));
  const object = { bucket: 'bench', key, size: Number(head.ContentLength), etag: String(head.ETag) };
  s3.destroy();

  const results = new Map<string, Result[]>();
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const [name, tree] of order) {
      const got = await runChild(tree, endpoint, object, memoryMiB * MiB);
      results.set(name, [...(results.get(name) ?? []), got]);
      process.stderr.write(`round ${r + 1} ${name}: ${JSON.stringify(got)}\n`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  console.log(
    `\n${sizeMiB} MiB object, ${memoryMiB} MiB memory tier, 8 MiB blocks, 128 KiB sequential reads, median of ${rounds} round(s)\n`,
  );
  console.log('| phase | variant | MB/s | CPU s/GiB | of which sys | full GCs/GiB | minor GCs/GiB |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const ph of ['cold', 'disk', 'memory'] as const) {
    for (const [name] of variants) {
      const rs = (results.get(name) ?? []).map((x) => x[ph]);
      console.log(
        `| ${ph === 'cold' ? 'cold (S3)' : ph === 'disk' ? 'after restart (disk tier)' : 're-read, same process (memory tier if the object fits)'} | ${name} | ${median(rs.map((x) => x.mbps)).toFixed(0)} | ${median(rs.map((x) => x.cpu)).toFixed(2)} | ${median(rs.map((x) => x.sys ?? 0)).toFixed(2)} | ${median(rs.map((x) => x.major)).toFixed(1)} | ${median(rs.map((x) => x.minor)).toFixed(1)} |`,
      );
    }
  }
} finally {
  server.stdin?.end();
  server.kill();
}
