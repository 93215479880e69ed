import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLocalDir } from '../../../../mount-client/cli/commands/sync.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-sync-arg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata sync <dir>', () => {
  it('accepts a directory', async () => {
    await checkLocalDir(dir);
  });

  it('a missing directory says so (was a bare ENOENT from opendir)', async () => {
    await expect(checkLocalDir(join(dir, 'nodir'))).rejects.toThrow(/cannot sync .*nodir: no such directory/);
  });

  it('a file points at strata upload', async () => {
    writeFileSync(join(dir, 'f.txt'), 'x');
    await expect(checkLocalDir(join(dir, 'f.txt'))).rejects.toThrow(/not a directory; use `strata upload/);
  });
});
