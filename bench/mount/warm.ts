/**
 * Warm-read and `ls -lR` A/B benchmark (issue 5, round 3): the FUSE ceiling (a) and one or two
 * mount-client trees side by side in one run, against one local stack.
 *
 *   (a)  a minimal fuse-native filesystem serving the file from memory, 1 and 4 readers
 *   per tree (order alternates per round so neither always runs first on a warming machine):
 *        warm read after remount (disk cache, S3 GETs counted: must be 0), 1 and 4 readers,
 *        re-read in the same mount, `ls -lR` over a 10,000-file tree (fresh mount, then again),
 *        and the FUSE xattr round trips `ls -lR` caused (from the mount's op metrics)
 *
 * Each read row also gives the mount process's CPU seconds (user + system, /proc) per GiB.
 *
 * Usage (root, /dev/fuse):
 *   npx tsx bench/mount/warm.ts [--size-mib 256] [--rounds 1] [--old <tree>] [--cpu-prof <dir>]
 *     [--ls-files 10000] [--settle-ms 2000] [--threads] [--no-evicted]
 * `--old <tree>`: another checkout (e.g. `git archive HEAD | tar -x -C /tmp/old` with node_modules
 * symlinked) whose `strata mount` runs next to this tree's. `--cpu-prof <dir>`: V8 CPU profiles of
 * every mount child (written when it exits). Unless `--no-evicted`, each tree also reads once
 * after a remount with its block files evicted from the kernel page cache first (fsync +
 * POSIX_FADV_DONTNEED on just those files): the warm read after a reboot, or of a cache larger
 * than RAM — a tree whose warm reads lean on the page cache holding recently written blocks
 * shows the difference there. `--threads`: the mount's CPU per thread during the
 * 1-reader warm read (stderr).
 */
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import Fuse from 'fuse-native';
import { startBackend } from '../../test/fuse/support/backend.ts';
import type { MountProcess } from '../../test/fuse/support/mount-process.ts';
import { processCpuSeconds } from '../compare/measure.ts';
import { threadCpu, threadCpuSince } from './thread-cpu.ts';

const sh = promisify(exec);
const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string' },
    rounds: { type: 'string' },
    old: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'ls-files': { type: 'string' },
    'settle-ms': { type: 'string' },
    threads: { type: 'boolean' },
    'no-evicted': { type: 'boolean' },
  },
});
const sizeMiB = Number(values['size-mib'] ?? 256);
const rounds = Number(values.rounds ?? 1);
const lsFiles = Number(values['ls-files'] ?? 10_000);
/**
 * Idle time between "mounted" and a timed read. 2 s: a fresh mount process spends ~0.1 CPU-s in
 * its first 2 s (JIT, lazily loaded modules, the first change-feed polls; measured by sampling
 * /proc right after mount), which on a 256 MiB read would add ~0.4 CPU-s/GiB of one-time cost to
 * the per-GiB figure and compete with the read on a 2-core machine. 0 = measure from mount.
 */
const settleMs = Number(values['settle-ms'] ?? 2000);
const settle = () => new Promise((r) => setTimeout(r, settleMs));
const bytes = sizeMiB * MiB;
const HERE = resolve(import.meta.dirname, '../..');

type StartMount = typeof import('../../test/fuse/support/mount-process.ts').startMount;
interface Tree {
  name: string;
  startMount: StartMount;
}
const trees: Tree[] = [
  {
    name: 'new',
    startMount: (await import(join(HERE, 'test/fuse/support/mount-process.ts'))).startMount,
  },
];
if (values.old) {
  trees.push({
    name: 'old',
    startMount: (await import(join(resolve(values.old), 'test/fuse/support/mount-process.ts'))).startMount,
  });
}

async function timed(cmd: string): Promise<number> {
  const t = process.hrtime.bigint();
  await sh(cmd, { maxBuffer: 64 * MiB });
  return Number(process.hrtime.bigint() - t) / 1e9;
}
const mbps = (n: number, s: number) => n / 1e6 / s;
const fourReaders = (file: string) => `for i in 1 2 3 4; do cat '${file}' > /dev/null & done; wait`;
async function measured(pid: number, cmd: string, total: number): Promise<{ mbps: number; cpu: number }> {
  const c0 = processCpuSeconds(pid);
  const secs = await timed(cmd);
  return { mbps: mbps(total, secs), cpu: (processCpuSeconds(pid) - c0) / (total / 1024 ** 3) };
}

