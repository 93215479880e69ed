/**
 * Peer sharing benchmark: real `strata mount` processes on this machine over one S3 emulator.
 *
 *   1. Cold fleet: mounts A, B and C (each with its own cache dir and peer port, --peers A,B,C) read
 *      the same file at once. Total S3 GETs vs the file's block count (target ≤ 1.1×).
 *   2. Peer hits vs local hits, same run, same page-cache conditions. Two fresh client-only readers
 *      with the same settings but their keep policy: P (`--peer-keep never`: every block it reads
 *      is a peer hit, every time) and L (`--peer-keep always`: after one read of the file every
 *      block is local). Both warm up on another file, each reads the file once (not measured: the
 *      first open of a file in a mount, whose page cache grows onto fresh memory — reported as the
 *      old ordering's figure), then the bench alternates P, L, P, L, ... (`--rounds`) and reports
 *      every pass and the medians. Peer-hit throughput vs local-hit throughput (target ≥ 0.7×).
 *   3. For context: E, a fresh mount without peers, reads the file from S3.
 *
 * Why two readers and alternation (docs/benchmarks/peers.md, session 3): in this VM the first write
 * to memory the guest freed more than ~2 s ago costs ~3 s of system CPU per GiB (free page
 * reporting), and a FUSE read's first writer of a page-cache page is the reader's reply copy. The
 * old ordering measured peer hits on the first open of the file (all fresh memory) and local hits on
 * a re-open (reusing the pages the open had just freed), so it compared the VM's memory, not the
 * tiers. Now every measured pass is a re-open of a file whose previous pass filled the same mount's
 * page cache (`--page-cache reuse`, default), or every measured pass first drops its file's pages
 * and waits 6 s (`--page-cache drop`, so nothing depends on reusing the file's own pages): the same
 * conditions for P and L either way. (The kernel reports free memory to the host gradually, a
 * slice per 2 s round, so a 6 s wait does not make the memory "fresh" again: measured, `drop`
 * passes cost the same system CPU as `reuse` ones. Only memory left unused for long is slow.)
 *
 * CPU: utime + stime of every mount process (from /proc/<pid>/stat) is sampled around each pass,
 * so each row also gives CPU seconds per GiB read — summed over the owners and the reader for peer
 * hits, the reader alone for local hits. On a shared, loaded machine a process gets a fraction of a
 * core, so the throughput ratio follows the CPU ratio; the CPU figures are the load-independent ones.
 *
 * Usage: npx tsx bench/peers/fleet.ts [--size-mib 1024] [--block-size 8M] [--rounds 3]
 *        [--page-cache reuse|drop] [--cpu-prof-dir DIR] [--perf-dir DIR] (perf record -g of P and
 *        L and of owner A during each measured pass, for kernel stacks)
 * Needs /dev/fuse, libfuse2 and fuse3 (as the FUSE tests do).
 */
import { exec, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { startBackend } from '../../test/fuse/support/backend.ts';
import { type MountProcess, startMount } from '../../test/fuse/support/mount-process.ts';
import { processCpu, processCpuSeconds } from '../compare/measure.ts';

const sh = promisify(exec);
const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SECRET = 'bench-peer-secret-0123456789abcdef';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'block-size': { type: 'string', default: '8M' },
    /** Measured passes per reader; they alternate P, L, P, L, ... and the medians are compared. */
    rounds: { type: 'string', default: '3' },
    /** reuse: each pass re-opens a file whose pages it frees at open; drop: pages dropped 6 s before. */
    'page-cache': { type: 'string', default: 'reuse' },
    /** Write a V8 CPU profile of the readers P and L (and of owner A) into this directory. */
    'cpu-prof-dir': { type: 'string' },
    /** Record `perf record -g` (kernel + user stacks) of the reader during each measured pass here. */
    'perf-dir': { type: 'string' },
  },
});
const sizeMiB = Number(values['size-mib']);
const rounds = Number(values.rounds);
const pageCache = values['page-cache'];
if (pageCache !== 'reuse' && pageCache !== 'drop')
  throw new Error(`--page-cache must be reuse or drop, got ${JSON.stringify(pageCache)}`);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a whole number ≥ 1');
