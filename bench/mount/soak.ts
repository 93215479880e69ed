/**
 * Mount soak (issue 5, long-running mounts): a real local stack and a real `strata mount` under a
 * mixed workload for several minutes, sampling every 10 s what could grow with the number of
 * operations. Anything that keeps growing while the working set stays the same is a leak.
 *
 * Tree: ~300 files of varied sizes (0 B … 40 MiB) under /soak/dNN/, a 5,000-entry directory
 * (/soak/big, index entries only: listed and stat'ed, never read) and a churn directory.
 * Workload (3 workers, seeded PRNG, async fs calls from this process — the mount is a child
 * process): open/read/close (sequential whole-file reads checked by sha256, random preads checked
 * against the bytes of one version per handle), readdir + stat of small dirs and the big one,
 * lookups of distinct missing names (in the big dir they become negative entries), /.by-date/,
 * getxattr. Producer: overwrites, deletes and adds files through S3 (events → indexer), and after
 * each overwrite checks that the mount serves the new bytes within the change poller's bound.
 *
 * Samples: the mount's RSS and open fds (/proc), V8 heap and map sizes (/stats), cache dir size
 * (du) against --cache-size. Prints a markdown table and a summary (errors by code, stale reads,
 * mismatched bytes).
 *
 * Usage: flock /tmp/strata-bench.lock npx tsx bench/mount/soak.ts [--minutes 8] [--cache-size 128M]
 *        [--mount-args "..."]
 */
import { exec, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { keyForPath } from '../../functions/core/paths.ts';
import { seededRandom } from '../../mount-client/object-client/faults.ts';
import { type Backend, BUCKET, DATA_PREFIX, startBackend } from '../../test/fuse/support/backend.ts';
import { type MountProcess, startMount } from '../../test/fuse/support/mount-process.ts';
import { processCpuSeconds } from '../compare/measure.ts';

const sh = promisify(exec);
const run = promisify(execFile);
const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '8' },
    'sample-seconds': { type: 'string', default: '10' },
    'cache-size': { type: 'string', default: '128M' },
    'mount-args': { type: 'string', default: '' },
    seed: { type: 'string', default: '5' },
    /** The report also goes here: the in-process stack's Lambda handlers log to stdout. */
    out: { type: 'string', default: join(tmpdir(), 'strata-mount-soak.md') },
  },
});
const minutes = Number(values.minutes);
const sampleMs = Number(values['sample-seconds']) * 1000;

const rand = seededRandom(Number(values.seed));
const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)] as T;

/** Deterministic bytes for (path, version): cheap to make, different per version. */
function bytesFor(path: string, version: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let seed = createHash('sha256').update(`${path}#${version}`).digest();
  for (let off = 0; off < size; off += 32) {
    seed.copy(b, off, 0, Math.min(32, size - off));
    if ((off & 0xffff) === 0) seed = createHash('sha256').update(seed).digest();
    else seed[off % 32] = (seed[off % 32] as number) ^ (off & 0xff);
  }
  return b;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Version {
  bytes: Buffer;
  sha: string;
}
/** path → every version written (a read must match exactly one of them, the same for a whole handle). */
const versions = new Map<string, Version[]>();
const live = new Set<string>();
const stats = {
  opens: 0,
  seqReads: 0,
  preads: 0,
  bytes: 0,
  readdirs: 0,
  stats: 0,
  missing: 0,
  byDate: 0,
  xattrs: 0,
  produced: 0,
  staleChecks: 0,
  staleReads: 0,
  mismatches: 0,
  errors: {} as Record<string, number>,
};
const mismatchDetails: string[] = [];
const countError = (code: string) => {
  stats.errors[code] = (stats.errors[code] ?? 0) + 1;
};

function sizes(): number[] {
  // 0 B … 40 MiB: edge sizes around the 1 MiB block, small files, a few large ones.
  const edge = [0, 1, 100, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1];
  const out: number[] = [];
  for (let i = 0; i < 300; i++) {
    if (i < edge.length) out.push(edge[i] as number);
    else if (i % 60 === 0) out.push([8, 16, 24, 40, 40][(i / 60) % 5]! * MiB);
    else if (i % 10 === 0) out.push(Math.floor(rand() * 4 * MiB));
    else out.push(Math.floor(rand() * 256 * 1024));
  }
  return out;
}

async function setup(b: Backend): Promise<string[]> {
  const files: Array<{ path: string; bytes: Buffer; date?: string }> = [];
  sizes().forEach((size, i) => {
    const path = `/soak/d${String(i % 20).padStart(2, '0')}/f${i}.bin`;
    const bytes = bytesFor(path, 0, size);
    files.push({ path, bytes, date: `2026-01-0${(i % 5) + 1}` });
    versions.set(path, [{ bytes, sha: sha(bytes) }]);
    live.add(path);
  });
  for (const f of files.filter((x) => x.bytes.length > 8 * MiB)) await b.put(f.path, f.bytes, f.date);
  await b.putMany(files.filter((x) => x.bytes.length <= 8 * MiB));
  await b.indexOnly(
    Array.from({ length: 5000 }, (_, i) => ({
      path: `/soak/big/e${String(i).padStart(5, '0')}`,
      size: 100,
      etag: `e${i}`,
    })),
  );
  return files.map((f) => f.path);
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).name;
}

