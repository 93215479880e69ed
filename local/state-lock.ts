/**
 * One local stack per state directory. A second `npm start` on a directory in use took over the
 * first one's PostgreSQL data directory — stopping its server as if a SIGKILLed run had left it
 * behind (local/postgres.ts) — and removed its dev.json when it stopped, leaving the first stack
 * answering "internal error". `<stateDir>/stack.pid` names the owning process; a file whose process
 * is gone (SIGKILL, reboot) is stale and taken over.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LOCK_FILE = 'stack.pid';

export class StateDirInUseError extends Error {
  override name = 'StateDirInUseError';
  constructor(
    readonly stateDir: string,
    readonly pid: number,
  ) {
    super(
      `${stateDir} is in use by another local stack (pid ${pid}); stop it (Ctrl-C in its terminal, or kill ${pid}) or pass another --state-dir`,
    );
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else — still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live process holding `stateDir`, if any. */
export async function stateDirOwner(stateDir: string): Promise<number | undefined> {
  const text = await readFile(join(stateDir, LOCK_FILE), 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** Takes `stateDir` for this process; returns the release function. */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const file = join(stateDir, LOCK_FILE);
  // Two rounds: the second follows removing a stale file; losing that race to another starter
  // ends in the in-use error below.
  for (let round = 0; round < 2; round++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return async () => {
        if ((await stateDirOwner(stateDir)) === process.pid) await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = await stateDirOwner(stateDir);
      // This process too: two stacks in one process on one directory clash the same way.
      if (owner !== undefined) throw new StateDirInUseError(stateDir, owner);
      await rm(file, { force: true });
    }
  }
  const owner = await stateDirOwner(stateDir);
  throw new StateDirInUseError(stateDir, owner ?? 0);
}
