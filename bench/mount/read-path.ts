/**
 * The FUSE read path without FUSE: the data path's per-read CPU cost for 128 KiB kernel-sized
 * reads copied into a caller's buffer, exactly as StrataFs.readInto drives it, with the kernel
 * and fuse-native taken out (so the figure is what the mount's JS costs per GiB, stable on a
 * loaded machine where MB/s through FUSE swing by 2×).
 *
 * The disk cache is filled directly (DiskBlockStore.put), so no S3 is involved; then a fresh data
 * path (a remount) streams the object twice: pass 1 = "warm after remount", pass 2 = "re-read".
 *
 * Usage: npx tsx bench/mount/read-path.ts [--size-mib 256] [--tree <checkout>] [--rounds 3]
 * `--tree` runs another checkout's data path (e.g. the previous commit via `git archive`, with
 * node_modules symlinked) in this process, for before/after comparisons run back to back.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string' }, tree: { type: 'string' }, rounds: { type: 'string' } },
});
const MiB = 1024 * 1024;
const size = Number(values['size-mib'] ?? 256) * MiB;
const rounds = Number(values.rounds ?? 3);
const tree = resolve(values.tree ?? join(import.meta.dirname, '../..'));
const { createDataPath } = await import(join(tree, 'mount-client/object-client/data-path.ts'));
const { DiskBlockStore } = await import(join(tree, 'mount-client/block-cache/disk-cache.ts'));

interface Reader {
  read(offset: number, length: number): Promise<Buffer>;
  readNow?(offset: number, length: number): Buffer | undefined;
  readNowInto?(offset: number, length: number, into: Buffer): number | undefined;
  close(): void;
}

let majorGcs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 4) majorGcs++;
}).observe({ entryTypes: ['gc'] });

const blockSize = 8 * MiB;
const data = randomBytes(size);
const object = { bucket: 'b', key: 'k/big.bin', size, etag: '"e1"' };
const results: { pass1: number[]; pass2: number[]; gc1: number[]; gc2: number[] } = {
  pass1: [],
  pass2: [],
  gc1: [],
  gc2: [],
};
for (let round = 0; round < rounds; round++) {
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-readpath-'));
  try {
    const disk = await DiskBlockStore.open({ dir, capacityBytes: 4 * size, minFreeBytes: 0 });
    for (let i = 0; i * blockSize < size; i++) {
      await disk.put({ object, index: i, blockSize }, data.subarray(i * blockSize, (i + 1) * blockSize));
    }
    await disk.close();
    const dp = await createDataPath({
      cacheDir: dir,
      cacheSizeBytes: 4 * size,
      minFreeBytes: 0,
      blockSize,
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9',
    });
    const into = Buffer.alloc(128 * 1024);
    const pass = async (): Promise<{ cpu: number; gcs: number }> => {
      const r = dp.open(object) as Reader;
      const g0 = majorGcs;
      const c0 = process.cpuUsage();
      for (let off = 0; off < size; off += into.length) {
        const n = Math.min(into.length, size - off);
        let got = r.readNowInto?.(off, n, into);
        if (got === undefined) {
          const now = r.readNow?.(off, n);
          got = now ? now.copy(into, 0, 0, n) : (await r.read(off, n)).copy(into, 0, 0, n);
        }
        if (got !== n) throw new Error(`short read at ${off}: ${got}`);
      }
      const c = process.cpuUsage(c0);
      r.close();
      // Correctness spot check: the last read's bytes.
      if (!into.subarray(0, 16).equals(data.subarray(size - into.length, size - into.length + 16))) {
        throw new Error('wrong bytes');
      }
      return {
        cpu: (c.user + c.system) / 1e6 / (size / 1024 ** 3),
        gcs: ((majorGcs - g0) * 1024 ** 3) / size,
      };
    };
    const p1 = await pass();
    const p2 = await pass();
    results.pass1.push(p1.cpu);
    results.pass2.push(p2.cpu);
    results.gc1.push(p1.gcs);
    results.gc2.push(p2.gcs);
    await dp.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(
  JSON.stringify({
    tree,
    sizeMiB: size / MiB,
    rounds,
    warmAfterRemountCpuSecPerGiB: +median(results.pass1).toFixed(3),
    rereadCpuSecPerGiB: +median(results.pass2).toFixed(3),
    warmAfterRemountMajorGcsPerGiB: +median(results.gc1).toFixed(1),
    rereadMajorGcsPerGiB: +median(results.gc2).toFixed(1),
  }),
);
