/**
 * The peer transport alone: one owner process serving 8 MiB blocks from memory (no disk cache, no
 * crc32c pass — its checksum comes from a table computed once per buffer) and this process fetching
 * them through the real PeerFetcher → PeerClient → BlockReceiver into pooled buffers, as the data
 * path does on a peer hit, with `--inflight` blocks requested at a time (the read-ahead window).
 *
 * What it isolates: the owner's send path and the requester's receive + verification, without FUSE,
 * the page cache or the disk cache, so a change to either shows up in CPU seconds per GiB on each
 * side. Prints one markdown table row per in-flight setting.
 *
 * Usage: npx tsx bench/peers/transport.ts [--gib 2] [--block-size 8M] [--inflight 1,8,16]
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { subBlockSize } from '../../mount-client/block-cache/format.ts';
import { rememberSubBlockCrcs, subBlockCrcs } from '../../mount-client/block-cache/payload-crcs.ts';
import type { BlockId } from '../../mount-client/block-cache/types.ts';
import { startPeering } from '../../mount-client/peers/index.ts';
import { processCpu } from '../compare/measure.ts';

const MiB = 1024 * 1024;
const SECRET = 'bench-transport-secret-0123456789';
const POLICY = { bucket: 'bench', dataPrefix: '' };
/** Distinct blocks the owner holds: enough that the requester's CPU cache never holds one. */
const DISTINCT = 16;

const { values } = parseArgs({
  options: {
    gib: { type: 'string', default: '2' },
    'block-size': { type: 'string', default: '8M' },
    inflight: { type: 'string', default: '1,8,16' },
    role: { type: 'string', default: 'reader' },
  },
});
const blockSize = Number.parseInt(values['block-size'] ?? '8M', 10) * MiB;
const object = { bucket: 'bench', key: 'transport.bin', size: DISTINCT * blockSize, etag: '"bench"' };
const idOf = (index: number): BlockId => ({ object, index, blockSize });

if (values.role === 'owner') {
  // Owner: blocks in memory, their sub-block crc tables remembered as the disk cache would have.
  const blocks = Array.from({ length: DISTINCT }, (_, i) => {
    const b = Buffer.allocUnsafe(blockSize).fill(i * 7 + 1);
    for (let o = 0; o < b.length; o += 4096) b.writeUInt32LE(o ^ (i << 20), o);
    rememberSubBlockCrcs(b, subBlockSize(blockSize), subBlockCrcs(b, subBlockSize(blockSize)));
    return b;
  });
  const owner = await startPeering({
    secret: SECRET,
    listen: '127.0.0.1:0',
    policy: POLICY,
    metricsRegistry: new Registry(),
    source: {
      loadBlock: async (id) => blocks[id.index] as Buffer,
      leaseBlock: async (id) => ({ data: blocks[id.index] as Buffer, release: () => undefined }),
    },
  });
  process.send?.({ address: owner.address });
  process.on('message', async () => {
    await owner.close();
    process.exit(0);
  });
} else {
  const child = fork(
    new URL(import.meta.url).pathname,
    ['--role', 'owner', '--block-size', values['block-size'] ?? '8M'],
    {
      // STRATA_BENCH_OWNER_PROF=DIR: a V8 CPU profile of the owner process there.
      execArgv: [
        '--import',
        'tsx',
        ...(process.env.STRATA_BENCH_OWNER_PROF
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.STRATA_BENCH_OWNER_PROF}`]
          : []),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const address = await new Promise<string>((resolve) =>
    child.once('message', (m) => resolve((m as { address: string }).address)),
  );
  const reader = await startPeering({
    secret: SECRET,
    listen: '127.0.0.1:0',
    serve: false,
    policy: POLICY,
    peers: [address],
    metricsRegistry: new Registry(),
    source: { loadBlock: () => Promise.reject(new Error('client-only')) },
  });
  const total = Math.round((Number(values.gib) * 1024 * MiB) / blockSize);
  const rows: string[] = [];
  const pool = Array.from({ length: 32 }, () => Buffer.allocUnsafe(blockSize));
  const run = async (inflight: number, count: number) => {
    let next = 0;
    const worker = async (slot: number) => {
      for (let i = next++; i < count; i = next++) {
        await reader.fetcher.fetch(idOf(i % DISTINCT), undefined, () => pool[slot] as Buffer);
      }
    };
    await Promise.all(Array.from({ length: inflight }, (_, s) => worker(s)));
  };
  for (const inflight of (values.inflight ?? '8').split(',').map(Number)) {
    await run(inflight, 2 * DISTINCT); // warm-up: connections, JIT
    const r0 = process.cpuUsage();
    const o0 = processCpu(child.pid);
    const t0 = performance.now();
    await run(inflight, total);
    const seconds = (performance.now() - t0) / 1000;
    const r = process.cpuUsage(r0);
    const o1 = processCpu(child.pid);
    const gib = (total * blockSize) / (1024 * MiB);
    const per = (s: number) => (s / gib).toFixed(2);
    rows.push(
      `| ${inflight} | ${((total * blockSize) / 1e6 / seconds).toFixed(0)} MB/s | ${per(r.user / 1e6)} + ${per(r.system / 1e6)} | ` +
        `${per(o1.user - o0.user)} + ${per(o1.sys - o0.sys)} | ${per((r.user + r.system) / 1e6 + o1.user - o0.user + o1.sys - o0.sys)} |`,
    );
  }
  await reader.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\n${values.gib} GiB of ${blockSize / MiB} MiB blocks over loopback, load average ${load}\n`);
  console.log(
    '| blocks in flight | throughput | reader CPU-s/GiB (user + sys) | owner CPU-s/GiB (user + sys) | total CPU-s/GiB |\n|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) console.log(r);
}