/** (a): the smallest useful fuse-native filesystem — one file served straight from a Buffer. */
async function fuseCeiling(dir: string, data: Buffer): Promise<{ one: number; four: number; cpu: number }> {
  const mnt = mkdtempSync(join(dir, 'ceiling-'));
  const now = new Date();
  const fuse = new Fuse(
    mnt,
    {
      getattr: (path, cb) =>
        path === '/'
          ? cb(0, { mode: 0o40555, uid: 0, gid: 0, size: 4096, mtime: now, atime: now, ctime: now })
          : path === '/f'
            ? cb(0, { mode: 0o100444, uid: 0, gid: 0, size: data.length, mtime: now, atime: now, ctime: now })
            : cb(Fuse.ENOENT),
      readdir: (_p, cb) => cb(0, ['f']),
      open: (_p, _f, cb) => cb(0, 1),
      release: (_p, _fd, cb) => cb(0),
      read: (_p, _fd, buf, len, pos, cb) => cb(data.copy(buf, 0, pos, Math.min(pos + len, data.length))),
    },
    { force: true, autoUnmount: true },
  );
  await new Promise<void>((r, j) => fuse.mount((e) => (e ? j(e) : r())));
  try {
    await timed(`cat ${mnt}/f > /dev/null`);
    // CPU of this process (the ceiling FS and its FUSE threads; the idle local stack adds little).
    const c0 = process.cpuUsage();
    const one = mbps(data.length, await timed(`cat ${mnt}/f > /dev/null`));
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6 / (data.length / 1024 ** 3);
    const four = mbps(4 * data.length, await timed(fourReaders(`${mnt}/f`)));
    return { one, four, cpu };
  } finally {
    await new Promise<void>((r) => fuse.unmount(() => r()));
  }
}

/**
 * Drops a cache directory's files from the kernel page cache (and only those: no global
 * drop_caches on a shared machine). fsync first: DONTNEED skips dirty pages.
 */
async function evictPageCache(cacheDir: string): Promise<void> {
  const py = [
    'import os, sys',
    'for root, _, names in os.walk(sys.argv[1]):',
    '    for n in names:',
    '        fd = os.open(os.path.join(root, n), os.O_RDONLY)',
    '        os.fsync(fd)',
    '        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)',
    '        os.close(fd)',
  ].join('\n');
  await sh(`python3 -c '${py}' '${cacheDir}'`);
}

