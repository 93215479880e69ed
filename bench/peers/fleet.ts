/**
 * Peer sharing benchmark: real `strata mount` processes on this machine over one S3 emulator.
 *
 *   1. Cold fleet: mounts A, B and C (each with its own cache dir and peer port, --peers A,B,C) read
 *      the same file at once. Total S3 GETs vs the file's block count (target ≤ 1.1×).
 *   2. Same run, one reader: D, a fresh client-only mount (--peer-client-only --peers A,B,C), warms
 *      up on another file, then reads the file three times: every block a peer hit (first use, no
 *      copy kept under the default keep policy), peer hits again (second use: copies kept), and
 *      local hits. Peer-hit throughput vs local-hit throughput (target ≥ 0.7×).
 *   3. For context: E, a fresh mount without peers, reads the file from S3.
 *
 * CPU: utime + stime of every mount process (from /proc/<pid>/stat) is sampled around each phase,
 * so each row also gives CPU seconds per GiB read — summed over the owners and the reader for peer
 * hits, the reader alone for local hits. On a shared, loaded machine a process gets a fraction of a
 * core, so the throughput ratio follows the CPU ratio; the CPU figures are the load-independent ones.
 *
 * Usage: npx tsx bench/peers/fleet.ts [--size-mib 1024] [--block-size 8M] [--cpu-prof-dir DIR]
 *        [--perf-dir DIR] (perf record -g of D during each of its three passes, for kernel stacks)
 * (STRATA_PEER_KEEP=always|never in the environment changes every mount's keep policy.)
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
const SECRET = 'bench-peer-secret-0123456789abcdef';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'block-size': { type: 'string', default: '8M' },
    /** Write a V8 CPU profile of the peer-hit reader D (and of owner A) into this directory. */
    'cpu-prof-dir': { type: 'string' },
    /** Record `perf record -g` (kernel + user stacks) of D during each of its passes here. */
    'perf-dir': { type: 'string' },
  },
});
const sizeMiB = Number(values['size-mib']);
const blockSize = values['block-size'] ?? '8M';
const blockBytes =
  Number.parseInt(blockSize, 10) * (/k/i.test(blockSize) ? 1024 : /m/i.test(blockSize) ? MiB : 1);
const bytes = sizeMiB * MiB;
const blocks = Math.ceil(bytes / blockBytes);
/** The reader's warm-up file: past the pool's and the memory tier's first fill (256 MiB). */
const WARMUP_MIB = 384;

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
  blocksRead: number;
  gets: number;
  kept: number;
  /** System-wide pages allocated minus pages freed during the pass, in MiB (see freshMiB). */
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
    };
    return { peer: st.peer.hits, gets: st.s3.gets ?? 0, writes: st.disk.writes };
  };
  const t0 = await tiers();
  const perf = perfFile ? startPerf(reader.child.pid as number, perfFile) : undefined;
  const v0 = vmPages();
  const r0 = processCpu(reader.child.pid);
  const o0 = cpuOf(owners);
  const seconds = await timed(`cat '${file}' > /dev/null`);
  const r1 = processCpu(reader.child.pid);
  const ownersCpu = cpuOf(owners) - o0;
  const v1 = vmPages();
  if (perf) await perf();
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
    blocksRead: blocks,
    gets: t1.gets - t0.gets,
    kept: t1.writes - t0.writes,
    freshMiB: ((v1.alloc - v0.alloc - (v1.free - v0.free)) * 4096) / MiB,
  };
}