/** Whole-file sequential read, 1 MiB at a time; the bytes must be one version of the file. */
async function seqRead(mnt: string, path: string): Promise<void> {
  const fh = await open(join(mnt, path), 'r');
  stats.opens++;
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(MiB);
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      stats.bytes += bytesRead;
    }
    stats.seqReads++;
    const got = h.digest('hex');
    const list = versions.get(path) ?? [];
    if (!list.some((v) => v.sha === got)) {
      stats.mismatches++;
      mismatchDetails.push(
        `${path}: whole-file read of ${(await fh.stat()).size} bytes (fstat) matched none of ${list.length} versions (sizes ${list.map((v) => v.bytes.length).join(', ')})`,
      );
    }
  } finally {
    await fh.close();
  }
}

/** Random preads on one handle: every slice must come from one and the same version. */
async function preads(mnt: string, path: string): Promise<void> {
  const fh = await open(join(mnt, path), 'r');
  stats.opens++;
  try {
    const size = (await fh.stat()).size;
    let candidates = (versions.get(path) ?? []).filter((v) => v.bytes.length === size);
    for (let i = 0; i < 12 && size > 0; i++) {
      const off = Math.floor(rand() * size);
      const len = Math.min(size - off, 4096 + Math.floor(rand() * 256 * 1024));
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, off);
      stats.preads++;
      stats.bytes += bytesRead;
      const got = buf.subarray(0, bytesRead);
      candidates = candidates.filter((v) => v.bytes.subarray(off, off + bytesRead).equals(got));
    }
    if (candidates.length === 0) {
      stats.mismatches++;
      mismatchDetails.push(`${path}: preads of a ${size}-byte handle matched no single version`);
    }
  } finally {
    await fh.close();
  }
}

async function worker(mnt: string, id: number, until: number): Promise<void> {
  let missingSeq = 0;
  while (Date.now() < until) {
    const r = rand();
    const files = [...live];
    try {
      if (r < 0.3) {
        // Mostly small files; a large one a tenth of the time.
        const big = files.filter((p) => (versions.get(p)?.at(-1)?.bytes.length ?? 0) > 4 * MiB);
        await seqRead(mnt, rand() < 0.1 && big.length ? pick(big) : pick(files));
      } else if (r < 0.55) {
        await preads(mnt, pick(files));
      } else if (r < 0.67) {
        const dir = join(mnt, `/soak/d${String(Math.floor(rand() * 20)).padStart(2, '0')}`);
        const names = await readdir(dir);
        stats.readdirs++;
        await Promise.all(names.map((n) => stat(join(dir, n)).then(() => stats.stats++)));
      } else if (r < 0.7) {
        const dir = join(mnt, '/soak/big');
        const names = await readdir(dir);
        stats.readdirs++;
        for (let i = 0; i < names.length; i += 250) {
          await Promise.all(names.slice(i, i + 250).map((n) => stat(join(dir, n)).then(() => stats.stats++)));
        }
      } else if (r < 0.85) {
        // Distinct missing names: in the big (unlisted, multi-page) dir each is a negative entry.
        for (let i = 0; i < 20; i++) {
          const where = i % 2 ? '/soak/big' : `/soak/d0${i % 10}`;
          await stat(join(mnt, where, `missing-${id}-${missingSeq++}`)).then(
            () => countError('missing-found'),
            (err) => {
              if (errCode(err) !== 'ENOENT') throw err;
              stats.missing++;
            },
          );
        }
      } else if (r < 0.93) {
        const dates = await readdir(join(mnt, '.by-date'));
        const day = join(mnt, '.by-date', pick(dates));
        for (const d of await readdir(join(day, 'soak'))) await readdir(join(day, 'soak', d));
        stats.byDate++;
      } else {
        const { stdout } = await run('python3', [
          '-c',
          'import os,sys; print(os.getxattr(sys.argv[1], "user.strata.etag").decode())',
          join(mnt, pick(files)),
        ]);
        if (!stdout.trim()) countError('xattr-empty');
        stats.xattrs++;
      }
    } catch (err) {
      // A file deleted (ENOENT) or overwritten (ESTALE) under a reader is an expected answer.
      countError(errCode(err));
    }
  }
}

