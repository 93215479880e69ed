/**
 * Lent blocks through a real mount (fuse/lender.ts, scripts/build-fuse-native.mjs): the addon
 * answers a streaming reader's reads inside a block JavaScript lent it, on the FUSE thread. Every
 * byte must be what JavaScript would have returned — across block ends, the file's unaligned tail,
 * seeks back into lent blocks, concurrent handles — the blocks must all be taken back when the
 * handles close, and the mount's counters must still count every byte read.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface LendingStats {
  lentBlocks: { blocks: number; lent: number; refused: number; reads: number; bytes: number } | null;
  dataPath: { reads: { now: number; waited: number; lent: number } };
}

describe.skipIf(skip)('lent reads (real FUSE)', () => {
  let backend: Backend;
  let lending: MountProcess;
  let plain: MountProcess;
  let root: string;
  const files = new Map<string, Buffer>();
  // 20 MiB and an unaligned tail: the last block is short and the last kernel read runs past EOF.
  const stream = randomBytes(20 * MiB + 12_345);

  const at = (m: string, path: string) => join(root, m, path);
  const stats = async (m: MountProcess) => (await m.stats()) as unknown as LendingStats;
  const sha256sum = async (file: string) => (await run('sha256sum', [file])).stdout.split(' ')[0];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-fuse-lent-'));
    for (const m of ['lending', 'plain']) mkdirSync(join(root, m));
    backend = await startBackend();
    files.set('/lent/stream.bin', stream);
    for (let i = 0; i < 6; i++) files.set(`/lent/f${i}.bin`, randomBytes(6 * MiB + i * 1000));
    for (const [path, bytes] of files) await backend.put(path, bytes);
    lending = await startMount(backend, join(root, 'lending'), join(root, 'cache-lending'));
    plain = await startMount(backend, join(root, 'plain'), join(root, 'cache-plain'), ['--no-lent-reads']);
  });

  afterAll(async () => {
    await lending?.stop();
    await plain?.stop();
    for (const m of ['lending', 'plain'])
      await run('fusermount', ['-uz', join(root, m)]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('a streaming read is answered in part by the addon, byte-exact, and every block is taken back at close', async () => {
    const before = await stats(lending);
    expect(before.lentBlocks).toMatchObject({ blocks: 0 });
    // Cold (from S3), then again (from the memory tier): both through lent blocks once in memory.
    expect(await sha256sum(at('lending', '/lent/stream.bin'))).toBe(sha(stream));
    expect(await sha256sum(at('lending', '/lent/stream.bin'))).toBe(sha(stream));
    // The handle's release reaches the mount just after the reader exits.
    await vi.waitFor(async () => expect((await stats(lending)).lentBlocks?.blocks).toBe(0), {
      timeout: 20_000,
      interval: 100,
    });
    const after = await stats(lending);
    const lent = after.lentBlocks as NonNullable<LendingStats['lentBlocks']>;
    expect(lent.lent).toBeGreaterThan(0);
    expect(lent.reads).toBeGreaterThan(0);
    expect(after.dataPath.reads.lent).toBe(lent.reads);
    // Bytes read count every byte, whoever answered the read.
    const metrics = await lending.metrics();
    const readBytes = Number(/^strata_read_bytes_total (\d+)/m.exec(metrics)?.[1]);
    expect(readBytes).toBeGreaterThanOrEqual(2 * stream.length);
  });

  it('seeks back into lent blocks, block-straddling reads and the unaligned tail return the exact bytes', async () => {
    const fh = await open(at('lending', '/lent/stream.bin'), 'r');
    try {
      const buf = Buffer.alloc(128 * KiB);
      // A stream over the first 3 MiB lends its blocks...
      for (let pos = 0; pos < 3 * MiB; pos += buf.length) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        expect(sha(buf.subarray(0, bytesRead))).toBe(sha(stream.subarray(pos, pos + buf.length)));
      }
      // ...then reads back inside them, across a block end, and over the end of the file.
      const probes: Array<[number, number]> = [
        [MiB + 4096, 4096],
        [2 * MiB - 100, 200],
        [3 * MiB - 64 * KiB, 128 * KiB],
        [stream.length - 5000, 64 * KiB],
        [stream.length, 4096],
      ];
      for (const [pos, len] of probes) {
        const out = Buffer.alloc(len);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(out, got, len - got, pos + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        expect(got).toBe(Math.max(0, Math.min(len, stream.length - pos)));
        expect(sha(out.subarray(0, got))).toBe(sha(stream.subarray(pos, pos + got)));
      }
    } finally {
      await fh.close();
    }
  });

  it('six concurrent streams of different files each read back byte-exact', async () => {
    const names = [...files.keys()].filter((p) => p.includes('/f'));
    const got = await Promise.all(names.map((p) => sha256sum(at('lending', p))));
    expect(got).toEqual(names.map((p) => sha(files.get(p) as Buffer)));
    await vi.waitFor(async () => expect((await stats(lending)).lentBlocks?.blocks).toBe(0), {
      timeout: 20_000,
      interval: 100,
    });
    expect((await stat(at('lending', '/lent/f5.bin'))).size).toBe(6 * MiB + 5000);
  });

  it('a page-cache handle on a version replaced by a longer one is not answered short at its own end (ESTALE, as in JavaScript)', async () => {
    // The addon answered a read running past a lent block that ends the file with the bytes up to
    // the end; for a page-cache handle on an old, shorter version the kernel then pads the page
    // with zeros or sets the path's size back to the old one, so new readers get a cut copy of
    // the new version (strata-fs.ts, pastOwnEnd). Such reads must reach JavaScript.
    const path = '/lent/grows.bin';
    // One block (the mounts use 1 MiB blocks) that ends the file.
    const v1 = randomBytes(512 * KiB + 1000);
    const v2 = randomBytes(3 * MiB);
    await backend.put(path, v1);
    await vi.waitFor(() => stat(at('lending', path)), { timeout: 30_000, interval: 200 });
    const lentBefore = (await stats(lending)).lentBlocks?.lent ?? 0;
    const a = await open(at('lending', path), 'r');
    try {
      // A stream's first read: JavaScript answers it and lends v1's only block (the file's end).
      const head = Buffer.alloc(128 * KiB);
      await a.read(head, 0, head.length, 0);
      expect(sha(head)).toBe(sha(v1.subarray(0, head.length)));
      expect((await stats(lending)).lentBlocks?.lent).toBeGreaterThan(lentBefore);
      await backend.put(path, v2);
      // The kernel learns the longer size (the old handle's pages are dropped with it).
      await vi.waitFor(async () => expect((await stat(at('lending', path))).size).toBe(v2.length), {
        timeout: 30_000,
        interval: 300,
      });
      // The old handle reads across its own end: ESTALE, or v1's last bytes — never zeros.
      const tail = Buffer.alloc(128 * KiB);
      const got = await a.read(tail, 0, tail.length, 512 * KiB).then(
        ({ bytesRead }) => tail.subarray(0, bytesRead),
        (err: NodeJS.ErrnoException) => {
          if (err.errno === -116) return 'ESTALE' as const; // libuv has no name for ESTALE
          throw err;
        },
      );
      if (got !== 'ESTALE') expect(sha(got)).toBe(sha(v1.subarray(512 * KiB)));
      // And the path still has the new version's size: a reader that trusts st_size gets all of v2.
      expect((await stat(at('lending', path))).size).toBe(v2.length);
      expect(sha(await readFile(at('lending', path)))).toBe(sha(v2));
    } finally {
      await a.close();
    }
  });

  it('--no-lent-reads answers every read in JavaScript, with the same bytes', async () => {
    expect(await sha256sum(at('plain', '/lent/stream.bin'))).toBe(sha(stream));
    const s = await stats(plain);
    expect(s.lentBlocks).toBeNull();
    expect(s.dataPath.reads.lent).toBe(0);
    expect(plain.log.join('\n')).not.toContain('"level":"error"');
  });
});
