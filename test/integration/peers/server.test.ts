/**
 * The peer server and fetcher over loopback with in-memory block sources: the early-headers +
 * trailer path for read-throughs, failures after the headers went out, error mapping, and metrics.
 */
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { NotFoundError, PreconditionFailedError } from '../../../functions/core/errors.ts';
import { blockKey } from '../../../mount-client/block-cache/block-key.ts';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';
import { PeerFetchError, type Peering, PeerSigner, startPeering } from '../../../mount-client/peers/index.ts';
import type { BlockSource } from '../../../mount-client/peers/server.ts';
import { encodeBlockRequest } from '../../../mount-client/peers/wire.ts';

const SECRET = 'server-test-secret-0123456789';
const BS = 64 * 1024;
const started: Peering[] = [];
const POLICY = { bucket: 'b', dataPrefix: '' };
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * The requesters' header wait (default 1 s). Owner and requester share this process, so a stall of
 * it on a loaded machine turned an answer into kind 'timeout' (a hit into a miss, 'http' into
 * 'timeout'); the tests are about what the owner answers, not about the timeout.
 */
const TIMEOUT_MS = 5_000;

async function pair(source: BlockSource): Promise<{ owner: Peering; client: Peering }> {
  const owner = await startPeering({
    secret: SECRET,
    listen: '127.0.0.1:0',
    source,
    policy: POLICY,
    metricsRegistry: new Registry(),
  });
  const client = await startPeering({
    secret: SECRET,
    listen: '127.0.0.1:0',
    serve: false,
    policy: POLICY,
    peers: [owner.address],
    source: { loadBlock: () => Promise.reject(new Error('client-only')) },
    metricsRegistry: new Registry(),
    timeoutMs: TIMEOUT_MS,
  });
  started.push(owner, client);
  return { owner, client };
}

const id = (index = 0): BlockId => ({
  object: { bucket: 'b', key: 'k', size: 4 * BS, etag: '"e"' },
  index,
  blockSize: BS,
});

afterAll(async () => {
  for (const p of started) await p.close();
});

