/**
 * Mount benchmark, side by side in one run (issue 5):
 *
 *   (a) FUSE ceiling      a minimal fuse-native filesystem serving one file from memory
 *   (b) raw ranged GETs   from bench/mount/ceilings.ts (8 concurrent 8 MiB ranges, same S3 emulator kind)
 *   (c) page cache        `cat` of the same bytes from a local file already in the page cache
 *   Strata                cold (empty cache), warm (remount: disk cache, no S3), re-read (same mount),
 *                         4 concurrent readers warm, warm random 4 KiB preads/s,
 *                         `find` and `ls -lR` over a 10,000-file tree, cold and warm
 *
 * Usage: npx tsx bench/mount/fs.ts [--size-mib 128] [--full] [--no-ceilings]
 * (--full = 1 GiB). Run as root on a machine with /dev/fuse, libfuse2 and fuse3. Prints a markdown
 * table; ratios are against (a) for warm reads and (b) for cold reads.
 */
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import Fuse from 'fuse-native';
import { startBackend } from '../../test/fuse/support/backend.ts';
import { startMount } from '../../test/fuse/support/mount-process.ts';

const sh = promisify(exec);
const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: { 'size-mib': { type: 'string' }, full: { type: 'boolean' }, 'no-ceilings': { type: 'boolean' } },
});
const sizeMiB = values.full ? 1024 : Number(values['size-mib'] ?? 128);
const bytes = sizeMiB * MiB;

async function timed(cmd: string): Promise<number> {
  const t = process.hrtime.bigint();
  await sh(cmd, { maxBuffer: 64 * MiB });
  return Number(process.hrtime.bigint() - t) / 1e9;
}
const mbps = (n: number, s: number) => n / 1e6 / s;

/** (a): the smallest useful fuse-native filesystem — one file served straight from a Buffer. */
async function fuseCeiling(dir: string, data: Buffer): Promise<number> {
  const mnt = join(dir, 'ceiling');
  mkdirSync(mnt);
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
    return mbps(data.length, await timed(`cat ${mnt}/f > /dev/null`));
  } finally {
    await new Promise<void>((r) => fuse.unmount(() => r()));
  }
}

type Row = [string, string, string];
const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'strata-bench-mount-'));
const data = randomBytes(bytes);

try {
  // Ceilings first, each in isolation.
  let raw: number | undefined;
  if (!values['no-ceilings']) {
    const { measureDataPathCeilings } = await import('./ceilings.ts');
    const c = await measureDataPathCeilings({ sizeMiB: Math.min(sizeMiB, 256), runs: 1 });
    raw = c.find((r) => r.name.startsWith('raw ranged GETs, undici'))?.value;
  }
  const ceiling = await fuseCeiling(dir, data);
  const local = join(dir, 'local.bin');
  writeFileSync(local, data);
  await timed(`cat ${local} > /dev/null`);
  const pageCache = mbps(bytes, await timed(`cat ${local} > /dev/null`));
  rows.push([
    '(a) FUSE ceiling: minimal fuse-native FS from memory',
    `${ceiling.toFixed(0)} MB/s`,
    '1.00× (a)',
  ]);
  if (raw)
    rows.push(['(b) raw ranged GETs, 8 × 8 MiB concurrent (undici)', `${raw.toFixed(0)} MB/s`, '1.00× (b)']);
  rows.push([
    '(c) page-cache read (cat of a cached local file)',
    `${pageCache.toFixed(0)} MB/s`,
    `${(pageCache / ceiling).toFixed(2)}× (a)`,
  ]);

  const backend = await startBackend();
  try {
    await backend.put('/big.bin', data);
    for (let i = 0; i < 10_000; i++) {
      backend.index.put(`/tree/d${String(i % 100).padStart(3, '0')}/f${i}.dat`, { size: i, etag: `t${i}` });
    }
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const cache = join(dir, 'cache');
    const vsRaw = (v: number) => (raw ? `${(v / raw).toFixed(2)}× (b)` : 'n/a');
    const vsFuse = (v: number) => `${(v / ceiling).toFixed(2)}× (a)`;

    // Cold: empty cache, every block from S3 (block size 8 MiB, the default).
    let m = await startMount(backend, mnt, cache, [
      '--block-size',
      '8M',
      '--cache-size',
      `${2 * sizeMiB + 256}M`,
    ]);
    const cold = mbps(bytes, await timed(`cat ${mnt}/big.bin > /dev/null`));
    rows.push([
      `Strata cold sequential read, ${sizeMiB} MiB (1 reader)`,
      `${cold.toFixed(0)} MB/s`,
      vsRaw(cold),
    ]);
    const reread = mbps(bytes, await timed(`cat ${mnt}/big.bin > /dev/null`));
    rows.push([
      'Strata re-read, same mount (memory + disk tiers)',
      `${reread.toFixed(0)} MB/s`,
      vsFuse(reread),
    ]);
    const findCold = await timed(`find ${mnt}/tree -type f | wc -l`);
    const findWarm = await timed(`find ${mnt}/tree -type f | wc -l`);
    await m.stop();

    // Warm: a remount on the same cache dir — disk tier only, 0 S3 GETs.
    m = await startMount(backend, mnt, cache, [
      '--block-size',
      '8M',
      '--cache-size',
      `${2 * sizeMiB + 256}M`,
    ]);
    const warm = mbps(bytes, await timed(`cat ${mnt}/big.bin > /dev/null`));
    const gets = (await m.stats()).dataPath.s3.gets;
    rows.push([
      `Strata warm read after remount (disk cache, ${gets} S3 GETs)`,
      `${warm.toFixed(0)} MB/s`,
      vsFuse(warm),
    ]);
    const four = mbps(
      4 * bytes,
      await timed(`for i in 1 2 3 4; do cat ${mnt}/big.bin > /dev/null & done; wait`),
    );
    rows.push(['Strata warm, 4 concurrent readers (aggregate)', `${four.toFixed(0)} MB/s`, vsFuse(four)]);
    const script = `import os,random,time
fd=os.open('${mnt}/big.bin',os.O_RDONLY); n=0; end=time.time()+3; size=${bytes}
while time.time()<end:
  os.pread(fd,4096,random.randrange(0,size-4096)//4096*4096); n+=1
print(n/3)`;
    const { stdout } = await sh(`python3 -c "${script.replace(/"/g, '\\"')}"`);
    rows.push(['Strata warm random 4 KiB preads (1 thread)', `${Number(stdout).toFixed(0)} ops/s`, '']);
    const lsCold = await timed(`ls -lR ${mnt}/tree | wc -l`);
    const lsWarm = await timed(`ls -lR ${mnt}/tree | wc -l`);
    await m.stop();
    rows.push([
      '`find` over 10,000 files in 100 dirs, cold (fresh mount)',
      `${findCold.toFixed(2)} s`,
      'target < 2 s',
    ]);
    rows.push([
      '`find` over 10,000 files, warm (cached listings)',
      `${findWarm.toFixed(2)} s`,
      'target < 0.3 s',
    ]);
    rows.push(['`ls -lR` over 10,000 files, cold (fresh mount)', `${lsCold.toFixed(2)} s`, '']);
    rows.push(['`ls -lR` over 10,000 files, warm', `${lsWarm.toFixed(2)} s`, '']);
  } finally {
    await backend.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\n| measurement | result | ratio |\n|---|---:|---:|`);
for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
