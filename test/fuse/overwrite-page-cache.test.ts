/**
 * Two handles on one path across an overwrite, through a real mount (page-cache mode, the
 * default): the kernel caches pages per path, so without per-open direct_io (fuse/native.ts,
 * scripts/build-fuse-native.mjs) a handle on the new version was served pages an old handle
 * had read, and an old handle was cut short, without an error, at a newer, shorter size.
 * Either way a reader got bytes of no single version. Both were found by the mount soak.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { perOpenDirectIo } from '../../mount-client/fuse/native.ts';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
// libuv has no name for ESTALE (116 on Linux), so Node reports only the number.
const ESTALE = -116;

/** Reads `length` bytes at `pos`; an ESTALE is returned as such, anything else throws. */
async function readAt(fh: FileHandle, pos: number, length: number): Promise<Buffer | 'ESTALE'> {
  const buf = Buffer.alloc(length);
  try {
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).errno === ESTALE) return 'ESTALE';
    throw err;
  }
}

describe.skipIf(skip)('two handles on one path across an overwrite (real FUSE, page cache)', () => {
  let backend: Backend;
  let mount: MountProcess;
  let root: string;
  let mnt: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-fuse-pc-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    mount = await startMount(backend, mnt, join(root, 'cache'));
  });

  afterAll(async () => {
    await mount?.stop();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('the build made the addon that can open one handle direct_io', () => {
    // CI builds it at `npm ci` (postinstall); without it the rest of this file cannot hold.
    expect(perOpenDirectIo).toBe(true);
    expect(mount.log.join('\n')).not.toContain('was not rebuilt with per-open direct_io');
  });

  it('a handle on the new version never gets pages an old handle read, nor the reverse', async () => {
    const path = '/pc/same-size.bin';
    const v1 = randomBytes(4 * MiB);
    const v2 = randomBytes(4 * MiB);
    await backend.put(path, v1);
    await vi.waitFor(() => stat(join(mnt, path)), { timeout: 30_000, interval: 200 });
    const a = await open(join(mnt, path), 'r');
    try {
      // A reads the whole file: v1 is in the block cache and in the kernel's pages.
      expect(sha((await readAt(a, 0, v1.length)) as Buffer)).toBe(sha(v1));
      await backend.put(path, v2);
      // A fresh open sees v2 once the change feed is polled (~1 s; 30 s for a loaded machine).
      await vi.waitFor(async () => expect(sha(await readFile(join(mnt, path)))).toBe(sha(v2)), {
        timeout: 30_000,
        interval: 300,
      });
      const b = await open(join(mnt, path), 'r');
      try {
        for (const pos of [MiB, 3 * MiB, 0]) {
          // A reads on (old bytes, or ESTALE once they are not cached), then B the same range.
          const fromA = await readAt(a, pos, 256 * 1024);
          if (fromA !== 'ESTALE') expect(sha(fromA)).toBe(sha(v1.subarray(pos, pos + 256 * 1024)));
          const fromB = await readAt(b, pos, 256 * 1024);
          expect(fromB).not.toBe('ESTALE');
          expect(sha(fromB as Buffer)).toBe(sha(v2.subarray(pos, pos + 256 * 1024)));
        }
        expect(sha((await readAt(b, 0, v2.length)) as Buffer)).toBe(sha(v2));
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
    // With the old handle gone, the page cache serves the new version to new readers.
    expect(sha(await readFile(join(mnt, path)))).toBe(sha(v2));
  });

  it('a longer version is whole to a new reader that trusts st_size; the old handle ends with its bytes or ESTALE, never padding', async () => {
    const path = '/pc/grows.bin';
    const v1 = randomBytes(MiB + 1000);
    const v4 = randomBytes(3 * MiB);
    await backend.put(path, v1);
    await vi.waitFor(() => stat(join(mnt, path)), { timeout: 30_000, interval: 200 });
    const a = await open(join(mnt, path), 'r');
    const parts: Buffer[] = [];
    let estale = false;
    try {
      parts.push((await readAt(a, 0, 128 * 1024)) as Buffer);
      await backend.put(path, v4);
      // readFile sizes its buffer from fstat: a new reader must get all of v4, not v1's length.
      await vi.waitFor(async () => expect(sha(await readFile(join(mnt, path)))).toBe(sha(v4)), {
        timeout: 30_000,
        interval: 300,
      });
      for (let pos = 128 * 1024; pos < v4.length; pos += 256 * 1024) {
        const got = await readAt(a, pos, 256 * 1024);
        if (got === 'ESTALE') {
          estale = true;
          break;
        }
        if (got.length === 0) break;
        parts.push(got);
      }
    } finally {
      await a.close();
    }
    const read = Buffer.concat(parts);
    // Never more than v1 (no zeros past its end), and what was read is v1's bytes.
    expect(read.length).toBeLessThanOrEqual(v1.length);
    expect(sha(read)).toBe(sha(v1.subarray(0, read.length)));
    if (!estale) expect(read.length).toBe(v1.length);
  });

  it('an old handle is not cut short when the file is replaced by a shorter version', async () => {
    const path = '/pc/shrinks.bin';
    const v1 = randomBytes(4 * MiB);
    const v3 = randomBytes(512 * 1024);
    await backend.put(path, v1);
    await vi.waitFor(() => stat(join(mnt, path)), { timeout: 30_000, interval: 200 });
    const a = await open(join(mnt, path), 'r');
    const parts: Buffer[] = [];
    let estale = false;
    try {
      const first = await readAt(a, 0, 128 * 1024);
      parts.push(first as Buffer);
      await backend.put(path, v3);
      await vi.waitFor(async () => expect(sha(await readFile(join(mnt, path)))).toBe(sha(v3)), {
        timeout: 30_000,
        interval: 300,
      });
      // Let the kernel's attribute cache (1 s) expire and ask again: a stat now reaches the mount,
      // and it is what used to set the inode's size to the new, shorter one.
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1_100));
        await stat(join(mnt, path));
      }
      for (let pos = 128 * 1024; pos < v1.length; pos += 256 * 1024) {
        const got = await readAt(a, pos, 256 * 1024);
        if (got === 'ESTALE') {
          estale = true;
          break;
        }
        parts.push(got);
      }
    } finally {
      await a.close();
    }
    // The old handle reads its whole version, or stops with ESTALE: never a silent short file.
    if (!estale) expect(sha(Buffer.concat(parts))).toBe(sha(v1));
    else expect(sha(v1.subarray(0, Buffer.concat(parts).length))).toBe(sha(Buffer.concat(parts)));
    // Closed: the path's attributes are the new version's.
    await vi.waitFor(async () => expect((await stat(join(mnt, path))).size).toBe(v3.length), {
      timeout: 30_000,
      interval: 300,
    });
  });
});
