/**
 * The Strata side of the comparison: `strata mount` as a child process (the same foreground
 * process users run) and `strata upload` through the CLI, both pointed at explicit API and S3
 * endpoints so the S3-like profile can put proxies in front of them.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { forceUnmount, isMounted, type MountedTool } from './tools.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
/** Node 22 from the node@22 dev dependency (plain `node` on PATH may be older). */
export const NODE = existsSync(join(ROOT, 'node_modules/.bin/node'))
  ? join(ROOT, 'node_modules/.bin/node')
  : process.execPath;
const CLI = join(ROOT, 'bin/strata.js');

export interface StrataEndpoints {
  apiUrl: string;
  token: string;
  s3Endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

function env(e: StrataEndpoints): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: e.accessKeyId,
    AWS_SECRET_ACCESS_KEY: e.secretAccessKey,
    AWS_REGION: e.region,
    // Never pick up a developer's .strata/dev.json: the endpoints are the bench's.
    STRATA_DEV_JSON: '/nonexistent',
  };
}

export async function mountStrata(
  e: StrataEndpoints,
  mountpoint: string,
  workDir: string,
  cacheSizeMiB: number,
): Promise<MountedTool> {
  const cacheDir = join(workDir, 'strata-cache');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(mountpoint, { recursive: true });
  const logFd = openSync(join(workDir, 'strata.log'), 'a');
  const child = spawn(
    NODE,
    [
      CLI,
      '--api-url',
      e.apiUrl,
      '--token',
      e.token,
      'mount',
      mountpoint,
      '--region',
      e.region,
      '--s3-endpoint',
      e.s3Endpoint,
      '--cache-dir',
      cacheDir,
      '--cache-size',
      `${cacheSizeMiB}M`,
      '--metrics-port',
      '0',
    ],
    { cwd: ROOT, env: env(e), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const tail: string[] = [];
  await new Promise<void>((ready, fail) => {
    let buf = '';
    const timer = setTimeout(
      () => fail(new Error(`strata mount did not mount within 60 s: ${tail.join(' / ')}`)),
      60_000,
    );
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      writeSync(logFd, chunk);
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        tail.push(line);
        if (tail.length > 5) tail.shift();
        try {
          if ((JSON.parse(line) as { msg?: string }).msg === 'mounted') {
            clearTimeout(timer);
            ready();
          }
        } catch {
          // not JSON: a CLI error, kept in the tail for the failure message
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`strata mount exited with ${code} before mounting: ${tail.join(' / ')}`));
    });
  });
  return {
    name: 'strata',
    mountpoint,
    cacheDir,
    process: child,
    unmount: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const done = await Promise.race([
          exited.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 10_000)),
        ]);
        if (!done) child.kill('SIGKILL');
      }
      forceUnmount(mountpoint);
      if (isMounted(mountpoint)) throw new Error(`strata: ${mountpoint} is still mounted`);
    },
  };
}

export interface UploadSummaryJson {
  files: number;
  uploaded: number;
  failed: number;
  bytesUploaded: number;
  seconds: number;
  failures?: Array<{ local: string; reason: string }>;
}

/** `strata upload <local> --to <remote> --json`; wall-clock seconds including CLI start-up. */
export async function strataUpload(
  e: StrataEndpoints,
  local: string,
  remoteDir: string,
): Promise<{ seconds: number; summary: UploadSummaryJson }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(
    NODE,
    [
      CLI,
      '--api-url',
      e.apiUrl,
      '--token',
      e.token,
      'upload',
      local,
      '--to',
      remoteDir,
      '--json',
      '--no-progress',
      '--no-default-excludes',
    ],
    { cwd: ROOT, env: env(e), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let summary: UploadSummaryJson;
  try {
    summary = JSON.parse(out) as UploadSummaryJson;
  } catch {
    throw new Error(`strata upload ${local} exited ${code}: ${(err || out).trim().slice(-400)}`);
  }
  if (code !== 0 || summary.failed > 0)
    throw new Error(
      `strata upload ${local}: ${summary.failed} of ${summary.files} failed (exit ${code}), first: ${summary.failures?.[0]?.reason ?? err.trim().slice(-300)}`,
    );
  return { seconds, summary };
}
