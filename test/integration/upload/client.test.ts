/**
 * The upload client against the local stack: multipart round trip (≥ 50 MiB), small files through
 * the batch endpoint, skip-unchanged, resume after an interruption, `sync --delete --dry-run`
 * through the real CLI, and `--watch` picking up a new file.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListResponse, ResolveResponse, UploadSession } from '../../../functions/core/api-types.ts';
import { type LocalStack, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';
import { ResumeStore } from '../../../mount-client/upload/resume-state.ts';
import { scanArguments, scanDirectory } from '../../../mount-client/upload/scan.ts';
import { watchAndSync } from '../../../mount-client/upload/sync.ts';
import { Uploader } from '../../../mount-client/upload/uploader.ts';

const MiB = 1024 * 1024;
const run = promisify(execFile);
let dir: string;
let stackDir: string;
let stack: LocalStack;
let api: ApiClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-upload-client-'));
  // The stack gets its own mkdtemp directory: it opens it to the postgres user.
  stackDir = await mkdtemp(join(tmpdir(), 'strata-upload-client-stack-'));
  stack = await startStack({
    stateDir: stackDir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: () => {},
    env: { STRATA_MULTIPART_THRESHOLD: String(5 * MiB) },
  });
  api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
  await rm(stackDir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function objectSha(path: string): Promise<string | undefined> {
  try {
    const out = await stack.s3.send(new GetObjectCommand({ Bucket: stack.dev.bucket, Key: `data${path}` }));
    return sha(Buffer.from(await out.Body!.transformToByteArray()));
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stack.s3.send(new HeadObjectCommand({ Bucket: stack.dev.bucket, Key: `data${path}` }));
    return true;
  } catch {
    return false;
  }
}

describe('strata upload client', () => {
  it('uploads a 50 MiB file multipart and small files through the batch endpoint; skips unchanged', async () => {
    const src = join(dir, 'src1');
    await mkdir(join(src, 'sub'), { recursive: true });
    const big = randomBytes(50 * MiB + 7);
    await writeFile(join(src, 'big.bin'), big);
    const small: Record<string, Buffer> = {};
    for (const name of ['a b.txt', 'x+y#?.txt', 'Cafe\u0301.txt', '🚀.txt', 'sub/deep.csv']) {
      small[name] = randomBytes(1000);
      await writeFile(join(src, name), small[name]);
    }
    const scan = await scanArguments([src], '/client');
    const uploader = new Uploader({ api, concurrency: 8, resume: new ResumeStore(join(dir, 'resume')) });
    try {
      const summary = await uploader.upload(scan.files);
      expect(summary.failed, JSON.stringify(summary.results.filter((r) => r.status === 'failed'))).toBe(0);
      expect(summary.uploaded).toBe(6);
      const bigResult = summary.results.find((r) => r.remote === '/client/src1/big.bin');
      expect(bigResult).toMatchObject({ mode: 'multipart', partCount: 7, partsSent: 7, sha256: sha(big) });
      expect(await objectSha('/client/src1/big.bin')).toBe(sha(big));
      for (const [name, body] of Object.entries(small)) {
        expect(await objectSha(`/client/src1/${name.normalize('NFC')}`), name).toBe(sha(body));
      }
      // Once indexed, a second run sends nothing: size and SHA-256 match the index.
      await stack.drain();
      const indexed = await api.request<ResolveResponse>('GET', '/v1/resolve', {
        query: { path: '/client/src1/big.bin' },
      });
      const again = await uploader.upload(scan.files);
      for (const r of again.results.filter((x) => x.remote !== '/client/src1/big.bin')) {
        expect(r, r.remote).toMatchObject({ status: 'skipped', reason: 'unchanged' });
      }
      // The multipart file's digest was only sent at `complete`; the index records it from the
      // session (settleUploads), so the second run skips the large file too.
      expect(indexed).toMatchObject({ sha256: sha(big), contentType: 'application/octet-stream' });
      const bigAgain = again.results.find((x) => x.remote === '/client/src1/big.bin');
      expect(bigAgain).toMatchObject({ status: 'skipped', reason: 'unchanged' });
    } finally {
      await uploader.close();
    }
  });

  it('a re-sync decides "unchanged" from /v1/list alone: entries carry sha256, no resolve per file', async () => {
    const src = join(dir, 'relist');
    await mkdir(src, { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(src, `f${i}.txt`), randomBytes(64)); // all the same size
    const scan = await scanDirectory(src, '/relist');
    const first = new Uploader({ api, concurrency: 4 });
    try {
      expect((await first.upload(scan.files)).uploaded).toBe(20);
    } finally {
      await first.close();
    }
    await stack.drain();
    const listed = await api.request<ListResponse>('GET', '/v1/list', { query: { path: '/relist' } });
    expect(listed.entries).toHaveLength(20);
    for (const e of listed.entries) expect(e.sha256, e.path).toMatch(/^[0-9a-f]{64}$/);

    // Prepare: count the API calls of a second run. Act: re-sync. Assess: skipped, one list call.
    const counted = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
    const seen: string[] = [];
    const original = counted.request.bind(counted);
    counted.request = ((method: string, path: string, options?: unknown) => {
      seen.push(`${method} ${path}`);
      return original(method, path, options as never);
    }) as typeof counted.request;
    const again = new Uploader({ api: counted, concurrency: 4 });
    try {
      const summary = await again.upload(scan.files);
      expect(summary.skipped).toBe(20);
      expect(seen.filter((c) => c.includes('/v1/resolve'))).toEqual([]);
      expect(seen).toEqual(['GET /v1/list']);
    } finally {
      await again.close();
      await counted.close();
    }
  });

  it('resumes an interrupted multipart upload with only the missing parts', async () => {
    const src = join(dir, 'src2');
    await mkdir(src, { recursive: true });
    const body = randomBytes(40 * MiB);
    await writeFile(join(src, 'resume.bin'), body);
    const files = (await scanArguments([join(src, 'resume.bin')], '/resume')).files;
    const resume = new ResumeStore(join(dir, 'resume2'));

    const abort = new AbortController();
    const sentFirst: number[] = [];
    const first = new Uploader({
      api,
      concurrency: 1,
      resume,
      signal: abort.signal,
      onPart: (_f, n) => {
        sentFirst.push(n);
        if (sentFirst.length === 2) abort.abort();
      },
    });
    const interrupted = await first.upload(files);
    await first.close();
    expect(interrupted.failed).toBe(1);
    expect(sentFirst).toEqual([1, 2]);
    expect(await exists('/resume/resume.bin')).toBe(false);

    const sentSecond: number[] = [];
    const second = new Uploader({ api, concurrency: 4, resume, onPart: (_f, n) => sentSecond.push(n) });
    const resumed = await second.upload(files);
    await second.close();
    expect(resumed.failed).toBe(0);
    expect(sentSecond.sort((a, b) => a - b)).toEqual([3, 4, 5]);
    expect(resumed.results[0]).toMatchObject({ partsSent: 3, partCount: 5 });
    // The summary (and the rate `strata upload` prints) counts what this run sent: parts 3-5.
    expect(resumed.bytesUploaded).toBe(body.length - 2 * 8 * MiB);
    expect(await objectSha('/resume/resume.bin')).toBe(sha(body));

    // Resume state left behind for a file the index already holds unchanged (a run killed after
    // its upload completed) is dropped by the run that skips the file, not kept for ever.
    const f = files[0] as (typeof files)[0];
    await resume.save(api.apiUrl, f.abs, {
      format: 1,
      uploadId: 'gone',
      remote: f.remote,
      size: f.size,
      mtimeMs: f.mtimeMs,
      partSize: 8 * MiB,
      partCount: 5,
      parts: { 1: '"x"' },
    });
    const third = new Uploader({ api, concurrency: 4, resume });
    const skipped = await third.upload(files);
    await third.close();
    expect(skipped.results[0]).toMatchObject({ status: 'skipped', reason: 'unchanged' });
    expect(await resume.load(api.apiUrl, f.abs, f.remote, f.size, f.mtimeMs)).toBeUndefined();
  });

  it('a multipart upload whose sha256 came only with `complete` is indexed with it; `strata sync` skips it', async () => {
    // Prepare: a file uploaded by a producer that hashed it alongside the upload (no digest at POST).
    const src = join(dir, 'src5');
    await mkdir(src, { recursive: true });
    const body = randomBytes(6 * MiB + 1);
    await writeFile(join(src, 'late.csv'), body);
    const session = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/late/late.csv', size: body.length, contentType: 'text/csv', metadata: { team: 'a' } },
    });
    expect(session.mode).toBe('multipart');
    const parts = [];
    for (const p of session.parts ?? []) {
      const start = (p.partNumber - 1) * (session.partSize ?? 0);
      const chunk = body.subarray(start, start + (session.partSize ?? 0));
      const res = await request(p.url, {
        method: 'PUT',
        body: chunk,
        headers: { 'content-length': String(chunk.length) },
      });
      await res.body.text();
      expect(res.statusCode).toBe(200);
      parts.push({ partNumber: p.partNumber, etag: String(res.headers.etag) });
    }
    await api.request('POST', `/v1/uploads/${session.uploadId}/complete`, {
      body: { parts, sha256: sha(body) },
    });

    // Act: the indexer records the object; then a sync of the same bytes.
    await stack.drain();
    const indexed = await api.request<ResolveResponse>('GET', '/v1/resolve', {
      query: { path: '/late/late.csv' },
    });
    const env = { ...process.env, STRATA_API_URL: stack.dev.apiUrl, STRATA_TOKEN: stack.adminToken };
    const cli = join(process.cwd(), 'mount-client/cli/main.ts');
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', cli, 'sync', src, '--to', '/late', '--json'],
      {
        env,
      },
    );

    // Assess: the session's digest, type and metadata are in the index, and nothing was re-sent.
    expect(indexed).toMatchObject({ sha256: sha(body), contentType: 'text/csv', metadata: { team: 'a' } });
    expect(JSON.parse(stdout)).toMatchObject({ files: 1, uploaded: 0, skipped: 1, failed: 0 });
  });

  it('`strata sync --delete --dry-run` lists deletions and deletes nothing', async () => {
    const src = join(dir, 'src3');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'keep.txt'), 'keep');
    await writeFile(join(src, 'gone.txt'), 'gone');
    const u = new Uploader({ api });
    await u.upload((await scanDirectory(src, '/mirror')).files);
    await u.close();
    await stack.drain();
    await rm(join(src, 'gone.txt'));

    const env = { ...process.env, STRATA_API_URL: stack.dev.apiUrl, STRATA_TOKEN: stack.adminToken };
    const cli = join(process.cwd(), 'mount-client/cli/main.ts');
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', cli, 'sync', src, '--to', '/mirror', '--delete', '--dry-run', '--json'],
      { env },
    );
    const plan = JSON.parse(stdout) as {
      dryRun: boolean;
      delete: string[];
      upload: Array<{ remote: string }>;
    };
    expect(plan.dryRun).toBe(true);
    expect(plan.delete).toEqual(['/mirror/gone.txt']);
    expect(plan.upload.map((f) => f.remote)).toEqual(['/mirror/keep.txt']);
    expect(await exists('/mirror/gone.txt')).toBe(true);

    // Without --yes and without a terminal, deletion is refused rather than silently done.
    const refused = await run(
      process.execPath,
      ['--import', 'tsx', cli, 'sync', src, '--to', '/mirror', '--delete'],
      {
        env,
      },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--yes/);
    expect(await exists('/mirror/gone.txt')).toBe(true);
  });

  it('--watch uploads a new file as it appears', async () => {
    const src = join(dir, 'src4');
    await mkdir(src, { recursive: true });
    const uploader = new Uploader({ api });
    const passes: number[] = [];
    const stop = await watchAndSync({
      api,
      uploader,
      localDir: src,
      remoteDir: '/watched',
      filter: {},
      delete: false,
      debounceMs: 100,
      onPass: (s) => passes.push(s.uploaded),
    });
    try {
      await writeFile(join(src, 'new.txt'), 'hello watch');
      await writeFile(join(src, 'debug.log'), 'ignored by default');
      // Up to 30 s: the watcher's debounce, a scan and an upload through the stack, on a loaded machine.
      const deadline = Date.now() + 30_000;
      while (!passes.includes(1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await objectSha('/watched/new.txt')).toBe(sha(Buffer.from('hello watch')));
      expect(await exists('/watched/debug.log')).toBe(false);
    } finally {
      await stop();
      await uploader.close();
    }
    expect(await readFile(join(src, 'new.txt'), 'utf8')).toBe('hello watch');
  });
});