const root = mkdtempSync(join(tmpdir(), 'strata-bench-peers-'));
const backend = await startBackend();
const mounts: Array<{ m: MountProcess; dir: string }> = [];
const rows: Array<[string, string, string, string]> = [];
const GiB = 1024 * MiB;
let dPasses: Pass[] = [];
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
      profDir && (name === 'd' || name.startsWith('a'))
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
  rows.push([
    `cold fleet: A, B, C read the same ${sizeMiB} MiB at once — total S3 GETs`,
    `${fleetGets} GETs for ${blocks} blocks`,
    `${(fleetGets / blocks).toFixed(2)}× blocks (target ≤ 1.10×; 3.00× without peers)`,
    '',
  ]);
  rows.push([
    'cold fleet aggregate read throughput (3 readers)',
    `${mbps(3 * bytes, coldSeconds).toFixed(0)} MB/s`,
    '',
    `${perGiB(coldCpu / 3)} (A+B+C, per GiB read by each)`,
  ]);

  // 2. Peer hits vs local hits, one reader (D, client-only), same run. Under the default keep
  // policy (second-use, mount-client/peers/keep-policy.ts) D's first pass keeps no copies, its
  // second pass is peer hits again and keeps copies, and the third pass is all local hits.
  const d = await mount('d', ['--peers', peers, '--peer-client-only']);
  // Warm-up, not measured: a fresh process pays one-time costs on its first few hundred MiB (JIT,
  // the block pool's first backing stores, zero-filled on first touch), which the local-hit pass —
  // always D's third — no longer pays. D reads another file through the peers first, so both
  // passes compare a warm process with a warm process.
  await timed(`cat '${d.file.replace('big.bin', 'warm.bin')}' > /dev/null`);
  const passes: Pass[] = [];
  const perfDir = values['perf-dir'];
  for (let i = 0; i < 3; i++)
    passes.push(
      await pass(d.m, d.file, fleetMounts, perfDir ? join(perfDir, `d-pass${i + 1}.data`) : undefined),
    );
  dPasses = passes;
  const local = passes[passes.length - 1] as Pass;
  const names = ['first', 'second', 'third'];
  passes.forEach((p, i) => {
    const tier =
      p.peerHits > 0 && p.peerHits === p.blocksRead
        ? `every block a peer hit (${p.gets} S3 GETs), ${p.kept} kept in D's cache`
        : p.peerHits > 0
          ? `${p.peerHits} peer hits of ${p.blocksRead} blocks`
          : 'local cache hits (memory + disk)';
    const cpu =
      p.peerHits > 0
        ? `${perGiB(p.readerCpu + p.ownersCpu)} (D ${perGiB(p.readerCpu)} [user ${perGiB(p.readerUser)}, sys ${perGiB(p.readerSys)}] + owners ${perGiB(p.ownersCpu)}) = ${((p.readerCpu + p.ownersCpu) / Math.max(local.readerCpu, 1e-9)).toFixed(1)}× local`
        : `${perGiB(p.readerCpu)} [user ${perGiB(p.readerUser)}, sys ${perGiB(p.readerSys)}]`;
    rows.push([
      `D (fresh, client-only), ${names[i]} read: ${tier}`,
      `${p.mbps.toFixed(0)} MB/s`,
      p === local ? '1.00× local' : `**${(p.mbps / local.mbps).toFixed(2)}× local** (target ≥ 0.70×)`,
      cpu,
    ]);
  });

  // 3. Context: a fresh mount without peers reads from S3.
  const e = await mount('e', []);
  const e0 = cpuOf([e.m]);
  const s3 = mbps(bytes, await timed(`cat '${e.file}' > /dev/null`));
  rows.push([
    `E (fresh, no peers) reads it from S3 (${await gets(e.m)} GETs)`,
    `${s3.toFixed(0)} MB/s`,
    `${(s3 / local.mbps).toFixed(2)}× local`,
    `${perGiB(cpuOf([e.m]) - e0)} (E only; the emulator's CPU not counted)`,
  ]);
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
  `\n${sizeMiB} MiB file, ${blockSize} blocks, load average at the end: ${load.split(' ').slice(0, 3).join(' ')}\n`,
);
console.log('| measurement | result | ratio | CPU per GiB (mount processes) |\n|---|---:|---:|---:|');
for (const [a, b, c, cpu] of rows) console.log(`| ${a} | ${b} | ${c} | ${cpu} |`);
console.log(
  `\nNet new memory (system-wide pages allocated − freed) during D's passes: ${dPasses.map((p) => `${p.freshMiB.toFixed(0)} MiB`).join(', ')}` +
    ' (first writes to fresh memory cost the writer ~3 s of system CPU per GiB in this VM; see docs/benchmarks/peers.md).',
);
