/**
 * The zero-copy block receiver against a real node:http server (what a peer server is): both body
 * framings, trailers, error answers, reuse of kept-alive connections, a server closing an idle
 * connection, timeouts, a body longer than the block, and cancellation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BlockGet,
  BlockReceiveError,
  BlockReceiver,
} from '../../../mount-client/peers/block-receiver.ts';

const KiB = 1024;
const block = randomBytes(1024 * KiB + 17); // odd length: no alignment luck
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let server: Server;
let port = 0;
let connections = 0;
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/fixed': (_req, res) => {
    res.writeHead(200, { 'content-length': block.length, 'x-strata-crc32c': '42' });
    res.end(block);
  },
  '/chunked': (_req, res) => {
    // The read-through shape: headers first, body later in pieces, checksum in a trailer.
    res.writeHead(200, { trailer: 'x-strata-crc32c', 'content-type': 'application/octet-stream' });
    res.flushHeaders();
    setTimeout(() => {
      res.write(block.subarray(0, 100_000));
      setTimeout(() => {
        res.write(block.subarray(100_000, 100_001));
        res.addTrailers({ 'x-strata-crc32c': '7' });
        res.end(block.subarray(100_001));
      }, 5);
    }, 5);
  },
  '/error': (_req, res) => {
    const body = JSON.stringify({ error: { code: 'unauthorized', message: 'nope' } });
    res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
  '/too-long': (_req, res) => {
    res.writeHead(200, { 'content-length': block.length + 1 });
    res.end(Buffer.concat([block, Buffer.from('x')]));
  },
  '/hang': () => {},
  '/stall': (_req, res) => {
    res.writeHead(200, { 'content-length': block.length });
    res.write(block.subarray(0, 1000));
  },
  '/close-after': (_req, res) => {
    res.writeHead(200, { 'content-length': block.length, connection: 'close' });
    res.end(block);
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const route = routes[(req.url ?? '/').split('?')[0]!];
    if (route) route(req, res);
    else {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
    }
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function get(receiver: BlockReceiver, target: string, extra: Partial<BlockGet> = {}) {
  const into = Buffer.alloc(block.length);
  const seen: Buffer[] = [];
  const p = receiver.get({
    host: '127.0.0.1',
    port,
    target,
    headers: { 'x-test': '1' },
    into,
    onBody: (b) => seen.push(Buffer.from(b)),
    // Generous: server and receiver share this process, and a stall of it on a loaded machine must
    // not turn a test of framing or reuse into a timeout (the timeout test sets its own 100 ms).
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
    ...extra,
  });
  return { p, into, seen };
}

describe('BlockReceiver', () => {
  it('receives a content-length body into the block buffer and reports each landed range', async () => {
    const r = new BlockReceiver();
    try {
      const { p, into, seen } = get(r, '/fixed');
      const res = await p;
      expect(res.status).toBe(200);
      expect(res.length).toBe(block.length);
      expect(res.headers['x-strata-crc32c']).toBe('42');
      expect(sha(into)).toBe(sha(block));
      expect(sha(Buffer.concat(seen))).toBe(sha(block));
    } finally {
      r.close();
    }
  });

  it('receives a chunked body with its trailer', async () => {
    const r = new BlockReceiver();
    try {
      const { p, into, seen } = get(r, '/chunked');
      const res = await p;
      expect(res.status).toBe(200);
      expect(res.trailers['x-strata-crc32c']).toBe('7');
      expect(sha(into)).toBe(sha(block));
      expect(sha(Buffer.concat(seen))).toBe(sha(block));
    } finally {
      r.close();
    }
  });

  it('reuses one kept-alive connection for sequential requests, and opens more for concurrent ones', async () => {
    const r = new BlockReceiver();
    try {
      const before = connections;
      for (let i = 0; i < 5; i++) {
        const { p, into } = get(r, i % 2 ? '/chunked' : '/fixed');
        await p;
        expect(sha(into)).toBe(sha(block));
      }
      expect(connections - before).toBe(1);
      const many = Array.from({ length: 4 }, () => get(r, '/fixed'));
      await Promise.all(many.map((g) => g.p));
      for (const g of many) expect(sha(g.into)).toBe(sha(block));
      expect(connections - before).toBeLessThanOrEqual(4);
    } finally {
      r.close();
    }
  });

  it('queues requests beyond the per-peer limit instead of opening more connections', async () => {
    const r = new BlockReceiver(2);
    try {
      const before = connections;
      const many = Array.from({ length: 6 }, (_, i) => get(r, i % 2 ? '/chunked' : '/fixed'));
      await Promise.all(many.map((g) => g.p));
      for (const g of many) expect(sha(g.into)).toBe(sha(block));
      expect(connections - before).toBe(2);
    } finally {
      r.close();
    }
  });

  it('returns an error status with its body, and the connection stays usable', async () => {
    const r = new BlockReceiver();
    try {
      const res = await get(r, '/error').p;
      expect(res.status).toBe(401);
      expect(JSON.parse(res.errorBody ?? '')).toEqual({ error: { code: 'unauthorized', message: 'nope' } });
      const { p, into } = get(r, '/fixed');
      await p;
      expect(sha(into)).toBe(sha(block));
    } finally {
      r.close();
    }
  });

  it('retries once on a fresh connection when the server closed the idle one', async () => {
    const r = new BlockReceiver();
    try {
      await get(r, '/close-after').p;
      // The server said close; a kept connection the server drops behind our back is the same case.
      await get(r, '/fixed').p;
      server.closeIdleConnections();
      await new Promise((res) => setTimeout(res, 50));
      const { p, into } = get(r, '/fixed');
      await p;
      expect(sha(into)).toBe(sha(block));
    } finally {
      r.close();
    }
  });

  it('refuses a body longer than the block', async () => {
    const r = new BlockReceiver();
    try {
      await expect(get(r, '/too-long').p).rejects.toMatchObject({ reason: 'overflow' });
    } finally {
      r.close();
    }
  });

  it('fails with headers_timeout, body_timeout, connect and aborted', async () => {
    const r = new BlockReceiver();
    try {
      await expect(get(r, '/hang', { headersTimeoutMs: 100 }).p).rejects.toMatchObject({
        reason: 'headers_timeout',
      });
      await expect(get(r, '/stall', { bodyTimeoutMs: 100 }).p).rejects.toMatchObject({
        reason: 'body_timeout',
      });
      const closed = createServer();
      await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
      const deadPort = (closed.address() as AddressInfo).port;
      await new Promise<void>((res) => closed.close(() => res()));
      await expect(get(r, '/fixed', { port: deadPort }).p).rejects.toBeInstanceOf(BlockReceiveError);
      await expect(get(r, '/fixed', { port: deadPort }).p).rejects.toMatchObject({ reason: 'connect' });
      const ac = new AbortController();
      const hanging = get(r, '/hang', { signal: ac.signal }).p;
      ac.abort();
      await expect(hanging).rejects.toMatchObject({ reason: 'aborted' });
      // Still works afterwards.
      const { p, into } = get(r, '/fixed');
      await p;
      expect(sha(into)).toBe(sha(block));
    } finally {
      r.close();
    }
  });
});
