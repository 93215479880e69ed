import { readdir, readFile } from 'node:fs/promises';

/**
 * CPU seconds (user + system) used so far by one PostgreSQL cluster: its postmaster (found by the
 * port in `url`) and the postmaster's children (backends, walwriter, …). Linux /proc only; other
 * clusters on the machine are not counted.
 */
export async function clusterCpuSeconds(url: string): Promise<number> {
  const port = new URL(url).port;
  const procs: Array<{ pid: string; ppid: string; ticks: number; cmd: string }> = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
      if (!cmd.includes('postgres')) continue;
      const st = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
      procs.push({ pid, ppid: st[1] ?? '', ticks: Number(st[11]) + Number(st[12]), cmd });
    } catch {
      // the process exited meanwhile
    }
  }
  const master = procs.find(
    (p) => new RegExp(`-p ${port}(\\s|$)`).test(p.cmd) || p.cmd.includes(`port=${port}`),
  );
  if (!master) return Number.NaN;
  return (
    procs.filter((p) => p.pid === master.pid || p.ppid === master.pid).reduce((s, p) => s + p.ticks, 0) / 100
  );
}
