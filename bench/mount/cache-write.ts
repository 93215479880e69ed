/**
 * What a disk-cache block write costs the mount, buffered (through the page cache) against
 * O_DIRECT (the kernel DMAs from the block buffer; no page-cache copy), side by side in one run:
 * first as raw syscalls, then through DiskBlockStore.put itself (format v3, pool blocks from a
 * slab as the data path hands them over, `directIo: false` vs the default O_DIRECT).
 *
 *   npx tsx bench/mount/cache-write.ts [--size-mib 256] [--runs 3] [--dir <dir on the cache disk>]
 *
 * Why: the cold-read profile (docs/benchmarks/mount-data.md) puts the disk-cache write on the
 * libuv pool at 0.1–1.5 CPU-s/GiB of system time depending on the page-cache state, and the peers
 * engineer measured ~3.3 sys CPU-s/GiB for page-cache writes of fresh files. Every cold block is a
 * new file, so a mount that fills its cache keeps asking the kernel for fresh page-cache pages.
 * Each run writes `size` bytes as 8 MiB files (open, one write, close — the disk cache's pattern)
 * from one pre-touched buffer; files are kept until the end so the page cache grows as in a real
 * cache fill. The O_DIRECT buffer is found aligned by probing (a misaligned O_DIRECT write is
 * EINVAL): JS cannot see addresses. CPU is this process's user+system per GiB written (the
 * store's writes run on the libuv pool, in this process); writeback done later by kernel threads
 * is NOT in the buffered figure (so buffered is flattered).
 */
import { constants as C, closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BlockPool } from '../../mount-client/block-cache/block-pool.ts';
import { DiskBlockStore } from '../../mount-client/block-cache/disk-cache.ts';
import type { BlockId } from '../../mount-client/block-cache/types.ts';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string' },
    runs: { type: 'string' },
    dir: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('usage: npx tsx bench/mount/cache-write.ts [--size-mib 256] [--runs 3] [--dir <dir>]');
  process.exit(0);
}
const BS = 8 * MiB;
const sizeMiB = Number(values['size-mib'] ?? 256);
const runs = Number(values.runs ?? 3);
const files = Math.max(1, Math.floor((sizeMiB * MiB) / BS));
const dir = mkdtempSync(join(values.dir ?? tmpdir(), 'strata-cache-write-'));

/** Offset into `ab` at which an O_DIRECT write of 4 KiB succeeds (device alignment), or -1. */
function alignedOffset(ab: ArrayBuffer): number {
  const probe = join(dir, 'probe');
  for (let off = 0; off < 8192; off += 16) {
    let fd: number;
    try {
      fd = openSync(probe, C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_DIRECT);
    } catch (err) {
      throw new Error(`O_DIRECT is not supported in ${dir}: pass --dir on an ext4/xfs cache disk`, {
        cause: err,
      });
    }
    try {
      writeSync(fd, Buffer.from(ab, off, 4096), 0, 4096, 0);
      return off;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    } finally {
      closeSync(fd);
    }
  }
  return -1;
}

const slab = new ArrayBuffer(BS + 8192);
const off = alignedOffset(slab);
if (off < 0) throw new Error('no O_DIRECT-aligned offset found within 8 KiB of the buffer');
const block = Buffer.from(slab, off, BS).fill(0x5a); // touched: page faults are not what we measure

interface Row {
  mbps: number;
  user: number;
  sys: number;
}
function run(name: string, flags: number, r: number): Row {
  const t0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  for (let i = 0; i < files; i++) {
    const fd = openSync(join(dir, `${name}-${r}-${i}`), C.O_WRONLY | C.O_CREAT | C.O_EXCL | flags);
    try {
      writeSync(fd, block, 0, BS, 0);
    } finally {
      closeSync(fd);
    }
  }
  const u = process.cpuUsage(t0);
  const secs = Number(process.hrtime.bigint() - w0) / 1e9;
  const gib = (files * BS) / 1024 ** 3;
  return { mbps: (files * BS) / secs / 1e6, user: u.user / 1e6 / gib, sys: u.system / 1e6 / gib };
}

/** `files` blocks through DiskBlockStore.put, from slab views (the data path's buffers). */
async function runStore(directIo: boolean, r: number): Promise<Row & { modes: string }> {
  const storeDir = join(dir, `store-${directIo ? 'direct' : 'buffered'}-${r}`);
  const store = await DiskBlockStore.open({ dir: storeDir, capacityBytes: 1e15, minFreeBytes: 0, directIo });
  // A slab of a mount's size (the memory tier's 256 MiB) holding every block of the run.
  const pool = new BlockPool(BS, 8, Math.max(256 * MiB, files * BS));
  const object = { bucket: 'bench', key: `cache-write/${r}`, size: files * BS, etag: `"${r}"` };
  const views: Buffer[] = [];
  for (let i = 0; i < files; i++) {
    const v = pool.acquire(BS);
    block.copy(v); // touched, as a fetched block is
    views.push(v);
  }
  const t0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  for (let i = 0; i < files; i++) {
    const id: BlockId = { object, index: i, blockSize: BS };
    await store.put(id, views[i] as Buffer);
  }
  const u = process.cpuUsage(t0);
  const secs = Number(process.hrtime.bigint() - w0) / 1e9;
  const gib = (files * BS) / 1024 ** 3;
  const m = store.stats().writeModes;
  await store.close();
  for (const v of views) pool.release(v);
  return {
    mbps: (files * BS) / secs / 1e6,
    user: u.user / 1e6 / gib,
    sys: u.system / 1e6 / gib,
    modes: `${m.direct} direct, ${m.staged} staged, ${m.buffered} buffered`,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const variants = [
  { name: 'raw write, buffered (page cache)', flags: 0, store: undefined, rows: [] as Row[] },
  { name: 'raw write, O_DIRECT', flags: C.O_DIRECT, store: undefined, rows: [] as Row[] },
  { name: 'DiskBlockStore.put, buffered (before)', flags: 0, store: false, rows: [] as Row[] },
  { name: '**DiskBlockStore.put, O_DIRECT (this tree)**', flags: 0, store: true, rows: [] as Row[] },
];
const modes = new Map<string, string>();
try {
  for (let r = 0; r < runs; r++) {
    for (const v of variants) {
      let row: Row;
      if (v.store === undefined) row = run(v.flags ? 'direct' : 'buffered', v.flags, r);
      else {
        const res = await runStore(v.store, r);
        modes.set(v.name, res.modes);
        row = res;
      }
      v.rows.push(row);
      console.error(
        `run ${r + 1} ${v.name}: ${row.mbps.toFixed(0)} MB/s, sys ${row.sys.toFixed(2)} CPU-s/GiB`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const base = variants[0] as (typeof variants)[0];
const baseCpu = median(base.rows.map((x) => x.user + x.sys));
console.log(`\n${files} × 8 MiB files per run, median of ${runs}, in ${values.dir ?? tmpdir()}\n`);
console.log('| write | MB/s | user CPU s/GiB | sys CPU s/GiB | CPU vs raw buffered | how (store) |');
console.log('|---|---:|---:|---:|---:|---|');
for (const v of variants) {
  const cpu = median(v.rows.map((x) => x.user + x.sys));
  console.log(
    `| ${v.name} | ${median(v.rows.map((x) => x.mbps)).toFixed(0)} | ${median(v.rows.map((x) => x.user)).toFixed(2)} | ${median(v.rows.map((x) => x.sys)).toFixed(2)} | ${(cpu / baseCpu).toFixed(2)}× | ${modes.get(v.name) ?? ''} |`,
  );
}
