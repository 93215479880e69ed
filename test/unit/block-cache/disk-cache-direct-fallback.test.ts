/**
 * The disk cache's buffered fallback where a filesystem refuses O_DIRECT. tmpfs did at open
 * (EINVAL) before Linux 6.6, overlayfs on some kernels does, and some FUSE/network filesystems
 * accept the open but refuse the writes. This kernel's filesystems all accept it, so the refusal is
 * injected at the syscall wrappers the store uses (node:fs for the alignment probe, node:fs/promises
 * for the block writes); everything else is the real filesystem.
 */
import * as realFs from 'node:fs';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

/** Where O_DIRECT is refused in the current test (undefined: nowhere). */
const refuse: { at?: 'open' | 'write' | 'probe' } = {};
const einval = (what: string) =>
  Object.assign(new Error(`EINVAL: invalid argument, ${what}`), { code: 'EINVAL', errno: -22 });
const isDirect = (flags: unknown) => typeof flags === 'number' && (flags & realFs.constants.O_DIRECT) !== 0;
const directFds = new Set<number>();

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const openSync = ((p: realFs.PathLike, flags?: realFs.OpenMode, mode?: realFs.Mode) => {
    if (isDirect(flags) && refuse.at === 'open') throw einval(`open '${p}'`);
    const fd = actual.openSync(p, flags ?? 'r', mode);
    if (isDirect(flags)) directFds.add(fd);
    return fd;
  }) as typeof actual.openSync;
  const writeSync = ((fd: number, ...rest: unknown[]) => {
    if (refuse.at === 'probe' && directFds.has(fd)) throw einval('write');
    return (actual.writeSync as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof actual.writeSync;
  const closeSync = ((fd: number) => {
    directFds.delete(fd);
    actual.closeSync(fd);
  }) as typeof actual.closeSync;
  const patched = { openSync, writeSync, closeSync };
  return { ...actual, ...patched, default: { ...actual, ...patched } };
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const open = (async (p: realFs.PathLike, flags?: string | number, mode?: realFs.Mode) => {
    if (isDirect(flags) && refuse.at === 'open') throw einval(`open '${p}'`);
    const fh = await actual.open(p, flags, mode);
    if (isDirect(flags) && refuse.at === 'write') {
      fh.writev = async () => {
        throw einval('write');
      };
    }
    return fh;
  }) as typeof actual.open;
  return { ...actual, open, default: { ...actual, open } };
});

const { blockKey } = await import('../../../mount-client/block-cache/block-key.ts');
const { BlockPool } = await import('../../../mount-client/block-cache/block-pool.ts');
const { CACHE_LAYOUT, DiskBlockStore } = await import('../../../mount-client/block-cache/disk-cache.ts');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  refuse.at = undefined;
});

const BS = 64 * 1024;
const object = { bucket: 'b', key: 'k', size: 3 * BS + 5000, etag: '"e"' };
const id = (index: number) => ({ object, index, blockSize: BS });
const len = (index: number) => Math.min(BS, object.size - index * BS);
const content = (index: number) =>
  Buffer.from(Array.from({ length: len(index) }, (_, i) => (i * 17 + index) % 251));

describe('DiskBlockStore buffered fallback (O_DIRECT refused)', () => {
  for (const at of ['open', 'write', 'probe'] as const) {
    it(`refused at ${at}: falls back once, with one log line, and every block serves (also after a remount)`, async () => {
      // Prepare
      refuse.at = at;
      const dir = mkdtempSync(join(tmpdir(), 'strata-fallback-'));
      dirs.push(dir);
      const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
      const s = await DiskBlockStore.open({
        dir,
        capacityBytes: 1e9,
        minFreeBytes: 0,
        log: (_level, msg, fields) => warnings.push({ msg, fields }),
      });
      const pool = new BlockPool(BS, 4, 64 * 1024 * 1024);
      const pooled = (i: number) => {
        const b = pool.acquire(len(i));
        content(i).copy(b);
        return b;
      };

      // Act: concurrent first writes (they all race into the refusal), then one more.
      await Promise.all([0, 1, 2, 3].map((i) => s.put(id(i), pooled(i))));
      await s.put(id(0), pooled(0));

      // Assess
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.msg).toMatch(/refused O_DIRECT.*--cache-dir on ext4 or xfs/);
      expect(warnings[0]?.fields).toMatchObject({ dir, at, code: 'EINVAL' });
      expect(s.stats()).toMatchObject({
        directIo: false,
        writeModes: { direct: 0, staged: 0, buffered: 5 },
        entries: 4,
      });
      expect(readdirSync(join(dir, CACHE_LAYOUT, 'tmp'))).toEqual([]);
      await s.close();
      refuse.at = undefined;
      const again = await DiskBlockStore.open({ dir, capacityBytes: 1e9, minFreeBytes: 0 });
      for (let i = 0; i < 4; i++) {
        expect((await again.get(id(i)))?.equals(content(i))).toBe(true);
        const into = Buffer.alloc(4096);
        expect(again.readSliceSync(id(i), blockKey(id(i)), 0, 4096, into)).toBe(4096);
        expect(into.equals(content(i).subarray(0, 4096))).toBe(true);
      }
      expect(await again.verify()).toMatchObject({ checked: 4, bad: 0 });
      await again.close();
    });
  }

  it('refused at open for a direct read (a remount onto such a filesystem): falls back once, every block serves buffered', async () => {
    // Prepare: blocks written (directly) by a first store; the filesystem refuses O_DIRECT after.
    const dir = mkdtempSync(join(tmpdir(), 'strata-fallback-'));
    dirs.push(dir);
    const first = await DiskBlockStore.open({ dir, capacityBytes: 1e9, minFreeBytes: 0 });
    const pool = new BlockPool(BS, 4, 64 * 1024 * 1024);
    for (let i = 0; i < 4; i++) {
      const b = pool.acquire(len(i));
      content(i).copy(b);
      await first.put(id(i), b);
    }
    await first.close();
    refuse.at = 'open';
    const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e9,
      minFreeBytes: 0,
      log: (_level, msg, fields) => warnings.push({ msg, fields }),
    });

    // Act: whole-block reads into pool buffers (the data path's read-ahead), concurrently.
    const got = await Promise.all(
      [0, 1, 2, 3].map((i) => s.get(id(i), blockKey(id(i)), pool.acquire(len(i)))),
    );

    // Assess
    for (let i = 0; i < 4; i++) expect(got[i]?.equals(content(i))).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/refused O_DIRECT.*read through the page cache/);
    expect(s.stats()).toMatchObject({ directIo: false, readModes: { direct: 0, buffered: 4 }, hits: 4 });
    await s.close();
  });

  it('directIo: false never tries O_DIRECT and logs nothing', async () => {
    refuse.at = 'open';
    const dir = mkdtempSync(join(tmpdir(), 'strata-fallback-'));
    dirs.push(dir);
    const warnings: string[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e9,
      minFreeBytes: 0,
      directIo: false,
      log: (_level, msg) => warnings.push(msg),
    });
    await s.put(id(3), content(3));
    expect(warnings).toEqual([]);
    expect(s.stats().writeModes).toEqual({ direct: 0, staged: 0, buffered: 1 });
    expect((await s.get(id(3)))?.equals(content(3))).toBe(true);
    await s.close();
  });
});
