/**
 * Peer block sharing between real `strata mount` processes on this machine: three mounts over one S3
 * emulator and API, each with its own cache dir and peer port, sharing blocks through --peers.
 * S3 GETs are counted per mount from its /stats endpoint.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
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
// The mounts run with --block-size 1M (support/mount-process.ts).
const blocks = (bytes: number) => Math.ceil(bytes / MiB);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SECRET = 'fuse-peer-test-secret-0123456789abcdef';

/**
 * A port that was free a moment ago: the mounts must know each other's ports before they start, so
 * another process may take one in between — beforeAll then starts the fleet again on fresh ports.
 */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface PeerSection {
  running: boolean;
  hits: number;
  members: Array<{ address: string; live: boolean }>;
}

/**
 * A new file reaches a running mount through the change feed (polled about once a second), so a
 * test waits until every mount sees it before reading — as a user of a fresh upload would.
 */
async function visibleIn(mountpoints: string[], path: string): Promise<void> {
  for (const m of mountpoints) {
    await vi.waitFor(() => stat(join(m, path)), { timeout: 15_000, interval: 100 });
  }
}

async function s3Gets(m: MountProcess): Promise<number> {
  return (await m.stats()).dataPath.s3.gets ?? 0;
}

/** sha256 of a file read through the mount with a stream, calling `at` as bytes go by. */
async function streamSha(path: string, at?: (bytesSoFar: number) => void): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) {
    h.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    at?.(n);
  }
  return h.digest('hex');
}

