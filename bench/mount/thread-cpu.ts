/**
 * CPU seconds per thread of a process (bench/mount's cold-read and warm benches, `--threads`):
 * which part of the mount pays — the JS main thread, the libuv pool (disk-cache I/O), V8's
 * workers (GC) or the FUSE threads (their system time is the kernel's reply copies).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user + system, USER_HZ ticks of /proc/<pid>/task/<tid>/stat) per `name/tid`. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}/${tid}`, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // thread exited between readdir and read
    }
  }
  return out;
}

/** `name/tid=seconds` of every thread that used CPU since `before` (a threadCpu snapshot). */
export function threadCpuSince(pid: number, before: Map<string, number>): string {
  return [...threadCpu(pid)]
    .map(([n, c]) => [n, c - (before.get(n) ?? 0)] as const)
    .filter(([, c]) => c > 0)
    .map(([n, c]) => `${n}=${c.toFixed(2)}`)
    .join(' ');
}
