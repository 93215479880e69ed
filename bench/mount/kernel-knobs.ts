/**
 * Kernel-side knobs of a Strata FUSE mount, side by side in one run (issue 5): does the kernel's
 * read-ahead on the mount's BDI, FUSE's background-request limit, FUSE `direct_io` or the reader's
 * request size move single-stream throughput? Each variant gets a fresh cache and reads one file
 * cold (S3), again in the same mount (re-read), and after a remount (warm, disk cache); variants
 * alternate order every round and the table gives medians.
 *
 *   npx tsx bench/mount/kernel-knobs.ts [--size-mib 256] [--rounds 3]
 *     [--variant 'ra=128,bg=12,reader=cat'] [--variant 'ra=1024,bg=12,reader=dd8M,mount=--direct-io'] …
 *
 * A variant is comma-separated key=value: `ra` (read_ahead_kb of the mount's BDI, /sys/class/bdi),
 * `bg` (max_background of the FUSE connection, /sys/fs/fuse/connections; congestion_threshold set
 * to ¾ of it, as the kernel's defaults 12/9 are), `reader` (`cat`, or `dd<size>` for dd bs=<size>),
 * `mount` (extra `strata mount` flags, space-separated), `env` (the mount's environment, `KEY:VALUE`
 * space-separated: `env=PREBUILDS_ONLY:1` loads fuse-native's stock prebuilt addon instead of the one
 * scripts/build-fuse-native.mjs builds). Needs root, /dev/fuse and fusectl mounted
 * (mounted here if missing).
 */
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { startBackend } from '../../test/fuse/support/backend.ts';
import { startMount } from '../../test/fuse/support/mount-process.ts';
import { processCpuSeconds } from '../compare/measure.ts';

const sh = promisify(exec);
const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    variant: { type: 'string', multiple: true },
  },
});
const bytes = Number(values['size-mib']) * MiB;
const rounds = Number(values.rounds);

interface Variant {
  name: string;
  ra: number;
  bg: number;
  reader: string;
  mountArgs: string[];
  /** Environment of the mount process: `env=KEY:VALUE` (e.g. `env=PREBUILDS_ONLY:1`, the stock fuse-native addon). */
  env: Record<string, string>;
}
function parseVariant(spec: string): Variant {
  const kv = new Map(spec.split(',').map((p) => p.split('=', 2) as [string, string]));
  return {
    name: spec,
    ra: Number(kv.get('ra') ?? 128),
    bg: Number(kv.get('bg') ?? 12),
    reader: kv.get('reader') ?? 'cat',
    mountArgs: (kv.get('mount') ?? '').split(' ').filter(Boolean),
    env: Object.fromEntries(
      (kv.get('env') ?? '')
        .split(' ')
        .filter(Boolean)
        .map((e) => e.split(':', 2)),
    ),
  };
}
const variants = (
  values.variant ?? [
    'ra=128,bg=12,reader=cat',
    'ra=1024,bg=12,reader=cat',
    'ra=128,bg=12,reader=cat,mount=--direct-io',
  ]
).map(parseVariant);

/** The kernel's defaults are per connection: set them on this mount only, after it is up. */
async function tune(mnt: string, v: Variant): Promise<void> {
  const dev = (await stat(mnt)).dev; // async: this process hosts the S3 server the mount reads
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  writeFileSync(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(v.ra));
  const conn = `/sys/fs/fuse/connections/${minor}`;
  writeFileSync(`${conn}/max_background`, String(v.bg));
  writeFileSync(`${conn}/congestion_threshold`, String(Math.ceil((v.bg * 3) / 4)));
}

const readCmd = (v: Variant, file: string) =>
  v.reader === 'cat'
    ? `cat '${file}' > /dev/null`
    : `dd if='${file}' of=/dev/null bs=${v.reader.slice(2)} status=none`;

interface Rate {
  mbps: number;
  cpu: number;
}
async function measured(pid: number, cmd: string): Promise<Rate> {
  const c0 = processCpuSeconds(pid);
  const t = process.hrtime.bigint();
  await sh(cmd);
  const secs = Number(process.hrtime.bigint() - t) / 1e9;
  return { mbps: bytes / 1e6 / secs, cpu: (processCpuSeconds(pid) - c0) / (bytes / 1024 ** 3) };
}

if (!existsSync('/sys/fs/fuse/connections/')) await sh('mount -t fusectl none /sys/fs/fuse/connections');
const dir = mkdtempSync(join(tmpdir(), 'strata-bench-knobs-'));
const results = new Map<string, { cold: Rate; reread: Rate; warm: Rate }[]>();
const backend = await startBackend();
try {
  await backend.put('/big.bin', randomBytes(bytes));
  const base = ['--block-size', '8M', '--cache-size', `${2 * Number(values['size-mib']) + 256}M`];
  for (let round = 0; round < rounds; round++) {
    for (const v of round % 2 ? [...variants].reverse() : variants) {
      const cache = mkdtempSync(join(dir, 'cache-'));
      const mnt = mkdtempSync(join(dir, 'mnt-'));
      const file = join(mnt, 'big.bin');
      let m = await startMount(backend, mnt, cache, [...base, ...v.mountArgs], v.env);
      await tune(mnt, v);
      const cold = await measured(m.child.pid as number, readCmd(v, file));
      const reread = await measured(m.child.pid as number, readCmd(v, file));
      await m.stop();
      m = await startMount(backend, mnt, cache, [...base, ...v.mountArgs], v.env);
      await tune(mnt, v);
      const warm = await measured(m.child.pid as number, readCmd(v, file));
      await m.stop();
      rmSync(cache, { recursive: true, force: true });
      const r = { cold, reread, warm };
      results.set(v.name, [...(results.get(v.name) ?? []), r]);
      const f = (x: Rate) => `${x.mbps.toFixed(0)} MB/s ${x.cpu.toFixed(2)} CPU-s/GiB`;
      console.error(`round ${round + 1} ${v.name}: cold ${f(cold)} | re-read ${f(reread)} | warm ${f(warm)}`);
    }
  }
} finally {
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const first = results.get(variants[0]?.name as string) ?? [];
const cell = (rs: { cold: Rate; reread: Rate; warm: Rate }[], k: 'cold' | 'reread' | 'warm') => {
  const v = median(rs.map((r) => r[k].mbps));
  const ratio = v / median(first.map((r) => r[k].mbps));
  return `${v.toFixed(0)} MB/s (${ratio.toFixed(2)}×), ${median(rs.map((r) => r[k].cpu)).toFixed(2)} CPU-s/GiB`;
};
console.log(
  `\n${values['size-mib']} MiB, ${rounds} round(s), medians; ratios against the first variant; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}\n`,
);
console.log('| variant | cold (S3) | re-read, same mount | warm after remount |\n|---|---:|---:|---:|');
for (const v of variants) {
  const rs = results.get(v.name) ?? [];
  console.log(`| \`${v.name}\` | ${cell(rs, 'cold')} | ${cell(rs, 'reread')} | ${cell(rs, 'warm')} |`);
}
