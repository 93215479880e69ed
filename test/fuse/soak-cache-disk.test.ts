/**
 * Long-running mounts whose cache disk gets into trouble (real FUSE, real local stack, the cache
 * on a small tmpfs): a filesystem smaller than the free-disk floor, a full filesystem, a cache
 * directory removed or made read-only under the mount. In every case reads stay byte-exact (S3
 * serves what the cache cannot), the mount says what is wrong in ONE log line naming the cache
 * dir and the fix, and caching comes back by itself once the disk does.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';
import { until } from './support/until.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** tmpfs needs CAP_SYS_ADMIN (root, as the FUSE suite runs in CI); otherwise say why and skip. */
function tmpfsReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs for the cache needs root';
  return undefined;
}
const skip = missing('fuse') ?? tmpfsReason();

async function blockFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith('.blk')).length;
}

describe.skipIf(skip)('a mount whose cache disk is in trouble (real FUSE)', () => {
  let backend: Backend;
  let root: string;
  let mnt: string;
  const tmpfs: string[] = [];
  const mounts: MountProcess[] = [];
  const files = new Map<string, Buffer>();

  const mountOn = async (cacheDir: string, extra: string[] = []) => {
    const m = await startMount(backend, mnt, cacheDir, extra);
    mounts.push(m);
    return m;
  };
  const makeTmpfs = async (size: string) => {
    const dir = join(root, `tmpfs-${tmpfs.length}`);
    mkdirSync(dir);
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
    tmpfs.push(dir);
    return dir;
  };
  const readOk = async (path: string) => {
    expect(sha(await readFile(join(mnt, path)))).toBe(sha(files.get(path) as Buffer));
  };
  const lines = (m: MountProcess, re: RegExp) => m.log.filter((l) => re.test(l));
  const disk = async (m: MountProcess) =>
    (await m.stats()).dataPath.disk as { entries: number; writeErrors: number; writesBelowFloor: number };

  /** Reads c.bin and waits for its seven blocks to be cached, with no new failed writes. */
  const cachesAgain = async (m: MountProcess) => {
    const before = await disk(m);
    await readOk('/d/c.bin');
    const after = await until('c.bin cached', async () => {
      const d = await disk(m);
      return d.entries >= before.entries + 7 ? d : undefined;
    });
    expect(after.writeErrors).toBe(before.writeErrors);
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-soak-disk-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    for (const name of ['a', 'b', 'c', 'd']) {
      const bytes = randomBytes(6 * MiB + 77);
      files.set(`/d/${name}.bin`, bytes);
      await backend.put(`/d/${name}.bin`, bytes);
    }
  });

  afterEach(async () => {
    // A failed test must not leave its mount on the shared mountpoint for the next one.
    for (const m of mounts.splice(0)) await m.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
  });

  afterAll(async () => {
    for (const m of mounts) await m.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    for (const dir of tmpfs) await run('umount', ['-l', dir]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('a cache filesystem smaller than the free-disk floor: one line at start, reads uncached and exact', async () => {
    // Prepare: 32 MiB tmpfs, default floor (at least 1 GiB)
    const fs = await makeTmpfs('32m');
    const m = await mountOn(join(fs, 'cache'));
    // Act
    await readOk('/d/a.bin');
    await readOk('/d/b.bin');
    // Assess
    const d = await disk(m);
    expect(d.entries).toBe(0);
    expect(d.writesBelowFloor).toBeGreaterThan(0);
    expect(await blockFiles(join(fs, 'cache'))).toBe(0);
    const warn = lines(m, /block cache disabled/);
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(join(fs, 'cache'));
    expect(warn[0]).toContain('--cache-min-free');
    await m.stop();
  });

  it('a full cache filesystem: reads exact, one line, caching resumes when space returns', async () => {
    // Prepare: 32 MiB tmpfs nearly filled by someone else; no floor, a cache cap above the disk
    const fs = await makeTmpfs('32m');
    const filler = join(fs, 'filler');
    await writeFile(filler, Buffer.alloc(29 * MiB));
    const m = await mountOn(join(fs, 'cache'), ['--cache-min-free', '0', '--memory-cache', '0']);
    // Act: 12 MiB of reads against ~3 MiB of room
    await readOk('/d/a.bin');
    await readOk('/d/b.bin');
    await until('failed block writes', async () => ((await disk(m)).writeErrors > 0 ? true : undefined));
    // Assess: one line for the episode, naming the dir and the fix
    const full = lines(m, /is full \(ENOSPC\)/);
    expect(full).toHaveLength(1);
    expect(full[0]).toContain(join(fs, 'cache'));
    await readOk('/d/a.bin');
    // Act: space returns
    await rm(filler);
    // Assess: c's seven blocks are cached again, with no new failures
    await cachesAgain(m);
    expect(lines(m, /is full \(ENOSPC\)/)).toHaveLength(1);
    await m.stop();
  });

  it('the cache dir made read-only, then writable again: exact reads, one line, caching resumes', async () => {
    // Prepare: a warm cache on its own tmpfs
    const fs = await makeTmpfs('64m');
    const m = await mountOn(join(fs, 'cache'), ['--cache-min-free', '0', '--memory-cache', '0']);
    await readOk('/d/a.bin');
    await until('a.bin cached', async () => ((await disk(m)).entries >= 7 ? true : undefined));
    // Act: the cache filesystem turns read-only
    await run('mount', ['-o', 'remount,ro', fs]);
    await readOk('/d/b.bin');
    await readOk('/d/a.bin'); // cached blocks are still served
    await until('failed block writes', async () => ((await disk(m)).writeErrors > 0 ? true : undefined));
    // Assess
    const ro = lines(m, /is not writable \(EROFS\)/);
    expect(ro).toHaveLength(1);
    expect(ro[0]).toContain(join(fs, 'cache'));
    // Act: writable again
    await run('mount', ['-o', 'remount,rw', fs]);
    // Assess
    await cachesAgain(m);
    expect(lines(m, /is not writable/)).toHaveLength(1);
    await m.stop();
  });

  it('the cache dir removed while mounted: exact reads, recreated with one line, caching goes on', async () => {
    // Prepare
    const cacheDir = join(root, 'removed-cache');
    const m = await mountOn(cacheDir, ['--cache-min-free', '0', '--memory-cache', '0']);
    await readOk('/d/a.bin');
    await until('a.bin cached', async () => ((await disk(m)).entries >= 7 ? true : undefined));
    // Act
    await rm(cacheDir, { recursive: true, force: true });
    await readOk('/d/a.bin'); // its cached blocks are gone: served from S3
    await readOk('/d/d.bin');
    // Assess: the layout is back and holds d's blocks
    await until('block files under the recreated dir', async () =>
      (await blockFiles(cacheDir)) >= 7 ? true : undefined,
    );
    expect(lines(m, /was removed while mounted; recreated/)).toHaveLength(1);
    expect((await disk(m)).writeErrors).toBe(0);
    await m.stop();
  });
});
