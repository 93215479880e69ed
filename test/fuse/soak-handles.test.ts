/**
 * Long-running mounts: what an open/read/close workload leaves behind must not grow with the
 * number of operations (real FUSE, real local stack). After 500 more handles than a warm-up, the
 * handle map is empty, the mount process holds no more file descriptors than after the warm-up,
 * and no singleflight or pending-write map holds anything.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const MiB = 1024 * 1024;

interface Idle {
  openFiles: number;
  metadata: { inflight: number };
  dataPath: { inflight: { flights: number; pendingWrites: number; writes: number } };
}

describe.skipIf(skip)('a mount after many open/read/close cycles (real FUSE)', () => {
  let backend: Backend;
  let root: string;
  let mnt: string;
  let mount: MountProcess | undefined;
  const paths: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-soak-handles-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    const entries = Array.from({ length: 20 }, (_, i) => ({
      path: `/h/f${i}.bin`,
      bytes: randomBytes(5000 + i),
    }));
    entries.push({ path: '/h/big.bin', bytes: randomBytes(3 * MiB + 1) });
    await backend.putMany(entries);
    paths.push(...entries.map((e) => e.path));
  });

  afterAll(async () => {
    await mount?.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  /** `n` open → two reads (start and a random offset) → close cycles, 8 at a time. */
  async function cycles(n: number): Promise<void> {
    const limit = pLimit(8);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        limit(async () => {
          const path = join(mnt, paths[i % paths.length] as string);
          const fh = await open(path, 'r');
          try {
            const size = (await fh.stat()).size;
            const buf = Buffer.alloc(4096);
            await fh.read(buf, 0, buf.length, 0);
            await fh.read(buf, 0, buf.length, (i * 7919) % size);
          } finally {
            await fh.close();
          }
        }),
      ),
    );
  }

  /** The mount's descriptors: sockets, and everything else (files, /dev/fuse, pipes, epoll). */
  const fds = (pid: number) => {
    const targets = readdirSync(`/proc/${pid}/fd`).map((f) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${f}`);
      } catch {
        return 'closed';
      }
    });
    const sockets = targets.filter((t) => t.startsWith('socket:')).length;
    return { sockets, files: targets.length - sockets };
  };

  it('returns handles, fds and in-flight maps to their warm baseline', async () => {
    // Prepare: a warm mount (every file listed, its blocks cached, connections open)
    mount = await startMount(backend, mnt, join(root, 'cache'));
    const m = mount;
    const pid = m.child.pid as number;
    await stat(join(mnt, 'h'));
    await cycles(100);
    const idle = async () => {
      const s = (await m.stats()) as unknown as Idle;
      const d = s.dataPath.inflight;
      return s.openFiles + s.metadata.inflight + d.flights + d.pendingWrites + d.writes;
    };
    const deadline = Date.now() + 20_000;
    while ((await idle()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const baseline = fds(pid);

    // Act
    await cycles(500);

    // Assess: everything back at rest, no descriptor per handle left behind
    const settled = Date.now() + 20_000;
    while ((await idle()) > 0 && Date.now() < settled) await new Promise((r) => setTimeout(r, 100));
    expect(await idle()).toBe(0);
    // Sockets apart (this test's own /stats requests open keep-alive connections to the mount),
    // every descriptor of the warm mount is still the only one: none per handle or per read.
    const after = fds(pid);
    expect(after.files).toBeLessThanOrEqual(baseline.files);
    expect(after.sockets).toBeLessThanOrEqual(baseline.sockets + 2);
    expect(await m.stop()).toBe(0);
    mount = undefined;
  });
});
