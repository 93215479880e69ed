import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32c } from '@node-rs/crc32';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockKey } from '../../../mount-client/block-cache/block-key.ts';
import type { BlockId, ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { BLOCK_MAC_HEADER } from '../../../mount-client/peers/auth.ts';
import { PeerSigner, pickOwner } from '../../../mount-client/peers/index.ts';
import { CRC_HEADER, encodeBlockRequest } from '../../../mount-client/peers/wire.ts';
import { type S3Fixture, startS3 } from '../data-path/s3-fixture.ts';
import { connect, type FleetNode, gets, readAll, SECRET, sha256, startNode } from './fleet.ts';

// 256 KiB blocks keep the test small while a file still spans many blocks (and owners).
const BLOCK = 256 * 1024;
const blocksOf = (v: ObjectVersion) => Math.ceil(v.size / BLOCK);

let s3: S3Fixture;
const nodes: FleetNode[] = [];
const servers: Server[] = [];

async function node(
  name: string,
  extra: Parameters<typeof startNode>[0]['peering'] = {},
): Promise<FleetNode> {
  const n = await startNode({
    name,
    s3,
    blockSize: BLOCK,
    // Short backoff so a probe-back-in happens within the test; ticks fast for the same reason.
    // A 5 s header wait (default 1 s): the GET-count assertions measure placement and collapsing,
    // and on a loaded CI machine a live owner can miss 1 s, fall back to S3 and add a GET. Tests
    // of the timeout itself set their own (the hung-peer test uses 300 ms).
    peering: { backoffBaseMs: 200, backoffMaxMs: 1_000, probeTickMs: 50, timeoutMs: 5_000, ...extra },
  });
  nodes.push(n);
  return n;
}

async function file(key: string, size: number): Promise<{ v: ObjectVersion; hash: string }> {
  const body = randomBytes(size);
  return { v: await s3.put(key, body), hash: sha256(body) };
}

/** How many blocks of `v` rendezvous placement gives `owner` among `members`. */
function ownedBy(v: ObjectVersion, owner: string, members: string[]): number {
  return Array.from({ length: blocksOf(v) }, (_, index) =>
    blockKey({ object: v, index, blockSize: BLOCK }),
  ).filter((k) => pickOwner(k, members) === owner).length;
}

/**
 * A file at least one block of which `owner` owns among `members`. Block keys hash the etag of
 * random bytes, so any one file misses a given owner now and then — an 8-block file between two
 * members in 1 of 256 draws — and a test about that owner's failures then met none and failed.
 * Drawing bodies until the owner gets a block makes the precondition certain.
 */
async function fileOwnedBy(
  key: string,
  size: number,
  owner: string,
  members: string[],
): Promise<{ v: ObjectVersion; hash: string; owned: number }> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const f = await file(key, size);
    const owned = ownedBy(f.v, owner, members);
    if (owned > 0) return { ...f, owned };
  }
  throw new Error(`20 random bodies of ${key} gave ${owner} no block among ${members.join(', ')}`);
}

beforeAll(async () => {
  s3 = await startS3();
});

afterAll(async () => {
  for (const n of nodes) await n.close().catch(() => undefined);
  for (const s of servers) s.close();
  await s3.stop();
});