describe.skipIf(skip)('peer block sharing between real mounts', () => {
  let backend: Backend;
  let root: string;
  const names = ['a', 'b', 'c'] as const;
  const ports = new Map<string, number>();
  const mounts = new Map<string, MountProcess>();
  const mnt = (n: string) => join(root, `mnt-${n}`);

  async function mountNode(n: string): Promise<MountProcess> {
    const peers = names.map((x) => `127.0.0.1:${ports.get(x)}`).join(',');
    const m = await startMount(
      backend,
      mnt(n),
      join(root, `cache-${n}`),
      // --peer-timeout 5000: the GET-count assertions measure placement; on a loaded CI machine a
      // live owner can miss the default 1 s, fall back to S3 and add a GET. The connect wait follows
      // it (1.25 s here): at a fixed 250 ms a busy reader ejected a live owner and the owner's share
      // of the file then cost the owner 21-25 GETs of its own (2 runs in 13).
      ['--peers', peers, '--peer-listen', `127.0.0.1:${ports.get(n)}`, '--peer-timeout', '5000'],
      { STRATA_PEER_SECRET: SECRET },
    );
    mounts.set(n, m);
    return m;
  }

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-fuse-peers-'));
    backend = await startBackend();
    for (const n of names) mkdirSync(mnt(n));
    for (let attempt = 1; ; attempt++) {
      for (const n of names) ports.set(n, await freePort());
      const started = await Promise.allSettled(names.map((n) => mountNode(n)));
      const failed = started.find((r) => r.status === 'rejected');
      if (!failed) break;
      for (const m of mounts.values()) await m.stop().catch(() => undefined);
      mounts.clear();
      if (attempt === 3 || !/in use/.test(String(failed.reason))) throw failed.reason;
    }
  });

  afterAll(async () => {
    for (const m of mounts.values()) await m.stop().catch(() => undefined);
    for (const n of names) await run('fusermount', ['-uz', mnt(n)]).catch(() => undefined);
    await backend?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('never logs the peer secret', () => {
    for (const m of mounts.values()) {
      expect(m.log.join('\n')).toContain('peer sharing on');
      expect(m.log.join('\n')).not.toContain(SECRET);
    }
  });

  it('B and C read a 64 MiB file A read first with no S3 GETs of their own', async () => {
    // Prepare
    const bytes = randomBytes(64 * MiB);
    await backend.put('/shared/64mib.bin', bytes);
    await visibleIn(['a', 'b', 'c'].map(mnt), 'shared/64mib.bin');
    const all = names.map((n) => mounts.get(n)!);
    const before = await Promise.all(all.map(s3Gets));
    // Act
    const gotA = await readFile(join(mnt('a'), 'shared/64mib.bin'));
    const afterA = await Promise.all(all.map(s3Gets));
    const gotB = await readFile(join(mnt('b'), 'shared/64mib.bin'));
    const gotC = await readFile(join(mnt('c'), 'shared/64mib.bin'));
    const after = await Promise.all(all.map(s3Gets));
    // Assess: A's read cost one GET per block across the fleet (owners read through for A);
    // B and C then read everything from their caches or a peer's
    expect([sha(gotA), sha(gotB), sha(gotC)]).toEqual([sha(bytes), sha(bytes), sha(bytes)]);
    const fleetGetsForA = afterA.reduce((s, g, i) => s + g - before[i]!, 0);
    expect(fleetGetsForA).toBe(blocks(bytes.length));
    expect(after).toEqual(afterA);
    // The mount's /stats JSON carries the peer tier: B's hits, and the other members it sees
    const stats = (await mounts.get('b')!.stats()) as unknown as { peers: PeerSection };
    expect(stats.peers.running).toBe(true);
    expect(stats.peers.hits).toBeGreaterThan(0);
    expect(stats.peers.members.map((m) => m.address).sort()).toEqual(
      ['a', 'c'].map((n) => `127.0.0.1:${ports.get(n)}`).sort(),
    );
  });

  it('a cold fleet reading one file at once costs about one S3 GET per block', async () => {
    // Prepare
    const bytes = randomBytes(24 * MiB);
    await backend.put('/cold/24mib.bin', bytes);
    await visibleIn(['a', 'b', 'c'].map(mnt), 'cold/24mib.bin');
    const all = names.map((n) => mounts.get(n)!);
    const before = await Promise.all(all.map(s3Gets));
    // Act
    const hashes = await Promise.all(names.map((n) => streamSha(join(mnt(n), 'cold/24mib.bin'))));
    // Assess
    expect(hashes).toEqual(names.map(() => sha(bytes)));
    const after = await Promise.all(all.map(s3Gets));
    const total = after.reduce((s, g, i) => s + g - before[i]!, 0);
    expect(total).toBeGreaterThanOrEqual(blocks(bytes.length));
    expect(total).toBeLessThanOrEqual(Math.ceil(blocks(bytes.length) * 1.1));
  });

  it('a peer killed mid-read, then restarted during reads: every read correct', async () => {
    // Prepare
    const first = randomBytes(24 * MiB);
    const second = randomBytes(16 * MiB);
    await backend.put('/kill/first.bin', first);
    await visibleIn(['a', 'b', 'c'].map(mnt), 'kill/first.bin');
    await backend.put('/kill/second.bin', second);
    await visibleIn(['a', 'b', 'c'].map(mnt), 'kill/second.bin');
    const b = mounts.get('b')!;
    // Act: C streams the file; at 4 MiB, B is SIGKILLed (it leaves without a goodbye)
    let killing: Promise<void> | undefined;
    const gotC = await streamSha(join(mnt('c'), 'kill/first.bin'), (n) => {
      if (n >= 4 * MiB) killing ??= b.kill();
    });
    await killing;
    expect(gotC).toBe(sha(first));
    expect(sha(await readFile(join(mnt('a'), 'kill/first.bin')))).toBe(sha(first));
    // B comes back on the same port and cache while A and C read the second file (a join)
    await run('fusermount', ['-uz', mnt('b')]).catch(() => undefined);
    const reading = Promise.all([
      streamSha(join(mnt('a'), 'kill/second.bin')),
      streamSha(join(mnt('c'), 'kill/second.bin')),
    ]);
    await mountNode('b');
    // Assess
    expect(await reading).toEqual([sha(second), sha(second)]);
    expect(sha(await readFile(join(mnt('b'), 'kill/second.bin')))).toBe(sha(second));
    // A and C probe B back in (backoff from 1 s) and count it live again.
    for (const n of ['a', 'c']) {
      await vi.waitFor(
        async () => expect(await mounts.get(n)!.metrics()).toMatch(/strata_peer_members\{state="live"\} 2/),
        { timeout: 40_000, interval: 500 },
      );
    }
  });
});