const blockSize = values['block-size'] ?? '8M';
const blockBytes =
  Number.parseInt(blockSize, 10) * (/k/i.test(blockSize) ? 1024 : /m/i.test(blockSize) ? MiB : 1);
const bytes = sizeMiB * MiB;
const blocks = Math.ceil(bytes / blockBytes);
/** The readers' warm-up file: past the pool's and the memory tier's first fill (256 MiB). */
const WARMUP_MIB = 384;
/**
 * The readers' memory tier: the mount's default 256 MiB, but at most half the file, so a sequential
 * pass over the file has evicted its first blocks before the next pass comes round — P's passes are
 * then peer hits for every block, not memory hits. Not less than twice the 64 MiB read-ahead window:
 * with `--peer-keep never` a tier no larger than the window evicts read-ahead blocks before they are
 * read and fetches them again (measured: 143 peer fetches for 32 blocks with a 64 MiB tier).
 */
const memoryMiB = Math.min(256, Math.floor(sizeMiB / 2));
if (memoryMiB < 128) throw new Error('--size-mib must be at least 256 (see memoryMiB)');
/**
 * How long a dropped page cache sits free before a `drop` pass: the kernel's free page reporting
 * starts 2 s after free memory accumulates (PAGE_REPORTING_DELAY); 6 s is three of its rounds.
 */
const REPORTING_WAIT_MS = 6_000;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function timed(cmd: string): Promise<number> {
  const t0 = performance.now();
  await sh(cmd, { maxBuffer: MiB });
  return (performance.now() - t0) / 1000;
}

const mbps = (n: number, s: number) => n / 1e6 / s;
const gets = async (m: MountProcess) => (await m.stats()).dataPath.s3.gets ?? 0;

interface Pass {
  mbps: number;
  readerCpu: number;
  readerUser: number;
  readerSys: number;
  ownersCpu: number;
  peerHits: number;
  gets: number;
  kept: number;
  /** FUSE reads that had to wait for their block (the rest were served at once), of `reads`. */
  waited: number;
  reads: number;
  /** System-wide pages allocated minus pages freed during the pass, in MiB (see vmPages). */
  freshMiB: number;
}

/**
 * Why count fresh memory: in this VM (a balloon with free page reporting) memory the guest freed
 * more than a few seconds ago has been handed back to the host, and the first write to such a page
 * costs ~3 s of *system* CPU per GiB in whichever process writes it first (measured with dd into
 * /dev/shm, docs/benchmarks/peers.md round 4). For a FUSE read that first writer is the reader's
 * reply copy into the page cache (fuse_dev_do_write → fuse_copy_folio), so a pass that grows the
 * page cache onto such memory shows inflated system CPU on the reader whatever tier serves it.
 */
function vmPages(): { alloc: number; free: number } {
  let alloc = 0;
  let free = 0;
  for (const line of readFileSync('/proc/vmstat', 'utf8').split('\n')) {
    const [k, v] = line.split(' ');
    if (k?.startsWith('pgalloc_')) alloc += Number(v);
    else if (k === 'pgfree') free += Number(v);
  }
  return { alloc, free };
}

