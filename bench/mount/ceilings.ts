/**
 * Data-path ceilings, side by side in one run (issue 5, benchmark (b) plus the data path):
 *
 *   raw ranged GETs, undici     8 concurrent 8 MiB ranges, body discarded — the leanest client
 *   raw ranged GETs, SDK        the same through @aws-sdk/client-s3 GetObject
 *   raw ranged GETs, socket     the same through the data path's default transport (transport-socket.ts):
 *                               each body read by the kernel straight into a reused 8 MiB buffer
 *   DataPath cold sequential    128 KiB reads (what FUSE sends) on an empty cache, socket (default),
 *                               undici and SDK transports
 *   DataPath warm (memory)      re-read through the same DataPath (hot-block LRU)
 *   DataPath warm (disk)        a new DataPath on the same cache dir (a remount), no memory tier
 *   DataPath warm random 4 KiB  random preads over the cached object, memory tier and disk-only
 *
 * Usage: npx tsx bench/mount/ceilings.ts [--size-mib 512] [--runs 3]
 * The S3 server (fauxqs) runs in a child process. Prints a markdown table; each figure is the median
 * of --runs runs. `measureDataPathCeilings()` is exported for bench/mount's combined run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import type { ObjectVersion } from '../../mount-client/block-cache/types.ts';
import { createDataPath, type DataPath } from '../../mount-client/object-client/data-path.ts';
import { createSocketTransport } from '../../mount-client/object-client/transport-socket.ts';
import { UrlSigner } from '../../mount-client/object-client/url-signer.ts';

const MiB = 1024 * 1024;
const RANGE = 8 * MiB;
const CONCURRENCY = 8;

export interface CeilingRow {
  name: string;
  /** MB/s (10^6 bytes) for throughput rows, ops/s for the random rows. */
  value: number;
  unit: 'MB/s' | 'ops/s';
  /** Ratio to the raw undici ranged-GET ceiling (throughput rows only). */
  vsRaw?: number;
  /**
   * Client CPU seconds (user + system, all threads of this process) per GiB moved. On a loaded
   * machine throughput ratios mostly measure contention; CPU per GiB is what the client costs.
   */
  cpuSecPerGiB?: number;
}

async function startServer(): Promise<{ endpoint: string; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 's3-server.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line) resolve((JSON.parse(line) as { endpoint: string }).endpoint);
    });
    child.once('exit', (code) => reject(new Error(`s3-server exited with ${code}`)));
  });
  return { endpoint, stop: () => child.stdin.end() };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

let lastCpuPerGiB = 0;

async function timed(fn: () => Promise<number>): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const bytes = await fn();
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  lastCpuPerGiB = (c.user + c.system) / 1e6 / (bytes / 1024 ** 3);
  return bytes / 1e6 / secs;
}

/** Runs `work` over every range with `CONCURRENCY` workers. */
async function overRanges(
  size: number,
  work: (start: number, len: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const start = next;
      next += RANGE;
      if (start >= size) return;
      await work(start, Math.min(RANGE, size - start));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return size;
}

async function sequential(dp: DataPath, v: ObjectVersion, chunk = 128 * 1024): Promise<number> {
  const r = dp.open(v);
  let n = 0;
  for (let off = 0; off < v.size; off += chunk) n += (await r.read(off, chunk)).length;
  r.close();
  return n;
}

async function randomOps(dp: DataPath, v: ObjectVersion, ops: number): Promise<number> {
  const r = dp.open(v);
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    const off = Math.floor(Math.random() * (v.size - 4096));
    await r.read(off, 4096);
  }
  r.close();
  return ops / ((performance.now() - t0) / 1000);
}

