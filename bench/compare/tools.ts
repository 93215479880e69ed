/**
 * Drivers for the mount clients Strata is compared with: rclone mount and s3fs-fuse, both pointed
 * at the same S3 endpoint (path-style) as Strata. Each driver mounts, waits until the mountpoint is
 * live, and returns an unmount function that always leaves no mount and no process behind.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface S3Target {
  endpoint: string;
  bucket: string;
  /** Key prefix to mount (e.g. `data/`) so every tool sees the same tree. */
  prefix: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface MountedTool {
  name: string;
  mountpoint: string;
  cacheDir: string;
  process: ChildProcess;
  unmount(): Promise<void>;
}

export function isMounted(mountpoint: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === mountpoint);
}

export function forceUnmount(mountpoint: string): void {
  for (const cmd of [
    ['fusermount', '-uz', mountpoint],
    ['umount', '-l', mountpoint],
  ]) {
    if (!isMounted(mountpoint)) return;
    try {
      execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
    } catch {
      // try the next way
    }
  }
}

async function waitLive(
  mountpoint: string,
  child: ChildProcess,
  name: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${name} exited with code ${child.exitCode} before mounting`);
    if (isMounted(mountpoint)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not mount ${mountpoint} within ${timeoutMs} ms`);
}

function stopper(name: string, mountpoint: string, child: ChildProcess): () => Promise<void> {
  return async () => {
    forceUnmount(mountpoint);
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([
        new Promise((r) => child.once('exit', r)),
        new Promise((r) => setTimeout(r, 3000)),
      ]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    forceUnmount(mountpoint);
    if (isMounted(mountpoint)) throw new Error(`${name}: ${mountpoint} is still mounted`);
  };
}

/** Environment for the tools: AWS_CA_BUNDLE breaks rclone on these machines (issue 9). */
function toolEnv(t: S3Target): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: t.accessKeyId,
    AWS_SECRET_ACCESS_KEY: t.secretAccessKey,
  };
  delete env.AWS_CA_BUNDLE;
  return env;
}

/** Writes an rclone config with one remote, `strata`, for the target; returns its path. */
export function writeRcloneConfig(t: S3Target, workDir: string): string {
  mkdirSync(workDir, { recursive: true });
  const configPath = join(workDir, 'rclone.conf');
  writeFileSync(
    configPath,
    [
      '[strata]',
      'type = s3',
      'provider = Other',
      'env_auth = false',
      `access_key_id = ${t.accessKeyId}`,
      `secret_access_key = ${t.secretAccessKey}`,
      `region = ${t.region}`,
      `endpoint = ${t.endpoint}`,
      'force_path_style = true',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return configPath;
}

/** Environment for rclone/s3fs child processes (credentials; AWS_CA_BUNDLE removed). */
export function toolEnvFor(t: S3Target): NodeJS.ProcessEnv {
  return toolEnv(t);
}

export async function mountRclone(t: S3Target, mountpoint: string, workDir: string): Promise<MountedTool> {
  const cacheDir = join(workDir, 'rclone-cache');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(mountpoint, { recursive: true });
  const configPath = writeRcloneConfig(t, workDir);
  const child = spawn(
    'rclone',
    [
      'mount',
      `strata:${t.bucket}/${t.prefix.replace(/\/$/, '')}`,
      mountpoint,
      '--config',
      configPath,
      '--vfs-cache-mode',
      'full',
      '--use-server-modtime',
      '--cache-dir',
      cacheDir,
      '--read-only',
      '--dir-cache-time',
      '1s',
      '--log-level',
      'ERROR',
    ],
    { env: toolEnv(t), stdio: ['ignore', 'ignore', openSync(join(workDir, 'rclone.log'), 'a')] },
  );
  await waitLive(mountpoint, child, 'rclone');
  return {
    name: 'rclone',
    mountpoint,
    cacheDir,
    process: child,
    unmount: stopper('rclone', mountpoint, child),
  };
}

export async function mountS3fs(t: S3Target, mountpoint: string, workDir: string): Promise<MountedTool> {
  const cacheDir = join(workDir, 's3fs-cache');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(mountpoint, { recursive: true });
  const passwd = join(workDir, 's3fs.passwd');
  writeFileSync(passwd, `${t.accessKeyId}:${t.secretAccessKey}\n`, { mode: 0o600 });
  const child = spawn(
    's3fs',
    [
      `${t.bucket}:/${t.prefix.replace(/\/$/, '')}`,
      mountpoint,
      '-f',
      '-o',
      [
        `passwd_file=${passwd}`,
        `url=${t.endpoint}`,
        'use_path_request_style',
        `endpoint=${t.region}`,
        `use_cache=${cacheDir}`,
        'ro',
        'stat_cache_expire=1',
      ].join(','),
    ],
    { env: toolEnv(t), stdio: ['ignore', 'ignore', openSync(join(workDir, 's3fs.log'), 'a')] },
  );
  await waitLive(mountpoint, child, 's3fs');
  return { name: 's3fs', mountpoint, cacheDir, process: child, unmount: stopper('s3fs', mountpoint, child) };
}
