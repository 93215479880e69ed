/**
 * redis-server for the local stack: started as a child (no persistence — Redis is only a cache, the
 * index is the source of truth), or REDIS_URL, or nothing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { freePort, isListening } from './ports.ts';

export interface LocalRedis {
  url: string;
  pid?: number;
  stop(): Promise<void>;
}

export function redisServerOnPath(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startRedisServer(): Promise<LocalRedis> {
  let lastError = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ];
    // redis-server has no "die with your parent" option, so a small shell watchdog runs it and
    // stops it when this process disappears — even after a SIGKILL, which no exit hook survives.
    // Own process group (detached): a terminal's Ctrl-C must not kill it before the ordered
    // shutdown, and the exit guard can kill the whole group at once.
    const watchdog = [
      'redis-server "$@" & r=$!',
      "trap 'kill -TERM $r 2>/dev/null; wait $r; exit 0' TERM INT",
      `while kill -0 ${process.pid} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 1 & wait $!; done`,
      'kill -TERM $r 2>/dev/null; wait $r',
    ].join('\n');
    const child = spawn('sh', ['-c', watchdog, 'strata-redis', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-2000);
    });
    child.stderr?.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-2000);
    });
    const ready = await waitReady(child, port);
    if (ready) {
      return {
        url: `redis://127.0.0.1:${port}`,
        pid: child.pid,
        stop: () => stopChild(child),
      };
    }
    lastError = output.trim() || 'redis-server exited during start-up';
    await stopChild(child);
  }
  throw new Error(`redis-server did not start: ${lastError}`);
}

async function waitReady(child: ChildProcess, port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (await isListening(port, 200)) return true;
    await new Promise((r) => setTimeout(r, 30));
  }
  return false;
}

export function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