async function producer(b: Backend, mnt: string, until: number): Promise<void> {
  let n = 0;
  const churn: string[] = [];
  while (Date.now() < until - 5000) {
    const r = rand();
    n++;
    if (r < 0.55) {
      // Overwrite a small file (≤ 256 KiB, so every version's bytes can be kept for checks).
      const path = pick(
        [...live].filter((p) => (versions.get(p)?.at(-1)?.bytes.length ?? MiB) <= 256 * 1024),
      );
      const list = versions.get(path) as Version[];
      const bytes = bytesFor(path, list.length, Math.floor(rand() * 256 * 1024));
      list.push({ bytes, sha: sha(bytes) });
      await b.put(path, bytes);
      stats.produced++;
      // The change poller (~1 s) plus the kernel's attribute timeout (1 s): 4 s is the bound here.
      await new Promise((r) => setTimeout(r, 4000));
      stats.staleChecks++;
      try {
        const fh = await open(join(mnt, path), 'r');
        try {
          const got = await fh.readFile();
          const latest = list.at(-1) as Version;
          if (sha(got) !== latest.sha) stats.staleReads++;
        } finally {
          await fh.close();
        }
      } catch (err) {
        countError(`stale-check-${errCode(err)}`);
      }
    } else if (r < 0.75 && churn.length > 0) {
      const path = churn.shift() as string;
      live.delete(path);
      await b.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keyForPath(DATA_PREFIX, path) }));
      await b.stack.drain();
      stats.produced++;
    } else {
      const path = `/soak/churn/c${n}.bin`;
      const bytes = bytesFor(path, 0, Math.floor(rand() * 128 * 1024));
      versions.set(path, [{ bytes, sha: sha(bytes) }]);
      await b.put(path, bytes, '2026-01-06');
      live.add(path);
      churn.push(path);
      stats.produced++;
    }
  }
}

interface Sample {
  t: number;
  ops: number;
  /** The mount process's CPU seconds (user + system) since it started. */
  cpuS: number;
  rssMiB: number;
  heapMiB: number;
  extMiB: number;
  fds: number;
  open: number;
  entries: number;
  negative: number;
  listings: number;
  fresh: number;
  inflight: string;
  prefetchMiB: number;
  pool: string;
  memMiB: number;
  diskMiB: number;
  duMiB: number;
}

/** The /stats fields sampled here (mount.ts serveMetrics). */
interface SoakStats {
  process: { heapUsedBytes: number; externalBytes: number };
  openFiles: number;
  metadata: { entries: number; negative: number; listings: number; freshAfter: number; inflight: number };
  dataPath: {
    inflight: { flights: number; pendingWrites: number };
    prefetch: { inflightBytes: number };
    pool: { allocated: number; idle: number };
    memory: { heldBytes: number };
    disk: { bytes: number };
  };
}

