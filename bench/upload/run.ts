/**
 * Upload benchmark: `strata upload` (the Uploader behind the CLI: API session + presigned PUTs)
 * vs the raw AWS SDK (lib-storage Upload for the large file, PutObject for small files) at the
 * same concurrency against the same local S3 (fauxqs in the local stack), in one run.
 *
 *   npx tsx bench/upload/run.ts [--big-mib 1024] [--files 10000] [--concurrency 16]
 *
 * Defaults are the sizes; pass smaller ones on a busy machine and say so. S3 event
 * notifications are off so the indexer does not compete for CPU with the uploads being measured.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { startStack } from '../../local/stack.ts';
import { ApiClient } from '../../mount-client/api/client.ts';
import { scanArguments, scanDirectory } from '../../mount-client/upload/scan.ts';
import { Uploader } from '../../mount-client/upload/uploader.ts';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    'big-mib': { type: 'string', default: '1024' },
    files: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '16' },
  },
});
const bigBytes = Number(values['big-mib']) * MiB;
const fileCount = Number(values.files);
const concurrency = Number(values.concurrency);

const work = await mkdtemp(join(tmpdir(), 'strata-bench-upload-'));
const stackDir = await mkdtemp(join(tmpdir(), 'strata-bench-upload-stack-'));
const stack = await startStack({
  stateDir: stackDir,
  apiPort: 0,
  scheduleIntervalMs: 0,
  events: false,
  log: () => {},
});
const api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken, connections: 8 });

try {
  // Data: one large file (random, incompressible) and many 4 KiB files.
  const big = join(work, 'big.bin');
  const chunk = randomBytes(8 * MiB);
  await writeFile(big, '');
  {
    const { open } = await import('node:fs/promises');
    const fh = await open(big, 'w');
    for (let off = 0; off < bigBytes; off += chunk.length)
      await fh.write(chunk, 0, Math.min(chunk.length, bigBytes - off));
    await fh.close();
  }
  const smallDir = join(work, 'small');
  for (let i = 0; i < fileCount; i++) {
    const sub = join(smallDir, String(i % 100).padStart(2, '0'));
    if (i < 100) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}.dat`), randomBytes(4096));
  }
  const bucket = stack.dev.bucket;

  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return (performance.now() - t) / 1000;
  };

  // Raw SDK, small files: PutObject per file, same concurrency.
  const smallScan = await scanDirectory(smallDir, '/bench/strata-small');
  const rawSmall = await time(async () => {
    const limit = pLimit(concurrency);
    await Promise.all(
      smallScan.files.map((f, i) =>
        limit(async () =>
          stack.s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: `data/bench/raw-small/${i}.dat`,
              Body: await readFile(f.abs),
            }),
          ),
        ),
      ),
    );
  });
  const uploader = new Uploader({ api, concurrency, skipUnchanged: true });
  let strataSmallFailed = 0;
  const strataSmall = await time(async () => {
    strataSmallFailed = (await uploader.upload(smallScan.files)).failed;
  });

  // Large file: lib-storage multipart with the same part size and queue size.
  const rawBig = await time(async () => {
    await new Upload({
      client: stack.s3,
      params: { Bucket: bucket, Key: 'data/bench/raw-big.bin', Body: createReadStream(big) },
      partSize: 8 * MiB,
      queueSize: concurrency,
    }).done();
  });
  let strataBigFailed = 0;
  const strataBig = await time(async () => {
    strataBigFailed = (await uploader.upload((await scanArguments([big], '/bench/strata-big')).files)).failed;
  });
  await uploader.close();
  if (strataSmallFailed || strataBigFailed)
    throw new Error(`strata failures: small ${strataSmallFailed}, big ${strataBigFailed}`);

  const mbs = (s: number) => bigBytes / MiB / s;
  const fps = (s: number) => fileCount / s;
  const rows = [
    '| workload | raw AWS SDK | strata upload | strata / raw |',
    '|---|---|---|---|',
    `| 1 file × ${bigBytes / MiB} MiB (MiB/s) | ${mbs(rawBig).toFixed(1)} | ${mbs(strataBig).toFixed(1)} | ${(rawBig / strataBig).toFixed(2)}× |`,
    `| ${fileCount} files × 4 KiB (files/s) | ${fps(rawSmall).toFixed(0)} | ${fps(strataSmall).toFixed(0)} | ${(rawSmall / strataSmall).toFixed(2)}× |`,
  ];
  process.stdout.write(
    `concurrency ${concurrency}; local S3 = fauxqs in-process; seconds: raw big ${rawBig.toFixed(2)}, strata big ${strataBig.toFixed(2)}, raw small ${rawSmall.toFixed(2)}, strata small ${strataSmall.toFixed(2)}\n\n${rows.join('\n')}\n`,
  );
} finally {
  await api.close();
  await stack.stop();
  await rm(work, { recursive: true, force: true });
  await rm(stackDir, { recursive: true, force: true });
}
