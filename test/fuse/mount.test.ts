/**
 * Real FUSE mounts of `strata mount` (child process) over a real S3 emulator and an HTTP API v1:
 * byte-exact reads at block boundaries, random preads, concurrent readers, large directories,
 * tricky names, the by-date view, xattrs, read-only enforcement and overwrite-while-open.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const MiB = 1024 * 1024;
const BLOCK = MiB; // the mount runs with --block-size 1M, so boundaries are cheap to cross
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip)('strata mount (real FUSE)', () => {
  let backend: Backend;
  let mount: MountProcess;
  let root: string;
  let mnt: string;
  const files = new Map<string, Buffer>();
  const big = randomBytes(50 * MiB);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-fuse-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    const sizes = { empty: 0, one: 1, blockMinus1: BLOCK - 1, block: BLOCK, blockPlus1: BLOCK + 1 };
    for (const [name, size] of Object.entries(sizes)) files.set(`/sizes/${name}.bin`, randomBytes(size));
    files.set('/big/50mib.bin', big);
    for (const name of [
      'with space.txt',
      'plus+sign.txt',
      'per%cent.txt',
      'hash#tag.txt',
      'what?.txt',
      'café.txt',
      '日本語.txt',
      '🎉 party.txt',
    ]) {
      files.set(`/tricky/${name}`, Buffer.from(`content of ${name}`));
    }
    for (const [path, bytes] of files)
      await backend.put(path, bytes, path.startsWith('/tricky') ? '2024-06-01' : '2024-05-01');
    // 10,000 entries through the indexer's write path: readdir and stat never touch S3.
    await backend.indexOnly(
      Array.from({ length: 10_000 }, (_, i) => ({
        path: `/many/f${String(i).padStart(5, '0')}.dat`,
        size: i,
        etag: `m${i}`,
        date: '2024-05-02',
      })),
    );
    // A key `a` and a key under `a/`, as S3 allows when written straight to the bucket (the upload
    // API refuses this with 409 path_conflict): the index holds a file and a directory of one name.
    await backend.indexOnly([
      { path: '/clash/a', size: 3, etag: 'c1', date: '2024-05-02' },
      { path: '/clash/a/inner.txt', size: 4, etag: 'c2', date: '2024-05-02' },
    ]);
    mount = await startMount(backend, mnt, join(root, 'cache'));
  });

  afterAll(async () => {
    await mount?.stop();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('reads files at block boundaries and a 50 MiB file back byte-exact (sha256)', async () => {
    for (const [path, bytes] of files) {
      const got = await readFile(join(mnt, path));
      expect(got.length, path).toBe(bytes.length);
      expect(sha(got), path).toBe(sha(bytes));
    }
    const s = await stat(join(mnt, '/sizes/blockPlus1.bin'));
    expect(s.size).toBe(BLOCK + 1);
    expect(s.mode & 0o777).toBe(0o444);
    expect(s.uid).toBe(process.getuid?.());
  });

  it('serves random preads across block boundaries', async () => {
    const fh = await open(join(mnt, '/big/50mib.bin'), 'r');
    try {
      for (let i = 0; i < 200; i++) {
        const length = 1 + Math.floor(Math.random() * 300_000);
        const position = Math.floor(Math.random() * (big.length - 1));
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, position);
        expect(bytesRead).toBe(Math.min(length, big.length - position));
        expect(buf.subarray(0, bytesRead).equals(big.subarray(position, position + bytesRead))).toBe(true);
      }
    } finally {
      await fh.close();
    }
  });

  it('serves 4 concurrent readers of one file', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => run('sha256sum', [join(mnt, '/big/50mib.bin')], { maxBuffer: MiB })),
    );
    for (const r of results) expect(r.stdout.split(' ')[0]).toBe(sha(big));
  });

  it('lists a 10,000-entry directory with sizes from the listing', async () => {
    const names = await readdir(join(mnt, 'many'));
    expect(names.length).toBe(10_000);
    expect(names[0]).toBe('f00000.dat');
    const before = (await mount.stats()).metadata;
    const { stdout } = await run('ls', ['-l', join(mnt, 'many')], { maxBuffer: 16 * MiB });
    expect(stdout).toMatch(/ 9999 .* f09999\.dat/);
    const after = (await mount.stats()).metadata;
    // Attributes came from the cached listing: no per-entry resolve.
    expect((after.apiResolves ?? 0) - (before.apiResolves ?? 0)).toBeLessThan(5);
  });

  it('a file and a directory of one name show once, as the directory (what Mountpoint does)', async () => {
    expect(await readdir(join(mnt, 'clash'))).toEqual(['a']);
    expect((await stat(join(mnt, 'clash/a'))).isDirectory()).toBe(true);
    expect(await readdir(join(mnt, 'clash/a'))).toEqual(['inner.txt']);
    // The by-date view too (the file came first there, and loading the day failed with a TypeError).
    expect(await readdir(join(mnt, '.by-date/2024-05-02/clash'))).toEqual(['a']);
    expect(await readdir(join(mnt, '.by-date/2024-05-02/clash/a'))).toEqual(['inner.txt']);
  });

  it('handles names with spaces, +, %, #, ?, unicode and emoji', async () => {
    const names = await readdir(join(mnt, 'tricky'));
    for (const path of files.keys()) {
      if (!path.startsWith('/tricky/')) continue;
      expect(names).toContain(path.slice(8));
      expect((await readFile(join(mnt, path))).toString()).toBe(files.get(path)?.toString());
    }
  });

  it('exposes the hidden /.by-date/ view and etag/sha256 xattrs', async () => {
    expect(await readdir(mnt)).not.toContain('.by-date');
    expect(await readdir(join(mnt, '.by-date'))).toEqual(['2024-05-01', '2024-05-02', '2024-06-01']);
    expect((await readdir(join(mnt, '.by-date/2024-06-01/tricky'))).length).toBe(8);
    const viaDate = await readFile(join(mnt, '.by-date/2024-05-01/sizes/blockPlus1.bin'));
    expect(sha(viaDate)).toBe(sha(files.get('/sizes/blockPlus1.bin') as Buffer));
    const { stdout } = await run('python3', [
      '-c',
      [
        'import errno,os,sys; p=sys.argv[1]',
        // security.* / system.* are EOPNOTSUPP (ls -l then stops asking per file) and must not
        // switch xattrs off for the mount: user.strata.* still answers afterwards.
        'for n in ("security.selinux", "system.posix_acl_access"):',
        '  try: os.getxattr(p, n); print("unexpected value", n)',
        '  except OSError as e: print(n, "EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else e.errno)',
        'print(sorted(os.listxattr(p))); print(os.getxattr(p, "user.strata.sha256").decode())',
      ].join('\n'),
      join(mnt, 'sizes/one.bin'),
    ]);
    expect(stdout).toContain('security.selinux EOPNOTSUPP');
    expect(stdout).toContain('system.posix_acl_access EOPNOTSUPP');
    expect(stdout).toContain("['user.strata.etag', 'user.strata.sha256']");
    expect(stdout).toContain(sha(files.get('/sizes/one.bin') as Buffer));
  });

  it('refuses every modification with EROFS', async () => {
    const target = join(mnt, 'sizes/one.bin');
    await expect(writeFile(target, 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(writeFile(join(mnt, 'new.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(mkdir(join(mnt, 'dir'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(unlink(target)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(rename(target, join(mnt, 'sizes/two.bin'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(open(target, 'r+')).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('an overwrite while open never yields mixed bytes, and the new version appears within seconds', async () => {
    const path = '/overwrite/file.bin';
    const v1 = randomBytes(6 * BLOCK);
    const v2 = randomBytes(6 * BLOCK);
    await backend.put(path, v1);
    // The change feed is polled about once a second; 30 s leaves room for a loaded machine.
    await vi.waitFor(() => stat(join(mnt, path)), { timeout: 30_000, interval: 200 });
    const fh = await open(join(mnt, path), 'r');
    const parts: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    try {
      const first = Buffer.alloc(128 * 1024);
      await fh.read(first, 0, first.length, 0);
      parts.push(first);
      await backend.put(path, v2);
      for (let pos = first.length; pos < v1.length; pos += 128 * 1024) {
        const buf = Buffer.alloc(128 * 1024);
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        parts.push(buf.subarray(0, bytesRead));
      }
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    } finally {
      await fh.close();
    }
    // libuv has no name for ESTALE (116 on Linux), so Node reports only the number.
    if (error) expect(error.errno).toBe(-116);
    else expect(sha(Buffer.concat(parts))).toBe(sha(v1));
    // A fresh open sees the new version once the change feed has been polled (~1 s).
    await vi.waitFor(
      async () => {
        expect(sha(await readFile(join(mnt, path)))).toBe(sha(v2));
      },
      { timeout: 30_000, interval: 300 },
    );
  });
});