describe('a fleet of three', () => {
  let a: FleetNode;
  let b: FleetNode;
  let c: FleetNode;
  beforeAll(async () => {
    [a, b, c] = await Promise.all([node('a'), node('b'), node('c')]);
    connect([a, b, c]);
  });

  it('B and C read a file A read first without S3 GETs of their own', async () => {
    // Prepare
    const { v, hash } = await file('warm/one.bin', 6 * 1024 * 1024 + 12_345);
    const blocks = blocksOf(v);
    const before = s3.gets();
    // Act
    expect(await readAll(a, v)).toBe(hash);
    const afterA = s3.gets();
    const [gb, gc] = [gets(b), gets(c)];
    expect(await readAll(b, v)).toBe(hash);
    expect(await readAll(c, v)).toBe(hash);
    // Assess: A's read cost one GET per block fleet-wide (owners read through), B and C none
    expect(afterA - before).toBe(blocks);
    expect(s3.gets()).toBe(afterA);
    expect(gets(b) - gb).toBe(0);
    expect(gets(c) - gc).toBe(0);
    expect(b.peering.metrics.stats().hits + c.peering.metrics.stats().hits).toBeGreaterThan(0);
  });

  it('a cold fleet reading one file at once costs about one GET per block', async () => {
    // Prepare
    const { v, hash } = await file('cold/one.bin', 8 * 1024 * 1024 + 1);
    const blocks = blocksOf(v);
    const before = s3.gets();
    // Act
    const hashes = await Promise.all([a, b, c].map((n) => readAll(n, v)));
    // Assess
    expect(hashes).toEqual([hash, hash, hash]);
    const total = s3.gets() - before;
    expect(total).toBeGreaterThanOrEqual(blocks);
    expect(total).toBeLessThanOrEqual(Math.ceil(blocks * 1.1));
  });

  it('a client-only node reads everything from the owners and owns nothing', async () => {
    // Prepare: the fleet has read the file once
    const { v, hash } = await file('client-only/one.bin', 3 * 1024 * 1024 + 5);
    expect(await readAll(a, v)).toBe(hash);
    const x = await node('x', { serve: false });
    x.peering.membership.setMembers([a.address, b.address, c.address]);
    // Act
    const got = await readAll(x, v);
    // Assess
    expect(got).toBe(hash);
    expect(x.address).toBe('');
    expect(gets(x)).toBe(0);
    expect(x.peering.metrics.stats().hits).toBe(blocksOf(v));
    expect(x.peering.membership.live().sort()).toEqual([a.address, b.address, c.address].sort());
  });

  it('answers 401 to unsigned, wrongly signed and stale requests, and serves signed ones', async () => {
    // Prepare: a block A itself owns, read through once
    const { v } = await file('auth/one.bin', 3 * BLOCK);
    const id: BlockId = { object: v, index: 1, blockSize: BLOCK };
    const target = encodeBlockRequest(id);
    const url = `http://${a.address}${target}`;
    const good = new PeerSigner(SECRET);
    // Cached first, so the answer takes the header path (a read-through may answer early, with the
    // crc32c as a trailer — server.test.ts covers that path).
    await a.dp.loadBlock(id);
    const rejectedBefore = a.peering.metrics.stats().rejected;
    // Act
    const unsigned = await request(url);
    const wrong = await request(url, { headers: new PeerSigner(`${SECRET}-other`).sign('GET', target) });
    const stale = await request(url, { headers: good.sign('GET', target, Date.now() - 120_000) });
    const ok = await request(url, { headers: good.sign('GET', target) });
    const head = await request(url, { method: 'HEAD', headers: good.sign('HEAD', target) });
    // Assess
    for (const res of [unsigned, wrong, stale]) {
      expect(res.statusCode).toBe(401);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    }
    expect(a.peering.metrics.stats().rejected - rejectedBefore).toBe(3);
    expect(ok.statusCode).toBe(200);
    const body = Buffer.from(await ok.body.arrayBuffer());
    expect(body.length).toBe(BLOCK);
    expect(Number(ok.headers[CRC_HEADER])).toBe(crc32c(body));
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(BLOCK));
    expect(Number(head.headers[CRC_HEADER])).toBe(crc32c(body));
    await head.body.dump();
  });

  it('refuses a block of another block size and a tampered block key', async () => {
    const { v } = await file('auth/two.bin', 3 * BLOCK);
    const signer = new PeerSigner(SECRET);
    const other = encodeBlockRequest({ object: v, index: 0, blockSize: 2 * BLOCK });
    const res = await request(`http://${a.address}${other}`, { headers: signer.sign('GET', other) });
    expect(res.statusCode).toBe(409);
    await res.body.dump();
    const id: BlockId = { object: v, index: 0, blockSize: BLOCK };
    const tampered = encodeBlockRequest(id).replace(blockKey(id), blockKey({ ...id, index: 2 }));
    const res2 = await request(`http://${a.address}${tampered}`, { headers: signer.sign('GET', tampered) });
    expect(res2.statusCode).toBe(400);
    await res2.body.dump();
  });
});