export async function measureDataPathCeilings(o: { sizeMiB: number; runs: number }): Promise<CeilingRow[]> {
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const region = 'us-east-1';
  const server = await startServer();
  const dirs: string[] = [];
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'strata-bench-dp-'));
    dirs.push(d);
    return d;
  };
  const s3 = new S3Client({
    region,
    endpoint: server.endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
  try {
    const bucket = 'bench';
    const key = 'bench/large.bin';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const size = o.sizeMiB * MiB;
    await new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: randomBytes(size) },
      partSize: 8 * MiB /* fauxqs refuses bodies > 11 MiB */,
    }).done();
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    const v: ObjectVersion = { bucket, key, size, etag: String(head.ETag) };
    const agent = new Agent({ connections: CONCURRENCY });
    // fauxqs does not check signatures: a plain URL stands in for the presigned one.
    const socket = createSocketTransport({
      signer: new UrlSigner({
        presign: async () => ({
          url: `${server.endpoint}/${bucket}/${key}`,
          expiresAt: Date.now() + 3_600_000,
        }),
      }),
      connections: CONCURRENCY,
    });
    // One reused buffer per range in flight: the socket transport's equivalent of discarding the body.
    const sinks = Array.from({ length: CONCURRENCY }, () => Buffer.alloc(RANGE));

    const results = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    const record = (name: string, x: number) => {
      results.set(name, [...(results.get(name) ?? []), x]);
      if (!name.includes('random')) cpu.set(name, [...(cpu.get(name) ?? []), lastCpuPerGiB]);
    };
    const dpOpts = {
      cacheSizeBytes: 4 * size,
      region,
      endpoint: server.endpoint,
      minFreeBytes: 0,
      metrics: new Registry(),
    };
    for (let run = 0; run < o.runs; run++) {
      record(
        'raw ranged GETs, undici (8 × 8 MiB)',
        await timed(() =>
          overRanges(size, async (start, len) => {
            const res = await agent.request({
              origin: server.endpoint,
              path: `/${bucket}/${key}`,
              method: 'GET',
              headers: { range: `bytes=${start}-${start + len - 1}` },
            });
            for await (const _ of res.body) {
              // discard: the ceiling is the transfer itself
            }
          }),
        ),
      );
      record(
        'raw ranged GETs, SDK GetObject (8 × 8 MiB)',
        await timed(() =>
          overRanges(size, async (start, len) => {
            const res = await s3.send(
              new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${start + len - 1}` }),
            );
            for await (const _ of res.Body as AsyncIterable<Uint8Array>) {
              // discard
            }
          }),
        ),
      );
      let sink = 0;
      record(
        'raw ranged GETs, socket transport (8 × 8 MiB, into reused buffers)',
        await timed(() =>
          overRanges(size, async (start, len) => {
            const into = sinks[sink++ % CONCURRENCY] as Buffer;
            await socket.get({ object: v, start, length: len, alloc: (n) => into.subarray(0, n) });
          }),
        ),
      );
      for (const transport of ['socket', 'undici', 'sdk'] as const) {
        const cacheDir = newDir();
        const dp = await createDataPath({ ...dpOpts, cacheDir, transport });
        record(`DataPath cold sequential (${transport})`, await timed(() => sequential(dp, v)));
        const coldDisk = dp.stats().disk;
        if (transport === 'socket') {
          record('DataPath warm sequential (memory tier)', await timed(() => sequential(dp, v)));
          record('DataPath warm random 4 KiB (memory tier)', await randomOps(dp, v, 20_000));
        }
        await dp.close();
        if (transport === 'socket') {
          // A remount: memory tier empty, every block comes off disk once (verified), then from memory.
          const dp2 = await createDataPath({ ...dpOpts, cacheDir });
          record(
            'DataPath warm sequential (disk tier, after restart)',
            await timed(() => sequential(dp2, v)),
          );
          // A block is refetched after the restart only if the cold read skipped caching it: the disk
          // fell a whole write backlog behind (a loaded machine; data-path.ts `writeBacklogBytes`).
          if (dp2.stats().s3.gets > coldDisk.writesSkipped) {
            throw new Error(
              `warm run made ${dp2.stats().s3.gets} S3 GETs: the cache did not survive restart (cold run: ${JSON.stringify(coldDisk)})`,
            );
          }
          await dp2.close();
          // Working set larger than memory: every random read is a disk-tier block load.
          const dp3 = await createDataPath({ ...dpOpts, cacheDir, memoryCacheBytes: 0 });
          record('DataPath warm random 4 KiB (disk tier only, no memory tier)', await randomOps(dp3, v, 500));
          await dp3.close();
        }
        rmSync(cacheDir, { recursive: true, force: true });
      }
    }
    await agent.close();
    await socket.close();
    const raw = median(results.get('raw ranged GETs, undici (8 × 8 MiB)') ?? [1]);
    return [...results].map(([name, xs]) => {
      const value = median(xs);
      const unit = name.includes('random') ? ('ops/s' as const) : ('MB/s' as const);
      return {
        name,
        value,
        unit,
        ...(unit === 'MB/s' ? { vsRaw: value / raw, cpuSecPerGiB: median(cpu.get(name) ?? [0]) } : {}),
      };
    });
  } finally {
    s3.destroy();
    server.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

export function ceilingTable(rows: CeilingRow[]): string {
  const lines = ['| measurement | result | vs raw undici GETs | client CPU s/GiB |', '|---|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${r.value.toFixed(r.unit === 'ops/s' ? 0 : 1)} ${r.unit} | ${r.vsRaw === undefined ? '—' : `${r.vsRaw.toFixed(2)}×`} | ${r.cpuSecPerGiB === undefined ? '—' : r.cpuSecPerGiB.toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { 'size-mib': { type: 'string', default: '512' }, runs: { type: 'string', default: '3' } },
  });
  const sizeMiB = Number(values['size-mib']);
  const runs = Number(values.runs);
  const rows = await measureDataPathCeilings({ sizeMiB, runs });
  // The load average goes into the header: on a shared machine it explains the throughput ratios.
  process.stdout.write(
    `object ${sizeMiB} MiB, block 8 MiB, median of ${runs} run(s), load average ${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} cores\n\n${ceilingTable(rows)}\n`,
  );
}
