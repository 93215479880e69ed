import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockStateDir, StateDirInUseError, stateDirOwner } from '../../../local/state-lock.ts';

const root = mkdtempSync(join(tmpdir(), 'strata-state-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('one local stack per state directory', () => {
  it('a directory held by a live process is refused, naming the pid and the way out', async () => {
    const dir = mkdtempSync(join(root, 'held-'));
    // A stand-in for another `npm start`: a live process that is not this one.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, LOCK_FILE), `${other.pid}\n`);
      const err = await lockStateDir(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateDirInUseError);
      expect((err as Error).message).toBe(
        `${dir} is in use by another local stack (pid ${other.pid}); stop it (Ctrl-C in its terminal, or kill ${other.pid}) or pass another --state-dir`,
      );
      expect(await stateDirOwner(dir)).toBe(other.pid);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    // Its owner gone (as after a SIGKILL), the file is stale and taken over.
    expect(await stateDirOwner(dir)).toBeUndefined();
    const release = await lockStateDir(dir);
    expect(await stateDirOwner(dir)).toBe(process.pid);
    await release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('a second stack in the same process is refused too, and the directory is free after release', async () => {
    const dir = mkdtempSync(join(root, 'same-'));
    const release = await lockStateDir(dir);
    await expect(lockStateDir(dir)).rejects.toBeInstanceOf(StateDirInUseError);
    await release();
    const again = await lockStateDir(dir);
    await again();
  });
});
