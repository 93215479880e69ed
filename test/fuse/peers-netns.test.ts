/**
 * Peers on "separate hosts": the owner is a real `strata mount` in its own network namespace
 * (`ip netns`, joined to this one by a veth pair), the reader a client-only mount here. Every block
 * the reader gets crosses the veth link from the other namespace, none comes from S3.
 *
 * The local stack (API + S3 emulator) binds 127.0.0.1 of this namespace; the owner reaches it
 * through a small TCP forwarder bound to this side's veth address only (a private /30 link).
 * Needs root (or CAP_NET_ADMIN) for `ip netns`; skipped with one line where that is not permitted.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missing } from '../support/requirements.ts';
import { AWS_ENV, type Backend, REGION, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SECRET = 'netns-peer-test-secret-0123456789abcdef';
const ROOT = resolve(import.meta.dirname, '../..');
const NODE = existsSync(join(ROOT, 'node_modules/.bin/node'))
  ? join(ROOT, 'node_modules/.bin/node')
  : process.execPath;

// A random private /30 and names per run, so parallel runs never collide.
const tag = randomBytes(3).toString('hex');
const NS = `strata-${tag}`;
const VETH_HOST = `sh${tag}`;
const VETH_NS = `sn${tag}`;
const NET = `10.${randomInt(200, 250)}.${randomInt(0, 256)}`;
const HOST_IP = `${NET}.1`;
const NS_IP = `${NET}.2`;
const PEER_PORT = 7431;

async function netnsUnavailable(): Promise<string | undefined> {
  const probe = `strata-probe-${tag}`;
  try {
    await run('ip', ['netns', 'add', probe]);
    await run('ip', ['netns', 'del', probe]);
    return undefined;
  } catch (err) {
    return `ip netns is not permitted here (${(err as Error).message.split('\n')[0]}); needs root or CAP_NET_ADMIN`;
  }
}

const skip = missing('fuse') ?? (await netnsUnavailable());
if (skip) console.warn(`skipping peer test across network namespaces: ${skip}`);

/** Forwards TCP from `host:0` (this side of the veth) to 127.0.0.1:`port`. */
async function forwarder(host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((c) => {
    const u = connect(port, '127.0.0.1');
    c.pipe(u).on('error', () => c.destroy());
    u.pipe(c).on('error', () => u.destroy());
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as { port: number }).port };
}

describe.skipIf(skip)('peers in separate network namespaces', () => {
  let backend: Backend;
  let root: string;
  let owner: ChildProcess | undefined;
  const ownerLog: string[] = [];
  let reader: MountProcess | undefined;
  const forwarders: Server[] = [];

  beforeAll(async () => {
    // Prepare: the namespace and its link
    await run('ip', ['netns', 'add', NS]);
    await run('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS]);
    await run('ip', ['link', 'set', VETH_NS, 'netns', NS]);
    await run('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', VETH_HOST]);
    await run('ip', ['link', 'set', VETH_HOST, 'up']);
    await run('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_IP}/30`, 'dev', VETH_NS]);
    await run('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, 'up']);
    await run('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);

    backend = await startBackend();
    root = mkdtempSync(join(tmpdir(), 'strata-netns-'));
    const api = await forwarder(HOST_IP, Number(new URL(backend.apiUrl).port));
    const s3 = await forwarder(HOST_IP, Number(new URL(backend.s3Endpoint).port));
    forwarders.push(api.server, s3.server);

    // The owner: a full mount inside the namespace (its FUSE mount lives in that namespace's own
    // mount namespace, created by `ip netns exec`), serving peers on its veth address.
    mkdirSync(join(root, 'mnt-owner'));
    owner = spawn(
      'ip',
      [
        'netns',
        'exec',
        NS,
        NODE,
        join(ROOT, 'bin/strata.js'),
        '--api-url',
        `http://${HOST_IP}:${api.port}`,
        '--token',
        backend.token,
        'mount',
        join(root, 'mnt-owner'),
        '--region',
        REGION,
        '--s3-endpoint',
        `http://${HOST_IP}:${s3.port}`,
        '--cache-dir',
        join(root, 'cache-owner'),
        '--cache-size',
        '256M',
        '--block-size',
        '1M',
        '--metrics-port',
        '0',
        '--peers',
        `${NS_IP}:${PEER_PORT}`,
        '--peer-listen',
        `${NS_IP}:${PEER_PORT}`,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, ...AWS_ENV, STRATA_DEV_JSON: '/nonexistent', STRATA_PEER_SECRET: SECRET },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const child = owner;
    await new Promise<void>((ready, fail) => {
      let buf = '';
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          ownerLog.push(line);
          if (line.includes('"msg":"mounted"')) ready();
        }
      });
      child.once('exit', (code) =>
        fail(new Error(`owner mount exited with ${code}:\n${ownerLog.join('\n')}`)),
      );
    });

    // The reader: a client-only mount here whose only peer is the owner across the link.
    // --peer-timeout 5000: the test counts S3 GETs (none) and peer hits (all); with the default 1 s,
    // an owner that is slow to answer on a loaded machine (its first read-through, a GC pause) makes
    // the reader fall back to S3 for that block and eject the owner (--peer-timeout 1 fails this test).
    mkdirSync(join(root, 'mnt-reader'));
    reader = await startMount(
      backend,
      join(root, 'mnt-reader'),
      join(root, 'cache-reader'),
      ['--peers', `${NS_IP}:${PEER_PORT}`, '--peer-client-only', '--peer-timeout', '5000'],
      { STRATA_PEER_SECRET: SECRET },
    );
  });

  afterAll(async () => {
    await reader?.stop().catch(() => undefined);
    if (owner && owner.exitCode === null) {
      const exited = new Promise((r) => owner?.once('exit', r));
      owner.kill('SIGTERM');
      await exited;
    }
    for (const s of forwarders) s.close();
    await backend?.stop();
    await run('fusermount', ['-uz', join(root, 'mnt-reader')]).catch(() => undefined);
    await run('ip', ['link', 'del', VETH_HOST]).catch(() => undefined);
    await run('ip', ['netns', 'del', NS]).catch(() => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('a reader gets every block from the owner in the other namespace, with no S3 GET of its own', async () => {
    // Prepare
    const bytes = randomBytes(8 * MiB + 4321);
    await backend.put('/netns/file.bin', bytes);
    const path = join(root, 'mnt-reader', 'netns/file.bin');
    await vi.waitFor(() => stat(path), { timeout: 15_000, interval: 100 });
    const before = await reader!.stats();
    // Act
    const got = await readFile(path);
    // Assess
    expect(createHash('sha256').update(got).digest('hex')).toBe(
      createHash('sha256').update(bytes).digest('hex'),
    );
    const after = (await reader!.stats()) as unknown as {
      dataPath: { s3: { gets?: number } };
      peers: { hits: number; members: Array<{ address: string; live: boolean }> };
    };
    expect((after.dataPath.s3.gets ?? 0) - (before.dataPath.s3.gets ?? 0)).toBe(0);
    expect(after.peers.hits).toBe(9); // 8 MiB + a tail at 1 MiB blocks
    expect(after.peers.members).toEqual([
      expect.objectContaining({ address: `${NS_IP}:${PEER_PORT}`, live: true }),
    ]);
    expect(ownerLog.join('\n')).toContain('peer sharing on');
  });
});