/** `perf record -g` of one process until the returned function is called (SIGINT, then wait). */
function startPerf(pid: number, out: string): () => Promise<void> {
  const child = spawn('perf', ['record', '-g', '-q', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return async () => {
    child.kill('SIGINT');
    await exited;
  };
}

const cpuOf = (ms: MountProcess[]) => ms.reduce((sum, m) => sum + processCpuSeconds(m.child.pid), 0);
const perGiB = (cpu: number) => `${(cpu / (bytes / GiB)).toFixed(2)} s`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** One `cat` of `file` through `reader`, with the CPU of the reader and the owners and its tiers. */
async function pass(
  reader: MountProcess,
  file: string,
  owners: MountProcess[],
  perfFile?: string,
): Promise<Pass> {
  const tiers = async () => {
    const st = (await reader.stats()).dataPath as unknown as {
      peer: { hits: number };
      s3: { gets?: number };
      disk: { writes: number };
      reads: { now: number; waited: number };
    };
    return {
      peer: st.peer.hits,
      gets: st.s3.gets ?? 0,
      writes: st.disk.writes,
      waited: st.reads.waited,
      reads: st.reads.now + st.reads.waited,
    };
  };
  if (pageCache === 'drop') {
    // An open without a read: FUSE drops the file's page cache at open (no keep_cache), so the
    // pages of the previous pass are freed now, and sit free for REPORTING_WAIT_MS.
    await sh(`: < '${file}'`);
    await new Promise((r) => setTimeout(r, REPORTING_WAIT_MS));
  }
  const t0 = await tiers();
  const perf = perfFile ? startPerf(reader.child.pid as number, perfFile) : undefined;
  // The first owner too (its send path), named after the reader's file: p-pass1.data → p-pass1-owner.data.
  const ownerPerf =
    perfFile && owners[0]
      ? startPerf(owners[0].child.pid as number, perfFile.replace(/\.data$/, '-owner.data'))
      : undefined;
  const v0 = vmPages();
  const r0 = processCpu(reader.child.pid);
  const o0 = cpuOf(owners);
  const seconds = await timed(`cat '${file}' > /dev/null`);
  const r1 = processCpu(reader.child.pid);
  const ownersCpu = cpuOf(owners) - o0;
  const v1 = vmPages();
  if (perf) await perf();
  if (ownerPerf) await ownerPerf();
  // Disk writes land in the background: wait for the last ones before counting them.
  await new Promise((r) => setTimeout(r, 500));
  const t1 = await tiers();
  return {
    mbps: mbps(bytes, seconds),
    readerUser: r1.user - r0.user,
    readerSys: r1.sys - r0.sys,
    readerCpu: r1.user - r0.user + r1.sys - r0.sys,
    ownersCpu,
    peerHits: t1.peer - t0.peer,
    gets: t1.gets - t0.gets,
    kept: t1.writes - t0.writes,
    waited: t1.waited - t0.waited,
    reads: t1.reads - t0.reads,
    freshMiB: ((v1.alloc - v0.alloc - (v1.free - v0.free)) * 4096) / MiB,
  };
}

/** Where a pass's blocks came from, checked against what the row claims. */
function tierOf(p: Pass): string {
  if (p.peerHits === blocks && p.gets === 0) return `every block a peer hit, ${p.kept} kept`;
  if (p.peerHits === 0 && p.gets === 0) return 'local hits (memory + disk)';
  return `MIXED: ${p.peerHits} peer hits, ${p.gets} S3 GETs of ${blocks} blocks`;
}

const cpuCell = (p: Pass, localCpu: number) =>
  p.peerHits > 0
    ? `${perGiB(p.readerCpu + p.ownersCpu)} (reader ${perGiB(p.readerCpu)} [user ${perGiB(p.readerUser)}, sys ${perGiB(p.readerSys)}] + owners ${perGiB(p.ownersCpu)}) = ${((p.readerCpu + p.ownersCpu) / Math.max(localCpu, 1e-9)).toFixed(1)}× local`
    : `${perGiB(p.readerCpu)} [user ${perGiB(p.readerUser)}, sys ${perGiB(p.readerSys)}]`;

const root = mkdtempSync(join(tmpdir(), 'strata-bench-peers-'));
const backend = await startBackend();
const mounts: Array<{ m: MountProcess; dir: string }> = [];
const rows: Array<[string, string, string, string, string]> = [];
const summary: string[] = [];
try {
  process.stderr.write(`uploading ${sizeMiB} MiB…\n`);
  await backend.put('/bench/big.bin', randomBytes(bytes));
  await backend.put('/bench/warm.bin', randomBytes(WARMUP_MIB * MiB));
  const common = ['--block-size', blockSize, '--cache-size', `${sizeMiB + WARMUP_MIB + 512}M`];
  const profDir = values['cpu-prof-dir'];
  const mount = async (name: string, args: string[]) => {
    const dir = join(root, `mnt-${name}`);
    mkdirSync(dir);
    const prof: Record<string, string> =
      profDir && (name === 'p' || name === 'l' || name.startsWith('a'))
        ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir} --cpu-prof-name=${name}.cpuprofile` }
        : {};
    const m = await startMount(backend, dir, join(root, `cache-${name}`), [...common, ...args], {
      STRATA_PEER_SECRET: SECRET,
      ...prof,
    });
    mounts.push({ m, dir });
    return { m, file: join(dir, 'bench/big.bin') };
  };

  // 1. Cold fleet, three readers at once. The ports are picked before the mounts start (each must
  // list the others), so another process may take one in between: then the mount exits with a
  // "port is in use" error and the whole fleet is started again on fresh ports.
  let fleet: Array<{ m: MountProcess; file: string }> = [];
  let peers = '';
  for (let attempt = 1; ; attempt++) {
    const ports = await Promise.all(['a', 'b', 'c'].map(() => freePort()));
    peers = ports.map((p) => `127.0.0.1:${p}`).join(',');
    const started = await Promise.allSettled(
      ports.map((p, i) =>
        mount(`${'abc'[i]}${attempt}`, ['--peers', peers, '--peer-listen', `127.0.0.1:${p}`]),
      ),
    );
    if (started.every((r) => r.status === 'fulfilled')) {
      fleet = started.map((r) => (r as PromiseFulfilledResult<(typeof fleet)[number]>).value);
      break;
    }
    const failure = started.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    for (const r of started) if (r.status === 'fulfilled') await r.value.m.stop().catch(() => undefined);
    if (attempt === 3 || !/in use/.test(String(failure.reason))) throw failure.reason;
  }
  const fleetMounts = fleet.map((n) => n.m);
  const cold0 = cpuOf(fleetMounts);
  const coldSeconds = await timed(`${fleet.map((n) => `cat '${n.file}' > /dev/null &`).join(' ')} wait`);
  const coldCpu = cpuOf(fleetMounts) - cold0;
  const fleetGets = (await Promise.all(fleet.map((n) => gets(n.m)))).reduce((a, b) => a + b, 0);
  summary.push(
    `| cold fleet: A, B, C read the same ${sizeMiB} MiB at once — total S3 GETs | ${fleetGets} GETs for ${blocks} blocks | ` +
      `**${(fleetGets / blocks).toFixed(2)}× blocks** (target ≤ 1.10×; 3.00× without peers) | |`,
    `| cold fleet aggregate read throughput (3 readers) | ${mbps(3 * bytes, coldSeconds).toFixed(0)} MB/s | | ` +
      `${perGiB(coldCpu / 3)} (A+B+C, per GiB read by each) |`,
  );

  // 2. Peer hits (P) vs local hits (L): two client-only readers that differ only in keep policy.
  const readerArgs = ['--peers', peers, '--peer-client-only', '--memory-cache', `${memoryMiB}M`];
  const P = await mount('p', [...readerArgs, '--peer-keep', 'never']);
  const L = await mount('l', [...readerArgs, '--peer-keep', 'always']);
  // Warm-up, not measured: a fresh process pays one-time costs on its first few hundred MiB (JIT,
  // the block pool's first backing stores, zero-filled on first touch).
  for (const r of [P, L]) await timed(`cat '${r.file.replace('big.bin', 'warm.bin')}' > /dev/null`);
  // First open of the file in each mount (L keeps its copies here, so its later passes are local).
  // P's first pass is what the old ordering measured as "peer hits": kept as a row of its own.
  const firstP = await pass(P.m, P.file, fleetMounts);
  const firstL = await pass(L.m, L.file, fleetMounts);
  const perfDir = values['perf-dir'];
  const ps: Pass[] = [];
  const ls: Pass[] = [];
  for (let i = 1; i <= rounds; i++) {
    const perf = (r: string) => (perfDir ? join(perfDir, `${r}-pass${i}.data`) : undefined);
    ps.push(await pass(P.m, P.file, fleetMounts, perf('p')));
    ls.push(await pass(L.m, L.file, fleetMounts, perf('l')));
  }
  const localMbps = median(ls.map((p) => p.mbps));
  const localCpu = median(ls.map((p) => p.readerCpu));
  const ratio = (p: Pass) => `${(p.mbps / localMbps).toFixed(2)}×`;
  const row = (label: string, p: Pass) =>
    rows.push([
      label,
      tierOf(p),
      `${p.mbps.toFixed(0)} MB/s`,
      `${ratio(p)} local`,
      `${cpuCell(p, localCpu)}; ${p.waited}/${p.reads} reads waited; net new memory ${p.freshMiB.toFixed(0)} MiB`,
    ]);
  for (let i = 0; i < rounds; i++) {
    row(`P, measured pass ${i + 1} (re-open)`, ps[i] as Pass);
    row(`L, measured pass ${i + 1} (re-open)`, ls[i] as Pass);
  }
  row('P, first open of the file (the old ordering’s peer-hit pass; not in the medians)', firstP);
  row('L, first open: peer hits with every block copied to L’s cache (setup)', firstL);

  const pm = median(ps.map((p) => p.mbps));
  const pCpu = median(ps.map((p) => p.readerCpu));
  const pOwners = median(ps.map((p) => p.ownersCpu));
  summary.push(
    `| peer hits (P, median of ${rounds} re-opens) | ${pm.toFixed(0)} MB/s | **${(pm / localMbps).toFixed(2)}× local** (target ≥ 0.70×) | ` +
      `${perGiB(pCpu + pOwners)} (reader ${perGiB(pCpu)} + owners ${perGiB(pOwners)}) = ${((pCpu + pOwners) / localCpu).toFixed(1)}× local |`,
    `| local hits (L, median of ${rounds} re-opens) | ${localMbps.toFixed(0)} MB/s | 1.00× local | ${perGiB(localCpu)} |`,
    `| old ordering: P's first open vs the local median | ${firstP.mbps.toFixed(0)} MB/s | ${ratio(firstP)} local | ${cpuCell(firstP, localCpu)} |`,
  );

  // 3. Context: a fresh mount without peers reads from S3.
  const e = await mount('e', []);
  const e0 = cpuOf([e.m]);
  const s3 = mbps(bytes, await timed(`cat '${e.file}' > /dev/null`));
  summary.push(
    `| E (fresh, no peers) reads it from S3 (${await gets(e.m)} GETs) | ${s3.toFixed(0)} MB/s | ${(s3 / localMbps).toFixed(2)}× local | ` +
      `${perGiB(cpuOf([e.m]) - e0)} (E only; the emulator's CPU not counted) |`,
  );
} finally {
  for (const { m, dir } of mounts) {
    await m.stop().catch(() => undefined);
    await run('fusermount', ['-uz', dir]).catch(() => undefined);
  }
  await backend.stop();
  rmSync(root, { recursive: true, force: true });
}

const { stdout: load } = await sh('cat /proc/loadavg');
console.log(
  `\n${sizeMiB} MiB file, ${blockSize} blocks, readers' memory tier ${memoryMiB} MiB, --page-cache ${pageCache}, ` +
    `load average at the end: ${load.split(' ').slice(0, 3).join(' ')}\n`,
);
console.log('| measurement | result | ratio | CPU per GiB (mount processes) |\n|---|---:|---:|---:|');
for (const line of summary) console.log(line);
console.log('\nEvery pass (P = peer hits, `--peer-keep never`; L = local hits, `--peer-keep always`):\n');
console.log(
  '| pass | blocks from | throughput | vs local median | CPU per GiB; reads that waited for a block; memory |\n|---|---|---:|---:|---:|',
);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(
  '\nNet new memory = system-wide pages allocated − freed during the pass; first writes to fresh memory cost the writer ' +
    '~3 s of system CPU per GiB in this VM (docs/benchmarks/peers.md).',
);
