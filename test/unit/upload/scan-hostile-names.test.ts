/**
 * Local names the scan cannot turn into paths (QA sweep 2): a file or directory whose name is not
 * valid UTF-8 used to fail the whole `strata upload` with ENOENT (Node decodes the name with
 * U+FFFD, and stat() of that decoded name finds nothing). It is now reported alone, with the fix,
 * and every other file is still scanned.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanArguments, scanDirectory } from '../../../mount-client/upload/scan.ts';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-scan-hostile-'));
  await writeFile(join(root, 'good.txt'), 'ok');
  // Latin-1 bytes in names: not UTF-8. Buffer paths create them byte for byte.
  await writeFile(Buffer.from(`${root}/bad\xff.txt`, 'latin1'), 'bad');
  await mkdir(Buffer.from(`${root}/dir\xfe`, 'latin1'));
  await writeFile(Buffer.from(`${root}/dir\xfe/inside`, 'latin1'), 'x');
  await mkdir(join(root, 'ok-dir'));
  await writeFile(join(root, 'ok-dir', 'é.txt'), 'é');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('scan of names that are not UTF-8', () => {
  it('reports them as unreadable with the fix and scans everything else', async () => {
    const scan = await scanDirectory(root, '/in');
    expect(scan.files.map((f) => f.remote).sort()).toEqual(['/in/good.txt', '/in/ok-dir/é.txt']);
    expect(scan.unreadable).toHaveLength(2);
    for (const u of scan.unreadable) {
      expect(u.local.startsWith(root)).toBe(true);
      expect(u.reason).toMatch(/not valid UTF-8.*rename it/);
    }
  });

  it('carries them through scanArguments for a directory argument', async () => {
    const scan = await scanArguments([root], '/in');
    expect(scan.files).toHaveLength(2);
    expect(scan.unreadable).toHaveLength(2);
  });
});
