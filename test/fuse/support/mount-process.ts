/**
 * Runs `strata mount` as a child process (Node 22 from node_modules, the CLI entry point) and
 * waits for its "mounted" log line; `stop()` sends SIGTERM and waits for a clean exit, `kill()`
 * sends SIGKILL. The mount's JSON log is kept for assertions and failure messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AWS_ENV, type Backend, REGION } from './backend.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const NODE = existsSync(join(ROOT, 'node_modules/.bin/node'))
  ? join(ROOT, 'node_modules/.bin/node')
  : process.execPath;

export interface MountProcess {
  child: ChildProcess;
  metricsPort: number;
  log: string[];
  stats(): Promise<MountStats>;
  metrics(): Promise<string>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export interface MountStats {
  dataPath: {
    s3: Record<string, number>;
    disk: Record<string, number>;
    memory: Record<string, number>;
  };
  metadata: Record<string, number>;
  openFiles: number;
}

export async function startMount(
  backend: Backend,
  mountpoint: string,
  cacheDir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<MountProcess> {
  const args = [
    join(ROOT, 'bin/strata.js'),
    '--api-url',
    backend.apiUrl,
    '--token',
    backend.token,
    'mount',
    mountpoint,
    '--region',
    REGION,
    '--s3-endpoint',
    backend.s3Endpoint,
    '--cache-dir',
    cacheDir,
    '--cache-size',
    '1G',
    '--block-size',
    '1M',
    '--metrics-port',
    '0',
    ...extraArgs,
  ];
  const child = spawn(NODE, args, {
    cwd: ROOT,
    env: { ...process.env, ...AWS_ENV, STRATA_DEV_JSON: '/nonexistent', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const metricsPort = await new Promise<number>((resolvePort, reject) => {
    let buffer = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        log.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; metricsPort?: number };
          if (entry.msg === 'mounted') resolvePort(entry.metricsPort ?? 0);
        } catch {
          // not a JSON line (e.g. a CLI error); kept in `log`
        }
        nl = buffer.indexOf('\n');
      }
    });
    void exited.then((code) =>
      reject(new Error(`strata mount exited with ${code} before mounting:\n${log.join('\n')}`)),
    );
  });
  const base = `http://127.0.0.1:${metricsPort}`;
  return {
    child,
    metricsPort,
    log,
    stats: async () => (await (await fetch(`${base}/stats`)).json()) as MountStats,
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
