/**
 * Mount lifecycle over real FUSE: a remount serves cached blocks with zero S3 GETs, a corrupted
 * cache block is detected and refetched, injected S3 faults never surface as wrong bytes, and a
 * SIGKILLed mount is recovered by the next `strata mount` on the same mountpoint; `strata unmount`
 * ends a mount cleanly; `--presign` reads with no AWS credentials at all.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMounted } from '../../mount-client/mount.ts';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const ROOT = resolve(import.meta.dirname, '../..');
const NODE = existsSync(join(ROOT, 'node_modules/.bin/node'))
  ? join(ROOT, 'node_modules/.bin/node')
  : process.execPath;

async function blockFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.blk')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe.skipIf(skip)('strata mount lifecycle (real FUSE)', () => {
  let backend: Backend;
  let root: string;
  let mnt: string;
  let cache: string;
  const mounts: MountProcess[] = [];
  const data = randomBytes(5 * MiB + 123);

  const mount = async (extra: string[] = [], env: Record<string, string> = {}, cacheDir = cache) => {
    const m = await startMount(backend, mnt, cacheDir, extra, env);
    mounts.push(m);
    return m;
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-fuse-life-'));
    mnt = join(root, 'mnt');
    cache = join(root, 'cache');
    mkdirSync(mnt);
    backend = await startBackend();
    await backend.put('/data/file.bin', data);
  });

  afterAll(async () => {
    for (const m of mounts) await m.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('a remount serves cached blocks with zero S3 GETs', async () => {
    const first = await mount();
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    expect((await first.stats()).dataPath.s3.gets).toBeGreaterThan(0);
    expect(await first.stop()).toBe(0);

    const second = await mount();
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    const stats = await second.stats();
    expect(stats.dataPath.s3.gets).toBe(0);
    expect(await second.metrics()).toMatch(/strata_fuse_op_duration_seconds_count\{op="read"\} [1-9]/);
    await second.stop();
  });

  it('a corrupted cache block is detected, dropped and refetched with the right bytes', async () => {
    const blocks = await blockFiles(cache);
    expect(blocks.length).toBeGreaterThan(0);
    const victim = blocks[0] as string;
    const bytes = await readFile(victim);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    await writeFile(victim, bytes);

    const m = await mount();
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    const stats = await m.stats();
    expect(stats.dataPath.disk.corrupt).toBeGreaterThanOrEqual(1);
    expect(stats.dataPath.s3.gets).toBeGreaterThanOrEqual(1);
    await m.stop();
  });

  it('reads stay byte-exact with 5% S3 errors and 5% timeouts injected', async () => {
    const m = await mount(
      [],
      { STRATA_S3_FAULTS: JSON.stringify({ errorRate: 0.05, timeoutRate: 0.05 }) },
      join(root, 'cold'),
    );
    const big = randomBytes(20 * MiB);
    await backend.put('/data/faulty.bin', big);
    for (let i = 0; i < 2; i++) {
      expect(sha(await readFile(join(mnt, 'data/faulty.bin')))).toBe(sha(big));
    }
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    await m.stop();
  });

  it('a SIGKILLed mount is recovered by the next strata mount on the same mountpoint', async () => {
    const killed = await mount();
    await readFile(join(mnt, 'data/file.bin'));
    await killed.kill();
    const next = await mount();
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    await next.stop();
  });

  it('strata unmount ends a mount: the mount process notices and exits 0', async () => {
    const m = await mount();
    await readFile(join(mnt, 'data/file.bin'));
    const cli = async (...args: string[]) =>
      run(NODE, [join(ROOT, 'bin/strata.js'), '--json', ...args], {
        cwd: ROOT,
        env: { ...process.env, STRATA_DEV_JSON: '/nonexistent' },
      });
    const { stdout } = await cli('unmount', mnt);
    expect(JSON.parse(stdout)).toEqual({ mountpoint: mnt, unmounted: true });
    // The mount process notices within ~1 s and exits by itself (no signal sent); 30 s of slack.
    const deadline = Date.now() + 30_000;
    while (m.child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(m.child.exitCode).toBe(0);
    expect(m.log.some((l) => l.includes('the mount was removed externally'))).toBe(true);
    expect(isMounted(mnt)).toBe(false);
    // Unmounting again is not an error, and says so.
    expect(JSON.parse((await cli('unmount', mnt)).stdout)).toEqual({ mountpoint: mnt, unmounted: false });
  });

  it('--cache-writes direct (default) does block I/O with O_DIRECT, buffered through the page cache; both remount with zero S3 GETs', async () => {
    type Modes = { direct: number; staged: number; buffered: number };
    type Disk = { writeModes: Modes; readModes: { direct: number; buffered: number } };
    const disk = async (m: MountProcess) => (await m.stats()).dataPath.disk as unknown as Disk;
    for (const mode of ['buffered', 'direct'] as const) {
      const args = mode === 'buffered' ? ['--cache-writes', 'buffered'] : [];
      const dir = join(root, `writes-${mode}`);
      const first = await mount(args, {}, dir);
      expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
      const written = (await disk(first)).writeModes;
      if (mode === 'direct') expect(written.direct + written.staged).toBeGreaterThan(0);
      else expect(written).toMatchObject({ direct: 0, staged: 0 });
      expect(written.direct + written.staged + written.buffered).toBeGreaterThan(0);
      await first.stop(); // flushes pending cache writes
      // A remount in the same mode reads the file from the disk cache alone; in direct mode the
      // sequential read is read ahead from disk by O_DIRECT whole-block reads.
      const second = await mount(args, {}, dir);
      expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
      const st = await second.stats();
      expect(st.dataPath.s3.gets).toBe(0);
      const read = (st.dataPath.disk as unknown as Disk).readModes;
      if (mode === 'direct') expect(read.direct).toBeGreaterThan(0);
      else expect(read.direct).toBe(0);
      await second.stop();
    }
  });

  it('--direct-io reads byte-exact with the page cache bypassed (a shared mmap is refused, as documented)', async () => {
    // A MAP_SHARED mmap is the observable difference: FUSE refuses it (ENODEV) on direct_io files
    // because libfuse 2 cannot negotiate coherent mmap; without --direct-io it works.
    const mmapRead = async () =>
      (
        await run('python3', [
          '-c',
          [
            'import errno, mmap, sys',
            'f = open(sys.argv[1], "rb")',
            'try: m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ); print("mapped", len(m[:4096]))',
            'except OSError as e: print("ENODEV" if e.errno == errno.ENODEV else e.errno)',
          ].join('\n'),
          join(mnt, 'data/file.bin'),
        ])
      ).stdout.trim();
    const plain = await mount([], {}, join(root, 'dio-cache'));
    expect(await mmapRead()).toBe('mapped 4096');
    await plain.stop();

    const m = await mount(['--direct-io'], {}, join(root, 'dio-cache'));
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    expect(await mmapRead()).toBe('ENODEV');
    await m.stop();
  });

  it('--presign reads through API-issued URLs with no AWS credentials on the node', async () => {
    // No credentials anywhere in the provider chain: IAM mode could not sign a single request.
    const noCredentials = {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_SESSION_TOKEN: '',
      AWS_PROFILE: '',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const m = await mount(['--presign'], noCredentials, join(root, 'presign-cache'));
    expect(sha(await readFile(join(mnt, 'data/file.bin')))).toBe(sha(data));
    const stats = await m.stats();
    expect(stats.dataPath.s3.gets).toBeGreaterThan(0);
    expect(stats.metadata.apiResolves).toBeGreaterThan(0);
    await m.stop();
  });
});