describe('peer server and fetcher', () => {
  it('serves a slow read-through with early headers and the crc32c as a trailer', async () => {
    // Prepare: the owner takes 150 ms to "read through"
    const block = randomBytes(BS);
    const { owner, client } = await pair({ loadBlock: () => delay(150).then(() => block) });
    // Act: a raw request shows the protocol, the fetcher shows the result
    const target = encodeBlockRequest(id());
    const res = await request(`http://${owner.address}${target}`, {
      headers: new PeerSigner(SECRET).sign('GET', target),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    const got = await client.fetcher.fetch(id(1));
    // Assess
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['x-strata-block-length']).toBe(String(BS));
    expect(res.trailers['x-strata-crc32c']).toMatch(/^\d+$/);
    expect(body.equals(block)).toBe(true);
    expect(got.equals(block)).toBe(true);
    expect(owner.metrics.stats().served).toBe(2);
    expect(client.metrics.stats()).toMatchObject({ hits: 1, hitBytes: BS });
  });

  it('breaks the response when a read-through fails after the headers went out', async () => {
    // Prepare
    const { client } = await pair({
      loadBlock: () => delay(100).then(() => Promise.reject(new Error('S3 down'))),
    });
    // Act / Assess: the requester sees a failure (never bytes) and falls back
    await expect(client.fetcher.fetch(id())).rejects.toBeInstanceOf(PeerFetchError);
    expect(client.metrics.stats().hits).toBe(0);
  });

  it('never serves a block of the wrong length', async () => {
    const { client } = await pair({ loadBlock: async () => randomBytes(BS - 1) });
    await expect(client.fetcher.fetch(id())).rejects.toMatchObject({ kind: 'http' });
  });

  it('maps owner errors to HTTP statuses the requester reports', async () => {
    // Prepare
    const errors: Record<number, Error> = {
      0: new NotFoundError('gone'),
      1: new PreconditionFailedError('changed'),
      2: new Error('internal detail that must not leak'),
    };
    const { owner } = await pair({
      loadBlock: async (b) => {
        throw errors[b.index];
      },
    });
    const signer = new PeerSigner(SECRET);
    const ask = async (index: number) => {
      const target = encodeBlockRequest(id(index));
      const res = await request(`http://${owner.address}${target}`, { headers: signer.sign('GET', target) });
      return { status: res.statusCode, body: await res.body.text() };
    };
    // Act / Assess
    expect((await ask(0)).status).toBe(404);
    expect((await ask(1)).status).toBe(412);
    const hidden = await ask(2);
    expect(hidden.status).toBe(503);
    expect(hidden.body).not.toContain('internal detail');
  });

  it('answers 405 to other methods and 404 to unknown paths (after auth)', async () => {
    const { owner } = await pair({ loadBlock: async () => Buffer.alloc(BS) });
    const signer = new PeerSigner(SECRET);
    const post = await request(`http://${owner.address}/v1/blocks/x`, { method: 'POST' });
    expect(post.statusCode).toBe(405);
    await post.body.dump();
    const other = await request(`http://${owner.address}/v1/other`, {
      headers: signer.sign('GET', '/v1/other'),
    });
    expect(other.statusCode).toBe(404);
    await other.body.dump();
    const ping = await request(`http://${owner.address}/v1/ping`, {
      headers: signer.sign('GET', '/v1/ping'),
    });
    expect(await ping.body.json()).toEqual({ ok: true, address: owner.address });
  });

  it('says which flag to change when the peer port is taken', async () => {
    const { owner } = await pair({ loadBlock: async () => Buffer.alloc(BS) });
    const again = startPeering({
      secret: SECRET,
      listen: owner.address,
      source: { loadBlock: async () => Buffer.alloc(BS) },
      policy: POLICY,
      metricsRegistry: new Registry(),
    });
    await expect(again).rejects.toThrow(/in use.*--peer-listen/);
  });

  it('exposes peer metrics in the given registry', async () => {
    const registry = new Registry();
    const block = randomBytes(BS);
    const owner = await startPeering({
      secret: SECRET,
      listen: '127.0.0.1:0',
      source: { loadBlock: async () => block },
      policy: POLICY,
      metricsRegistry: registry,
    });
    started.push(owner);
    const client = await startPeering({
      secret: SECRET,
      listen: '127.0.0.1:0',
      serve: false,
      peers: [owner.address],
      source: { loadBlock: async () => block },
      policy: POLICY,
      metricsRegistry: registry,
      timeoutMs: TIMEOUT_MS,
    });
    started.push(client);
    await client.fetcher.fetch(id());
    const text = await registry.metrics();
    expect(text).toContain('strata_peer_fetches_total{result="hit"} 1');
    expect(text).toContain(`strata_peer_served_bytes_total ${BS}`);
    expect(text).toMatch(/strata_peer_fetch_seconds_count\{result="hit"\} 1/);
    expect(text).not.toContain(SECRET);
  });
});

describe('what the owner agrees to read through', () => {
  const PREFIXED = { bucket: 'b', dataPrefix: 'data/' };
  const S3_ORIGIN = 'http://s3.internal:9000';

  /** An owner with `policy` whose source records every block it was asked to load. */
  async function owner(policy: Parameters<typeof startPeering>[0]['policy']) {
    const asked: BlockId[] = [];
    const peering = await startPeering({
      secret: SECRET,
      listen: '127.0.0.1:0',
      policy,
      source: {
        loadBlock: async (b) => {
          asked.push(b);
          return Buffer.alloc(Math.min(BS, b.object.size - b.index * BS));
        },
      },
      metricsRegistry: new Registry(),
    });
    started.push(peering);
    const signer = new PeerSigner(SECRET);
    const ask = async (object: BlockId['object']) => {
      const target = encodeBlockRequest({ object, index: 0, blockSize: BS });
      const res = await request(`http://${peering.address}${target}`, {
        headers: signer.sign('GET', target),
      });
      return { status: res.statusCode, body: await res.body.text() };
    };
    return { asked, ask };
  }
  const object = (o: Partial<BlockId['object']>): BlockId['object'] => ({
    bucket: 'b',
    key: 'data/f.bin',
    size: BS,
    etag: '"e"',
    ...o,
  });

  it('refuses another bucket (403) without fetching anything', async () => {
    const { asked, ask } = await owner(PREFIXED);
    const res = await ask(object({ bucket: 'someone-elses-bucket' }));
    expect(res.status).toBe(403);
    expect(res.body).toContain('bucket b only');
    expect(asked).toHaveLength(0);
  });

  it('refuses keys outside the data prefix (403) without fetching anything', async () => {
    const { asked, ask } = await owner(PREFIXED);
    expect((await ask(object({ key: 'tokens/secret.json' }))).status).toBe(403);
    expect((await ask(object({ key: 'data' }))).status).toBe(403);
    expect((await ask(object({ key: 'data/' }))).status).toBe(403);
    expect(asked).toHaveLength(0);
    expect((await ask(object({ key: 'data/ok.bin' }))).status).toBe(200);
    expect(asked.map((b) => b.object.key)).toEqual(['data/ok.bin']);
  });

  it('reading with its own credentials, ignores any URL in the request', async () => {
    const { asked, ask } = await owner(PREFIXED);
    const res = await ask(object({ url: 'http://169.254.169.254/latest/meta-data/', urlExpiresAt: 1 }));
    expect(res.status).toBe(200);
    expect(asked).toHaveLength(1);
    expect(asked[0]?.object.url).toBeUndefined();
    expect(asked[0]?.object.urlExpiresAt).toBeUndefined();
  });

  it('in presign mode, follows URLs on the S3 endpoint only (403 otherwise, nothing fetched)', async () => {
    const { asked, ask } = await owner({ ...PREFIXED, presignOrigins: [S3_ORIGIN] });
    const metadata = await ask(object({ url: 'http://169.254.169.254/latest/meta-data/iam' }));
    expect(metadata.status).toBe(403);
    expect(metadata.body).not.toContain('169.254');
    expect((await ask(object({ url: 'https://s3.internal:9000/b/data/f.bin' }))).status).toBe(403);
    expect((await ask(object({ url: 'http://s3.internal:9001/b/data/f.bin' }))).status).toBe(403);
    expect((await ask(object({ url: 'file:///etc/passwd' }))).status).toBe(400);
    expect(asked).toHaveLength(0);
    const good = `${S3_ORIGIN}/b/data/f.bin?X-Amz-Signature=abc`;
    expect((await ask(object({ url: good, urlExpiresAt: 2 }))).status).toBe(200);
    expect(asked.map((b) => b.object.url)).toEqual([good]);
  });

  it('sends an owner tag over (block key, length, crc32c) that only the secret can make', async () => {
    const block = randomBytes(BS);
    const { owner: o } = await pair({ loadBlock: async () => block });
    const target = encodeBlockRequest(id());
    const res = await request(`http://${o.address}${target}`, {
      headers: new PeerSigner(SECRET).sign('GET', target),
    });
    await res.body.dump();
    const crc = Number(res.headers['x-strata-crc32c']);
    const tag = res.headers['x-strata-block-mac'];
    expect(new PeerSigner(SECRET).verifyBlockMac(blockKey(id()), BS, crc, tag)).toBe(true);
    expect(new PeerSigner('another-secret-0123456789').verifyBlockMac(blockKey(id()), BS, crc, tag)).toBe(
      false,
    );
  });
});