/** Sum of `strata_fuse_op…_count{op="<op>"}` samples in a Prometheus text page. */
function opCount(metrics: string, op: string): number {
  let n = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#') || !line.includes('_count{') || !line.includes(`op="${op}"`)) continue;
    if (!line.startsWith('strata_fuse')) continue;
    n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

interface Result {
  warm1: { mbps: number; cpu: number };
  /** (a), 1 reader, measured just before this warm read. */
  near: number;
  gets: number;
  /** Disk-tier reads in the warm pass: whole blocks plus random-read slices. */
  diskReads: number;
  warm4: { mbps: number; cpu: number };
  reread: { mbps: number; cpu: number };
  /** Warm read after a remount with the cache's block files evicted from the page cache. */
  evicted?: { mbps: number; cpu: number };
  lsCold: number;
  lsWarm: number;
  xattrOps: number;
}

const dir = mkdtempSync(join(tmpdir(), 'strata-bench-warm-'));
const data = randomBytes(bytes);
const results = new Map<string, Result[]>();
const ceilings: { one: number; four: number; cpu: number }[] = [];
const backend = await startBackend();
try {
  await backend.put('/big.bin', data);
  await backend.indexOnly(
    Array.from({ length: lsFiles }, (_, i) => ({
      path: `/tree/d${String(i % 100).padStart(3, '0')}/f${i}.dat`,
      size: i,
      etag: `t${i}`,
    })),
  );
  const args = ['--block-size', '8M', '--cache-size', `${2 * sizeMiB + 256}M`];
  const env: Record<string, string> = values['cpu-prof']
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${resolve(values['cpu-prof'])}` }
    : {};
  // Fill one cache per tree first (cold reads are not what this bench measures).
  const caches = new Map<string, string>();
  for (const t of trees) {
    const cache = join(dir, `cache-${t.name}`);
    const mnt = join(dir, `mnt-fill-${t.name}`);
    mkdirSync(mnt);
    const m = await t.startMount(backend, mnt, cache, args);
    await sh(`cat ${mnt}/big.bin > /dev/null`);
    await m.stop();
    caches.set(t.name, cache);
  }
  for (let round = 0; round < rounds; round++) {
    ceilings.push(await fuseCeiling(dir, data));
    const order = round % 2 === 0 ? trees : [...trees].reverse();
    for (const t of order) {
      // (a) again right before this tree's warm read: on a shared machine the ceiling moves by 2×
      // within minutes, so each warm read is also compared with the ceiling measured next to it.
      const mnt = mkdtempSync(join(dir, `mnt-${t.name}-`));
      const file = `${mnt}/big.bin`;
      let m: MountProcess = await t.startMount(backend, mnt, caches.get(t.name) as string, args, env);
      await settle();
      const near = (await fuseCeiling(dir, data)).one;
      const pid = m.child.pid as number;
      const th0 = threadCpu(pid);
      const warm1 = await measured(pid, `cat ${file} > /dev/null`, bytes);
      const st = (await m.stats()).dataPath;
      // Absent in trees older than the counter (--old).
      const reads = (st as { reads?: { now: number; waited: number; waitedMs?: number } }).reads;
      const waitedMs = reads?.waitedMs === undefined ? '' : ` (${reads.waitedMs.toFixed(0)} ms in all)`;
      console.error(
        `round ${round + 1} ${t.name}: warm after remount ${warm1.mbps.toFixed(0)} MB/s, ${warm1.cpu.toFixed(2)} CPU-s/GiB${reads ? `, FUSE reads ${reads.now} served at once / ${reads.waited} waited${waitedMs}` : ''}`,
      );
      if (values.threads) console.error(`  mount CPU-s by thread: ${threadCpuSince(pid, th0)}`);
      const gets = st.s3.gets ?? -1;
      const diskReads = st.disk.hits ?? -1;
      const reread = await measured(pid, `cat ${file} > /dev/null`, bytes);
      await m.stop();
      // 4 readers on a fresh remount, so the first pass comes from the disk tier again.
      m = await t.startMount(backend, mnt, caches.get(t.name) as string, args, env);
      await settle();
      const warm4 = await measured(m.child.pid as number, fourReaders(file), 4 * bytes);
      await m.stop();
      let evicted: { mbps: number; cpu: number } | undefined;
      if (!values['no-evicted']) {
        await evictPageCache(caches.get(t.name) as string);
        m = await t.startMount(backend, mnt, caches.get(t.name) as string, args, env);
        await settle();
        evicted = await measured(m.child.pid as number, `cat ${file} > /dev/null`, bytes);
        await m.stop();
      }
      m = await t.startMount(backend, mnt, caches.get(t.name) as string, args, env);
      const before = await m.metrics();
      const lsCold = await timed(`ls -lR ${mnt}/tree | wc -l`);
      const lsWarm = await timed(`ls -lR ${mnt}/tree | wc -l`);
      const after = await m.metrics();
      const xattrOps =
        opCount(after, 'getxattr') +
        opCount(after, 'listxattr') -
        opCount(before, 'getxattr') -
        opCount(before, 'listxattr');
      await m.stop();
      const list = results.get(t.name) ?? [];
      list.push({ warm1, near, gets, diskReads, warm4, reread, evicted, lsCold, lsWarm, xattrOps });
      results.set(t.name, list);
    }
  }
} finally {
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const a1 = median(ceilings.map((c) => c.one));
const a4 = median(ceilings.map((c) => c.four));
console.log(
  `\n${sizeMiB} MiB, ${rounds} round(s), ${lsFiles} files, ${settleMs} ms settle after mount; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${availableParallelism()} cores (medians over rounds)`,
);
console.log(
  `\n| measurement | ${trees.map((t) => t.name).join(' | ')} |\n|---|${trees.map(() => '---:').join('|')}|`,
);
const row = (label: string, cell: (r: Result[]) => string) =>
  console.log(`| ${label} | ${trees.map((t) => cell(results.get(t.name) ?? [])).join(' | ')} |`);
const rate =
  (pick: (r: Result) => { mbps: number; cpu: number }, base: number, tag: string) => (rs: Result[]) => {
    const v = median(rs.map((r) => pick(r).mbps));
    const c = median(rs.map((r) => pick(r).cpu));
    return `${v.toFixed(0)} MB/s = ${(v / base).toFixed(2)}× ${tag}, ${c.toFixed(2)} CPU-s/GiB`;
  };
const aCpu = median(ceilings.map((c) => c.cpu));
console.log(
  `| (a) FUSE ceiling, 1 reader | ${trees.map(() => `${a1.toFixed(0)} MB/s, ${aCpu.toFixed(2)} CPU-s/GiB`).join(' | ')} |`,
);
console.log(`| (a4) FUSE ceiling, 4 readers | ${trees.map(() => `${a4.toFixed(0)} MB/s`).join(' | ')} |`);
row(
  'warm read after remount, 1 reader',
  rate((r) => r.warm1, a1, '(a)'),
);
row(
  'warm 1 reader ÷ (a) measured just before it (median of per-round ratios)',
  (rs) =>
    `${median(rs.map((r) => r.warm1.mbps / r.near)).toFixed(2)}× (a) [${rs.map((r) => r.near.toFixed(0)).join(', ')} MB/s]`,
);
row('S3 GETs during the warm read', (rs) => rs.map((r) => r.gets).join(', '));
row(`disk-tier reads during the warm read (${Math.ceil(bytes / (8 * MiB))} blocks)`, (rs) =>
  rs.map((r) => r.diskReads).join(', '),
);
row(
  're-read, same mount',
  rate((r) => r.reread, a1, '(a)'),
);
if (!values['no-evicted']) {
  row(
    'warm after remount, block files evicted from the page cache first, 1 reader',
    rate((r) => r.evicted ?? { mbps: 0, cpu: 0 }, a1, '(a)'),
  );
}
row(
  'warm after remount, 4 readers (aggregate)',
  rate((r) => r.warm4, a4, '(a4)'),
);
row(`\`ls -lR\`, ${lsFiles} files, fresh mount`, (rs) => `${median(rs.map((r) => r.lsCold)).toFixed(2)} s`);
row(`\`ls -lR\`, ${lsFiles} files, again`, (rs) => `${median(rs.map((r) => r.lsWarm)).toFixed(2)} s`);
row('getxattr + listxattr FUSE ops for both `ls -lR`', (rs) => String(median(rs.map((r) => r.xattrOps))));
