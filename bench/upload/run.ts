/**
 * Upload benchmark: `strata upload` (the Uploader behind the CLI: API sessions + presigned PUTs)
 * vs the raw AWS SDK (lib-storage Upload for the large file, PutObject per small file) at the same
 * concurrency against the same local S3 (fauxqs in the local stack), side by side in one run.
 *
 *   npx tsx bench/upload/run.ts [--big-mib 1024] [--files 10000] [--concurrency 16]
 *                               [--only small|big|both] [--stack separate|inprocess]
 *
 * Defaults are the sizes; pass smaller ones on a busy machine and say so.
 * - `--stack separate` (default) runs the local stack (`scripts/start.ts`) in its own process, so
 *   the API and S3 are remote services to both clients, as in production; `inprocess` shares this
 *   process (and its one JavaScript thread) between the stack and the clients, which charges the
 *   API's CPU to strata's side only.
 * - S3 event notifications are off so the indexer does not compete for CPU with the uploads.
 * - Both sides are warmed up first (one upload each), so the first request's module loading and
 *   connection setup — a Lambda cold start in production — is not counted.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { ApiClient } from '../../mount-client/api/client.ts';
import { scanArguments, scanDirectory } from '../../mount-client/upload/scan.ts';
import { Uploader } from '../../mount-client/upload/uploader.ts';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'big-mib': { type: 'string', default: '1024' },
    files: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '16' },
    only: { type: 'string', default: 'both' },
    stack: { type: 'string', default: 'separate' },
  },
});
const bigBytes = Number(values['big-mib']) * MiB;
const fileCount = Number(values.files);
const concurrency = Number(values.concurrency);
const runSmall = values.only !== 'big';
const runBig = values.only !== 'small';

interface Dev {
  apiUrl: string;
  token: string;
  s3Endpoint?: string;
  bucket: string;
  region: string;
}

/** Starts the local stack; returns its dev.json and a stop function. */
async function startLocalStack(
  stateDir: string,
): Promise<{ dev: Dev; stop: () => Promise<void>; pid?: number }> {
  if (values.stack === 'inprocess') {
    const { startStack } = await import('../../local/stack.ts');
    const stack = await startStack({
      stateDir,
      apiPort: 0,
      scheduleIntervalMs: 0,
      events: false,
      log: () => {},
    });
    return { dev: stack.dev, stop: () => stack.stop() };
  }
  // One node process (no npx/tsx wrapper), so its PID is the one to signal.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/start.ts',
      '--port',
      '0',
      '--events',
      'off',
      '--schedule',
      'off',
      '--state-dir',
      stateDir,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      return {
        dev: JSON.parse(await readFile(join(stateDir, 'dev.json'), 'utf8')) as Dev,
        stop,
        pid: child.pid,
      };
    } catch {}
    if (child.exitCode !== null) throw new Error(`the local stack exited with code ${child.exitCode}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error('the local stack did not write dev.json within 120 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const work = await mkdtemp(join(tmpdir(), 'strata-bench-upload-'));
// PostgreSQL runs as the postgres user when we are root: it must traverse the state directory.
await chmod(work, 0o755);
const { dev, stop, pid: stackPid } = await startLocalStack(join(work, 'stack'));
const api = new ApiClient({ apiUrl: dev.apiUrl, token: dev.token, connections: 8 });
const s3 = new S3Client({
  region: dev.region,
  endpoint: dev.s3Endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, // the emulator checks no signature
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});

/** CPU seconds (user + system) the stack process has used so far; undefined in-process. */
async function stackCpu(): Promise<number | undefined> {
  if (!stackPid) return undefined;
  // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks (100 Hz on Linux).
  const fields = (await readFile(`/proc/${stackPid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU milliseconds per unit of work spent by this process (the client) and by the stack. */
const cpu: string[] = [];
const time = async (label: string, units: number, fn: () => Promise<unknown>) => {
  const t = performance.now();
  const c0 = process.cpuUsage();
  const s0 = await stackCpu();
  await fn();
  const seconds = (performance.now() - t) / 1000;
  const c = process.cpuUsage(c0);
  const s1 = await stackCpu();
  const per = (ms: number) => (ms / units).toFixed(2);
  cpu.push(
    `| ${label} | ${per((c.user + c.system) / 1000)} | ${s0 === undefined || s1 === undefined ? 'n/a' : per((s1 - s0) * 1000)} |`,
  );
  return seconds;
};

try {
  const rows = ['| workload | raw AWS SDK | strata upload | strata / raw |', '|---|---|---|---|'];
  const seconds: string[] = [];
  // Each row is also printed as soon as it is measured, so a failure later keeps what was measured.
  const log = (row: string) => {
    rows.push(row);
    process.stderr.write(`${row}\n`);
  };
  const uploader = new Uploader({ api, concurrency, skipUnchanged: true });
  // Warm-up: module loading, token cache and keep-alive connections on both sides.
  const warm = join(work, 'warm.dat');
  await writeFile(warm, randomBytes(4096));
  await s3.send(
    new PutObjectCommand({ Bucket: dev.bucket, Key: 'data/bench/warm.dat', Body: await readFile(warm) }),
  );
  await uploader.upload((await scanArguments([warm], '/bench/warm')).files);

  if (runSmall) {
    const smallDir = join(work, 'small');
    for (let i = 0; i < fileCount; i++) {
      const sub = join(smallDir, String(i % 100).padStart(2, '0'));
      if (i < 100) await mkdir(sub, { recursive: true });
      await writeFile(join(sub, `f${i}.dat`), randomBytes(4096));
    }
    const smallScan = await scanDirectory(smallDir, '/bench/strata-small');
    // Raw SDK: read + PutObject per file, same concurrency.
    const rawSmall = await time('raw small (per file)', fileCount, async () => {
      const limit = pLimit(concurrency);
      await Promise.all(
        smallScan.files.map((f, i) =>
          limit(async () =>
            s3.send(
              new PutObjectCommand({
                Bucket: dev.bucket,
                Key: `data/bench/raw-small/${i}.dat`,
                Body: await readFile(f.abs),
              }),
            ),
          ),
        ),
      );
    });
    let failed = 0;
    const strataSmall = await time('strata small (per file)', fileCount, async () => {
      failed = (await uploader.upload(smallScan.files)).failed;
    });
    if (failed) throw new Error(`strata failed ${failed} small files`);
    const fps = (s: number) => fileCount / s;
    log(
      `| ${fileCount} files × 4 KiB (files/s) | ${fps(rawSmall).toFixed(0)} | ${fps(strataSmall).toFixed(0)} | ${(rawSmall / strataSmall).toFixed(2)}× |`,
    );
    seconds.push(`raw small ${rawSmall.toFixed(2)}`, `strata small ${strataSmall.toFixed(2)}`);
  }

  if (runBig) {
    // One large incompressible file; lib-storage uses the same part size and queue size.
    const big = join(work, 'big.bin');
    const chunk = randomBytes(8 * MiB);
    const fh = await open(big, 'w');
    for (let off = 0; off < bigBytes; off += chunk.length)
      await fh.write(chunk, 0, Math.min(chunk.length, bigBytes - off));
    await fh.close();
    const rawBig = await time('raw big (per MiB)', bigBytes / MiB, async () => {
      await new Upload({
        client: s3,
        params: { Bucket: dev.bucket, Key: 'data/bench/raw-big.bin', Body: createReadStream(big) },
        partSize: 8 * MiB,
        queueSize: concurrency,
      }).done();
    });
    let failed = 0;
    const strataBig = await time('strata big (per MiB)', bigBytes / MiB, async () => {
      failed = (await uploader.upload((await scanArguments([big], '/bench/strata-big')).files)).failed;
    });
    if (failed) throw new Error('strata failed the large file');
    const mbs = (s: number) => bigBytes / MiB / s;
    log(
      `| 1 file × ${bigBytes / MiB} MiB (MiB/s) | ${mbs(rawBig).toFixed(1)} | ${mbs(strataBig).toFixed(1)} | ${(rawBig / strataBig).toFixed(2)}× |`,
    );
    seconds.push(`raw big ${rawBig.toFixed(2)}`, `strata big ${strataBig.toFixed(2)}`);
  }
  await uploader.close();
  process.stdout.write(
    `concurrency ${concurrency}; stack ${values.stack}; local S3 = fauxqs; seconds: ${seconds.join(', ')}\n\n${rows.join('\n')}\n\n` +
      `| CPU ms | client (this process) | stack (API + S3 emulator) |\n|---|---|---|\n${cpu.join('\n')}\n`,
  );
} finally {
  s3.destroy();
  await api.close();
  await stop();
  await rm(work, { recursive: true, force: true });
}