describe('failures', () => {
  it('a peer killed mid-read: every read still correct, the dead peer ejected at once', async () => {
    // Prepare
    const [p, q, r] = await Promise.all([node('p'), node('q'), node('r')]);
    connect([p, q, r]);
    const { v, hash } = await file('kill/one.bin', 6 * 1024 * 1024);
    // Act: R reads; a quarter of the way in, Q dies
    let killed = false;
    const got = await readAll(r, v, async (off) => {
      if (!killed && off >= v.size / 4) {
        killed = true;
        await q.close();
      }
    });
    // Read-ahead may have fetched the rest of the file before Q died; a fresh file read after the
    // kill with a block Q owns is sure to meet the dead peer (or Q was ejected on meeting it before).
    const after = await fileOwnedBy('kill/two.bin', 16 * BLOCK, q.address, [p.address, q.address, r.address]);
    const gotAfter = await readAll(r, after.v);
    // Assess
    expect(got).toBe(hash);
    expect(gotAfter).toBe(after.hash);
    expect(r.peering.membership.snapshot().find((m) => m.address === q.address)?.live).toBe(false);
    const errors = r.peering.metrics.stats().errors;
    // A refused connection fails fast; nothing waited for the timeout.
    expect((errors.connect ?? 0) + (errors.http ?? 0)).toBeGreaterThan(0);
    expect(errors.timeout ?? 0).toBe(0);
    // P still serves R after the membership settled.
    expect(await readAll(p, v)).toBe(hash);
  });

  it('a peer sending corrupted bytes is rejected and the block read from S3', async () => {
    // Prepare: a rogue peer that answers every request with the right length and checksum header of
    // zeros, but flipped bytes
    const rogue = createServer((req, res) => {
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('blockSize'));
      const body = Buffer.alloc(size);
      const crc = crc32c(body);
      body[7] = 0xff;
      res.writeHead(200, { 'content-length': size, [CRC_HEADER]: String(crc) });
      res.end(body);
    });
    servers.push(rogue);
    await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
    const rogueAddress = `127.0.0.1:${(rogue.address() as AddressInfo).port}`;
    const d = await node('d');
    d.peering.membership.setMembers([rogueAddress]);
    const {
      v,
      hash,
      owned: ownedByRogue,
    } = await fileOwnedBy('corrupt/one.bin', 2 * 1024 * 1024, rogueAddress, [d.address, rogueAddress]);
    // Act
    const got = await readAll(d, v);
    // Assess: correct bytes, every block from S3, the rogue's blocks refused (requests already in
    // flight when it was ejected fail the same way; a ping may let it back in, to fail again)
    expect(got).toBe(hash);
    const stats = d.peering.metrics.stats();
    expect(stats.errors.checksum).toBeGreaterThanOrEqual(1);
    expect(stats.errors.checksum).toBeLessThanOrEqual(ownedByRogue);
    expect(stats.hits).toBe(0);
    expect(gets(d)).toBe(blocksOf(v));
    expect(d.peering.membership.snapshot()[0]?.failures).toBeGreaterThanOrEqual(1);
  });

  it('a peer without the cluster secret is rejected by the owner tag and the block read from S3', async () => {
    // Prepare: a rogue peer whose bytes and crc32c agree (zeros), tagged with a secret it guessed —
    // the crc32c alone would pass, only the owner tag can tell it from a real owner
    const guessed = new PeerSigner('not-the-cluster-secret-0123456789');
    const rogue = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const size = Number(url.searchParams.get('blockSize'));
      const body = Buffer.alloc(size);
      const crc = crc32c(body);
      const key = url.pathname.slice('/v1/blocks/'.length);
      res.writeHead(200, {
        'content-length': size,
        [CRC_HEADER]: String(crc),
        [BLOCK_MAC_HEADER]: guessed.blockMac(key, size, crc),
      });
      res.end(body);
    });
    servers.push(rogue);
    await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
    const rogueAddress = `127.0.0.1:${(rogue.address() as AddressInfo).port}`;
    const e = await node('e');
    e.peering.membership.setMembers([rogueAddress]);
    const { v, hash } = await fileOwnedBy('forged/one.bin', 2 * 1024 * 1024, rogueAddress, [
      e.address,
      rogueAddress,
    ]);
    // Act
    const got = await readAll(e, v);
    // Assess: correct bytes, every block from S3, none accepted from the rogue
    expect(got).toBe(hash);
    const stats = e.peering.metrics.stats();
    expect(stats.errors.checksum).toBeGreaterThanOrEqual(1);
    expect(stats.hits).toBe(0);
    expect(gets(e)).toBe(blocksOf(v));
  });

  it('a peer that accepts but never answers: the read falls back to S3 after the short timeout', async () => {
    // Prepare: a peer that holds every request open
    const silent = createServer(() => undefined);
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const h = await node('h', { timeoutMs: 300 });
    h.peering.membership.setMembers([silentAddress]);
    const { v, hash } = await fileOwnedBy('silent/one.bin', 2 * 1024 * 1024, silentAddress, [
      h.address,
      silentAddress,
    ]);
    // Act
    const got = await readAll(h, v);
    // Assess: correct, from S3; timeouts counted and the silent peer ejected
    expect(got).toBe(hash);
    expect(h.peering.metrics.stats().errors.timeout).toBeGreaterThanOrEqual(1);
    expect(gets(h)).toBe(blocksOf(v));
    silent.closeAllConnections();
  });

  it('a peer joining and another leaving during reads: every read correct', async () => {
    // Prepare
    const [e, f, g] = await Promise.all([node('e'), node('f'), node('g')]);
    connect([e, f]);
    const files = await Promise.all([0, 1, 2].map((i) => file(`churn/${i}.bin`, 3 * 1024 * 1024 + i)));
    // Act: E and F read all three files; after the first, G joins; after the second, F leaves
    let step = 0;
    const reads: Promise<string>[] = [];
    for (const { v } of files) {
      reads.push(readAll(e, v), readAll(f, v));
      await reads[reads.length - 1];
      step++;
      if (step === 1) connect([e, f, g]);
      if (step === 2) {
        e.peering.membership.setMembers([e.address, g.address]);
        g.peering.membership.setMembers([e.address, g.address]);
      }
    }
    reads.push(...files.map(({ v }) => readAll(g, v)));
    // Assess
    const hashes = await Promise.all(reads);
    expect(hashes.slice(0, 6)).toEqual(files.flatMap(({ hash }) => [hash, hash]));
    expect(hashes.slice(6)).toEqual(files.map(({ hash }) => hash));
    expect(g.peering.metrics.stats().served).toBeGreaterThan(0);
  });
});