async function sample(m: MountProcess, cacheDir: string, t0: number): Promise<Sample> {
  const pid = m.child.pid as number;
  const s = (await m.stats()) as unknown as SoakStats;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const du = Number((await sh(`du -sb ${cacheDir}`)).stdout.split('\t')[0]);
  const md = s.metadata;
  const dp = s.dataPath;
  return {
    t: Math.round((Date.now() - t0) / 1000),
    ops: stats.opens + stats.readdirs + stats.missing + stats.byDate + stats.xattrs,
    cpuS: processCpuSeconds(pid),
    rssMiB: rss / MiB,
    heapMiB: s.process.heapUsedBytes / MiB,
    extMiB: s.process.externalBytes / MiB,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    open: s.openFiles,
    entries: md.entries,
    negative: md.negative,
    listings: md.listings,
    fresh: md.freshAfter,
    inflight: `${md.inflight}/${dp.inflight.flights}/${dp.inflight.pendingWrites}`,
    prefetchMiB: dp.prefetch.inflightBytes / MiB,
    pool: `${dp.pool.allocated}/${dp.pool.idle}`,
    memMiB: dp.memory.heldBytes / MiB,
    diskMiB: dp.disk.bytes / MiB,
    duMiB: du / MiB,
  };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'strata-soak-'));
  const mnt = join(root, 'mnt');
  const cacheDir = join(root, 'cache');
  mkdirSync(mnt);
  const backend = await startBackend();
  let mount: MountProcess | undefined;
  try {
    const t = Date.now();
    await setup(backend);
    process.stderr.write(`tree ready in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
    const extra = values['mount-args'] ? values['mount-args'].split(' ').filter(Boolean) : [];
    mount = await startMount(backend, mnt, cacheDir, [
      '--cache-size',
      values['cache-size'] as string,
      ...extra,
    ]);
    const t0 = Date.now();
    const until = t0 + minutes * 60_000;
    const samples: Sample[] = [await sample(mount, cacheDir, t0)];
    const m = mount;
    const sampler = setInterval(() => {
      void sample(m, cacheDir, t0).then(
        (s) => {
          samples.push(s);
          process.stderr.write(`${JSON.stringify(s)}\n`);
        },
        (err) => process.stderr.write(`sample failed: ${err}\n`),
      );
    }, sampleMs);
    await Promise.all([
      worker(mnt, 1, until),
      worker(mnt, 2, until),
      worker(mnt, 3, until),
      producer(backend, mnt, until),
    ]);
    clearInterval(sampler);
    // Idle: in-flight maps must drain and open files return to 0.
    await new Promise((r) => setTimeout(r, 3000));
    samples.push(await sample(mount, cacheDir, t0));
    const errLines = mount.log.filter((l) => /"level":"(error|warn)"/.test(l));
    print(samples, errLines);
    const code = await mount.stop();
    if (code !== 0) process.stderr.write(`mount exited with ${code}\n`);
  } finally {
    await mount?.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

function print(samples: Sample[], errLines: string[]): void {
  const lines: string[] = [];
  const log = (l: string) => lines.push(l);
  const cols = Object.keys(samples[0] as Sample) as (keyof Sample)[];
  const fmt = (v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v));
  log(`| ${cols.join(' | ')} |`);
  log(`|${cols.map(() => '---:').join('|')}|`);
  for (const s of samples) log(`| ${cols.map((c) => fmt(s[c])).join(' | ')} |`);
  log('');
  log(
    `- load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  log(
    `- operations: ${stats.opens} opens (${stats.seqReads} whole-file reads, ${stats.preads} preads), ${(stats.bytes / MiB).toFixed(0)} MiB read, ${stats.readdirs} readdirs, ${stats.stats} stats, ${stats.missing} missing lookups, ${stats.byDate} by-date walks, ${stats.xattrs} getxattr`,
  );
  log(
    `- producer: ${stats.produced} changes; stale reads ${stats.staleReads} of ${stats.staleChecks} checks; mismatched bytes ${stats.mismatches}`,
  );
  for (const d of mismatchDetails.slice(0, 5)) log(`  - ${d}`);
  log(`- errors seen by the workload: ${JSON.stringify(stats.errors)}`);
  log(`- mount warn/error log lines: ${errLines.length}`);
  for (const l of errLines.slice(0, 5)) log(`  - \`${l.slice(0, 300)}\``);
  const text = `${lines.join('\n')}\n`;
  writeFileSync(values.out as string, text);
  process.stderr.write(`\n${text}\nreport written to ${values.out}\n`);
}

await main();
