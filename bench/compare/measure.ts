/**
 * Measurements as external commands (`cat`, `find`, `ls -lR`, `stat`, a python3 pread loop), the
 * way users touch a mount — and never a blocking call in this process, which also hosts proxies
 * and the FUSE ceiling filesystem.
 */
import { exec, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execP = promisify(exec);
const execFileP = promisify(execFile);
const MiB = 1024 * 1024;

/**
 * User and system CPU seconds process `pid` has used so far (utime and stime of /proc/<pid>/stat,
 * in USER_HZ = 100 ticks on Linux); 0 for an unknown pid. The kernel side of a mount is FUSE
 * replies, sockets and the page cache.
 */
export function processCpu(pid: number | undefined): { user: number; sys: number } {
  if (pid === undefined) return { user: 0, sys: 0 };
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may hold spaces); utime, stime = 14, 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

/** processCpu's user + system. */
export function processCpuSeconds(pid: number | undefined): number {
  const { user, sys } = processCpu(pid);
  return user + sys;
}

export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function sh(cmd: string, timeoutMs = 600_000): Promise<string> {
  try {
    const { stdout } = await execP(cmd, { maxBuffer: 256 * MiB, timeout: timeoutMs, shell: '/bin/bash' });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; killed?: boolean };
    const why = e.killed
      ? `timed out after ${timeoutMs} ms`
      : (e.stderr ?? '').trim().split('\n').slice(-3).join(' / ');
    throw new Error(`\`${cmd.slice(0, 160)}\` failed: ${why || e.message}`, { cause: err });
  }
}

/** Seconds taken by `cmd`, and its stdout. */
export async function timed(cmd: string, timeoutMs?: number): Promise<{ seconds: number; stdout: string }> {
  const t0 = process.hrtime.bigint();
  const stdout = await sh(cmd, timeoutMs);
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout };
}

/** MB/s (10^6 bytes/s), as dd and fio report. */
export const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;

/** Drops the kernel page cache, dentries and inodes; false when not permitted (not root, container). */
export async function dropCaches(): Promise<boolean> {
  try {
    await sh('sync && echo 3 > /proc/sys/vm/drop_caches', 30_000);
    return true;
  } catch {
    return false;
  }
}

/** Reads `file` sequentially with `readers` concurrent `cat`s; aggregate MB/s. */
export async function sequentialRead(file: string, bytes: number, readers: number): Promise<number> {
  const cmd =
    readers === 1
      ? `cat ${shq(file)} > /dev/null`
      : `for i in $(seq ${readers}); do cat ${shq(file)} > /dev/null & done; wait`;
  // `wait` alone does not fail on a failed reader: count bytes instead when several read.
  const { seconds } = await timed(cmd);
  return mbps(bytes * readers, seconds);
}

/** Aligned random 4 KiB preads for `seconds` from one thread (python3: no JIT warm-up, small). */
export async function randomReads(dir: string, file: string, size: number, seconds: number): Promise<number> {
  const script = join(dir, 'randread.py');
  writeFileSync(
    script,
    [
      'import os, random, sys, time',
      'path, size, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])',
      'fd = os.open(path, os.O_RDONLY)',
      'blocks = size // 4096',
      'n = 0',
      't0 = time.monotonic(); end = t0 + secs',
      'while time.monotonic() < end:',
      '    if len(os.pread(fd, 4096, random.randrange(blocks) * 4096)) != 4096: sys.exit("short read")',
      '    n += 1',
      'print(n / (time.monotonic() - t0))',
      '',
    ].join('\n'),
  );
  const { stdout } = await execFileP('python3', [script, file, String(size), String(seconds)], {
    timeout: (seconds + 60) * 1000,
  });
  return Number(stdout.trim());
}

/** Seconds until `stat path` succeeds, polling every 20 ms from a shell loop; throws after timeoutS. */
export async function waitVisible(path: string, timeoutS = 30): Promise<number> {
  const polls = Math.ceil((timeoutS * 1000) / 20);
  const { seconds } = await timed(
    `for i in $(seq ${polls}); do stat -c %s ${shq(path)} > /dev/null 2>&1 && exit 0; sleep 0.02; done; echo "not visible after ${timeoutS} s" >&2; exit 1`,
    (timeoutS + 10) * 1000,
  );
  return seconds;
}

async function version(cmd: string): Promise<string> {
  try {
    return (await sh(cmd, 10_000)).trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

export async function describeMachine(node: string): Promise<Record<string, string>> {
  const cpus = os.cpus();
  return {
    CPU: `${cpus[0]?.model.trim() ?? 'unknown'} × ${cpus.length}`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    disk: await version(`df -hT ${shq(os.tmpdir())} | tail -1 | awk '{print $2 ", " $3 " (" $1 ")"}'`),
    node: await version(`${shq(node)} -v`),
    rclone: await version('rclone version'),
    s3fs: await version('s3fs --version 2>&1'),
    fuse: await version('fusermount -V 2>&1'),
    'load at start': os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' / '),
  };
}
