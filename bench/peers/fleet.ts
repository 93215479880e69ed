/**
 * Peer sharing benchmark: real `strata mount` processes on this machine over one S3 emulator.
 *
 *   1. Cold fleet: mounts A, B and C (each with its own cache dir and peer port, --peers A,B,C) read
 *      the same file at once. Total S3 GETs vs the file's block count (target ≤ 1.1×).
 *   2. Same run, one reader: D, a fresh client-only mount (--peer-client-only --peers A,B,C), reads
 *      the file — every block a peer hit — then reads it again from its own cache (local hits).
 *      Peer-hit throughput vs local-hit throughput (target ≥ 0.7×).
 *   3. For context: E, a fresh mount without peers, reads the file from S3.
 *
 * Usage: npx tsx bench/peers/fleet.ts [--size-mib 1024] [--block-size 8M]
 * Needs /dev/fuse, libfuse2 and fuse3 (as the FUSE tests do).
 */
import { exec, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { startBackend } from '../../test/fuse/support/backend.ts';
import { type MountProcess, startMount } from '../../test/fuse/support/mount-process.ts';

const sh = promisify(exec);
const run = promisify(execFile);
const MiB = 1024 * 1024;
const SECRET = 'bench-peer-secret-0123456789abcdef';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'block-size': { type: 'string', default: '8M' },
  },
});
const sizeMiB = Number(values['size-mib']);
const blockSize = values['block-size'] ?? '8M';
const blockBytes =
  Number.parseInt(blockSize, 10) * (/k/i.test(blockSize) ? 1024 : /m/i.test(blockSize) ? MiB : 1);
const bytes = sizeMiB * MiB;
const blocks = Math.ceil(bytes / blockBytes);

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

const root = mkdtempSync(join(tmpdir(), 'strata-bench-peers-'));
const backend = await startBackend();
const mounts: Array<{ m: MountProcess; dir: string }> = [];
const rows: Array<[string, string, string]> = [];
try {
  process.stderr.write(`uploading ${sizeMiB} MiB…\n`);
  await backend.put('/bench/big.bin', randomBytes(bytes));
  const common = ['--block-size', blockSize, '--cache-size', `${sizeMiB + 512}M`];
  const mount = async (name: string, args: string[]) => {
    const dir = join(root, `mnt-${name}`);
    mkdirSync(dir);
    const m = await startMount(backend, dir, join(root, `cache-${name}`), [...common, ...args], {
      STRATA_PEER_SECRET: SECRET,
    });
    mounts.push({ m, dir });
    return { m, file: join(dir, 'bench/big.bin') };
  };

  // 1. Cold fleet, three readers at once.
  const ports = await Promise.all(['a', 'b', 'c'].map(() => freePort()));
  const peers = ports.map((p) => `127.0.0.1:${p}`).join(',');
  const fleet = await Promise.all(
    ports.map((p, i) => mount('abc'[i]!, ['--peers', peers, '--peer-listen', `127.0.0.1:${p}`])),
  );
  const coldSeconds = await timed(`${fleet.map((n) => `cat '${n.file}' > /dev/null &`).join(' ')} wait`);
  const fleetGets = (await Promise.all(fleet.map((n) => gets(n.m)))).reduce((a, b) => a + b, 0);
  rows.push([
    `cold fleet: A, B, C read the same ${sizeMiB} MiB at once — total S3 GETs`,
    `${fleetGets} GETs for ${blocks} blocks`,
    `${(fleetGets / blocks).toFixed(2)}× blocks (target ≤ 1.10×; 3.00× without peers)`,
  ]);
  rows.push([
    'cold fleet aggregate read throughput (3 readers)',
    `${mbps(3 * bytes, coldSeconds).toFixed(0)} MB/s`,
    '',
  ]);

  // 2. Peer hits vs local hits, one reader (D, client-only), same run.
  const d = await mount('d', ['--peers', peers, '--peer-client-only']);
  const peerSeconds = await timed(`cat '${d.file}' > /dev/null`);
  const dGets = await gets(d.m);
  const localSeconds = await timed(`cat '${d.file}' > /dev/null`);
  const peer = mbps(bytes, peerSeconds);
  const local = mbps(bytes, localSeconds);
  rows.push([
    `D (fresh, client-only) reads it: every block a peer hit (${dGets} S3 GETs)`,
    `${peer.toFixed(0)} MB/s`,
    `${(peer / local).toFixed(2)}× local (target ≥ 0.70×)`,
  ]);
  rows.push([
    'D reads it again: local cache hits (memory + disk)',
    `${local.toFixed(0)} MB/s`,
    '1.00× local',
  ]);

  // 3. Context: a fresh mount without peers reads from S3.
  const e = await mount('e', []);
  const s3 = mbps(bytes, await timed(`cat '${e.file}' > /dev/null`));
  rows.push([
    `E (fresh, no peers) reads it from S3 (${await gets(e.m)} GETs)`,
    `${s3.toFixed(0)} MB/s`,
    `${(s3 / local).toFixed(2)}× local`,
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
console.log('| measurement | result | ratio |\n|---|---:|---:|');
for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
