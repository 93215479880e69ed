/**
 * The socket transport (reads bodies straight into the block buffer) against local servers that
 * misbehave on purpose: every outcome must be exactly the requested bytes, in the buffer the caller
 * supplied, or a typed error — and keep-alive must reuse connections without ever mixing exchanges.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import {
  NotFoundError,
  PreconditionFailedError,
  S3ReadError,
  TransientError,
} from '../../../mount-client/object-client/errors.ts';
import type { RangeTransport } from '../../../mount-client/object-client/transport.ts';
import { createSocketTransport } from '../../../mount-client/object-client/transport-socket.ts';
import { UrlSigner } from '../../../mount-client/object-client/url-signer.ts';

const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
type Mode =
  | 'ok'
  | 'long'
  | 'short-length'
  | 'cut'
  | 'changed'
  | 'stale-etag'
  | 'not-found'
  | 'slow-down'
  | 'expired'
  | 'forbidden'
  | 'silent'
  | 'chunked-ok'
  | 'close';
let server: Server;
let port = 0;
let transport: RangeTransport;
/**
 * Timeouts of the transports whose requests must succeed: far beyond any stall of a loaded machine.
 * Node runs expired timers before polling sockets, so a worker stalled (CPU starvation, GC) past a
 * short timeout fails a request whose answer is already in the socket buffer; with 300 ms here,
 * such a stall failed "ok" requests. Only the tests that wait for a timeout use SHORT_TIMEOUTS.
 */
const SAFE_TIMEOUTS = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
/** For the tests that wait for the timeout to fire (a silent or stalled server): kept short. */
const SHORT_TIMEOUTS = { headersTimeoutMs: 300, bodyTimeoutMs: 300 };
let signer: UrlSigner;
let mode: Mode = 'ok';
let connections = 0;
let signs = 0;

function serve(req: IncomingMessage, res: ServerResponse) {
  const [, a, b] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '') ?? [];
  const start = Number(a);
  const end = Number(b) + 1;
  const xml = (status: number, code: string, message = '') => {
    // Chunked, as S3 error bodies may be: the transport must de-frame it to find <Code>.
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.write('<?xml version="1.0"?>');
    res.end(`<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
  };
  if (mode === 'changed') return xml(412, 'PreconditionFailed');
  if (mode === 'not-found') return xml(404, 'NoSuchKey');
  if (mode === 'slow-down') return xml(503, 'SlowDown');
  if (mode === 'expired') return xml(403, 'AccessDenied', 'Request has expired');
  if (mode === 'forbidden') return xml(403, 'AccessDenied', 'Access Denied');
  if (mode === 'silent') return; // never answers
  const slice = body.subarray(start, end);
  const headers = {
    etag: mode === 'stale-etag' ? '"other"' : '"e1"',
    'content-range': `bytes ${start}-${end - 1}/${body.length}`,
  };
  if (mode === 'long') {
    res.writeHead(206, { ...headers, 'content-length': String(slice.length + 10) });
    return res.end(Buffer.concat([slice, Buffer.alloc(10)]));
  }
  if (mode === 'short-length') {
    res.writeHead(206, { ...headers, 'content-length': String(slice.length - 1) });
    return res.end(slice.subarray(1));
  }
  if (mode === 'chunked-ok') {
    res.writeHead(206, headers);
    return res.end(slice);
  }
  res.writeHead(206, {
    ...headers,
    'content-length': String(slice.length),
    ...(mode === 'close' ? { connection: 'close' } : {}),
  });
  if (mode === 'cut') {
    res.write(slice.subarray(0, 10));
    return setTimeout(() => res.socket?.destroy(), 20);
  }
  // Several writes: the body arrives over several socket reads.
  const third = Math.ceil(slice.length / 3);
  res.write(slice.subarray(0, third));
  res.write(slice.subarray(third, 2 * third));
  res.end(slice.subarray(2 * third));
}

beforeAll(async () => {
  server = createServer(serve);
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
  signer = new UrlSigner({
    presign: async () => {
      signs++;
      return { url: `http://127.0.0.1:${port}/b/k?X-Amz-Signature=abc`, expiresAt: Date.now() + 3_600_000 };
    },
  });
  transport = createSocketTransport({ signer, connections: 4, ...SAFE_TIMEOUTS });
});
afterAll(async () => {
  await transport.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  mode = 'ok';
});

const object: ObjectVersion = { bucket: 'b', key: 'k', size: body.length, etag: 'e1' };
const get = (start: number, length: number, extra: { signal?: AbortSignal } = {}) =>
  transport.get({ object, start, length, ...extra });

describe('socket transport', () => {
  it('returns exactly the requested range, in the buffer the caller supplied', async () => {
    const into = Buffer.alloc(200_000);
    const got = await transport.get({ object, start: 50_000, length: 200_000, alloc: () => into });
    expect(got).toBe(into);
    expect(got.equals(body.subarray(50_000, 250_000))).toBe(true);
    expect((await get(299_990, 10)).equals(body.subarray(299_990))).toBe(true);
  });

  it('reuses kept-alive connections for sequential requests', async () => {
    await get(0, 1000);
    const before = connections;
    for (let i = 0; i < 20; i++) {
      const start = i * 10_000;
      expect((await get(start, 10_000)).equals(body.subarray(start, start + 10_000))).toBe(true);
    }
    expect(connections - before).toBe(0);
  });

  it('serves concurrent requests on separate connections, each with its own bytes', async () => {
    const starts = Array.from({ length: 12 }, (_, i) => i * 20_000);
    const got = await Promise.all(starts.map((s) => get(s, 20_000)));
    got.forEach((g, i) => {
      const s = starts[i] as number;
      expect(g.equals(body.subarray(s, s + 20_000))).toBe(true);
    });
  });

  it('a body longer or shorter than the range, or cut short, is a retryable error', async () => {
    mode = 'long';
    await expect(get(0, 100)).rejects.toMatchObject({ reason: 'short-body' });
    mode = 'short-length';
    await expect(get(0, 100)).rejects.toMatchObject({ reason: 'short-body' });
    mode = 'chunked-ok';
    await expect(get(0, 100)).rejects.toMatchObject({ reason: 'short-body' });
    mode = 'cut';
    const err = await get(0, 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    mode = 'ok';
    expect((await get(0, 100)).equals(body.subarray(0, 100))).toBe(true);
  });

  it('classifies error statuses from their (chunked) S3 XML bodies', async () => {
    mode = 'changed';
    await expect(get(0, 10)).rejects.toBeInstanceOf(PreconditionFailedError);
    mode = 'stale-etag';
    await expect(get(0, 10)).rejects.toBeInstanceOf(PreconditionFailedError);
    mode = 'not-found';
    await expect(get(0, 10)).rejects.toBeInstanceOf(NotFoundError);
    mode = 'slow-down';
    await expect(get(0, 10)).rejects.toMatchObject({ reason: 'throttled' });
    mode = 'forbidden';
    const denied = await get(0, 10).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(S3ReadError);
    expect(denied).not.toBeInstanceOf(TransientError);
    expect((denied as Error).message).toMatch(/AccessDenied.*s3:GetObject/);
  });

  it('an expired URL is re-signed on the next attempt', async () => {
    await get(0, 10);
    const before = signs;
    mode = 'expired';
    await expect(get(0, 10)).rejects.toMatchObject({ reason: 'expired-url' });
    mode = 'ok';
    await get(0, 10);
    expect(signs).toBe(before + 1);
  });

  it('a connection the server closes (Connection: close or idle timeout) is never reused', async () => {
    mode = 'close';
    expect((await get(0, 100)).equals(body.subarray(0, 100))).toBe(true);
    expect((await get(100, 100)).equals(body.subarray(100, 200))).toBe(true);
    mode = 'ok';
    // The server drops idle keep-alive sockets after 50 ms; the next request must still succeed.
    server.keepAliveTimeout = 50;
    await get(0, 100);
    await new Promise((r) => setTimeout(r, 200));
    expect((await get(200, 100)).equals(body.subarray(200, 300))).toBe(true);
    server.keepAliveTimeout = 5000;
  });

  it('times out a silent server and honours an abort signal', async () => {
    mode = 'silent';
    const quick = createSocketTransport({ signer, connections: 1, ...SHORT_TIMEOUTS });
    try {
      await expect(quick.get({ object, start: 0, length: 10 })).rejects.toMatchObject({ reason: 'timeout' });
    } finally {
      await quick.close();
    }
    const ac = new AbortController();
    const p = get(0, 10, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await expect(p).rejects.toThrow('stop');
    mode = 'ok';
    expect((await get(5, 5)).equals(body.subarray(5, 10))).toBe(true);
  });
});

describe('socket transport, byte-level framing', () => {
  let raw: NetServer;
  let rawTransport: RangeTransport;
  let rawSigner: UrlSigner;
  let script: (s: Socket, range: [number, number]) => void;

  beforeAll(async () => {
    raw = createNetServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /range: bytes=(\d+)-(\d+)/i.exec(buf.slice(0, end));
        buf = buf.slice(end + 4);
        script(s, [Number(m?.[1]), Number(m?.[2]) + 1]);
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
    const rawPort = (raw.address() as AddressInfo).port;
    rawSigner = new UrlSigner({
      presign: async () => ({ url: `http://127.0.0.1:${rawPort}/b/k`, expiresAt: Date.now() + 3_600_000 }),
    });
    rawTransport = createSocketTransport({ signer: rawSigner, connections: 2, ...SAFE_TIMEOUTS });
  });
  afterAll(async () => {
    await rawTransport.close();
    await new Promise((r) => raw.close(r));
  });

  const head = (a: number, e: number, extra = '') =>
    `HTTP/1.1 206 Partial Content\r\nETag: "e1"\r\nContent-Range: bytes ${a}-${e - 1}/${body.length}\r\nContent-Length: ${e - a}\r\n${extra}\r\n`;

  it('parses a head split byte by byte, with the body starting in the same packet as its end', async () => {
    script = (s, [a, e]) => {
      const bytes = Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)]);
      let i = 0;
      const drip = () => {
        if (i >= 200) {
          s.write(bytes.subarray(i));
          return;
        }
        s.write(bytes.subarray(i, i + 1));
        i++;
        setImmediate(drip);
      };
      drip();
    };
    const got = await rawTransport.get({ object, start: 1000, length: 5000 });
    expect(got.equals(body.subarray(1000, 6000))).toBe(true);
  });

  it('skips an interim 100 Continue head and reads the real response', async () => {
    script = (s, [a, e]) => {
      s.write(`HTTP/1.1 100 Continue\r\n\r\n${head(a, e)}`, 'latin1');
      s.write(body.subarray(a, e));
    };
    const got = await rawTransport.get({ object, start: 0, length: 4096 });
    expect(got.equals(body.subarray(0, 4096))).toBe(true);
  });

  it('rejects a garbage status line and a response that is not HTTP', async () => {
    script = (s) => {
      s.write('SSH-2.0-OpenSSH\r\n\r\n');
    };
    await expect(rawTransport.get({ object, start: 0, length: 10 })).rejects.toBeInstanceOf(TransientError);
  });

  it('a body that stalls mid-way times out as a retryable error', async () => {
    script = (s, [a, e]) => {
      s.write(head(a, e), 'latin1');
      s.write(body.subarray(a, a + 10));
    };
    const quick = createSocketTransport({ signer: rawSigner, connections: 1, ...SHORT_TIMEOUTS });
    try {
      await expect(quick.get({ object, start: 0, length: 1000 })).rejects.toMatchObject({
        reason: 'timeout',
      });
    } finally {
      await quick.close();
    }
  });
});

describe('socket transport over https', () => {
  // A self-signed test certificate for 127.0.0.1 (tls/, valid until 2126; not a secret).
  const tlsDir = new URL('./tls/', import.meta.url);
  const cert = readFileSync(new URL('cert.pem', tlsDir));
  const key = readFileSync(new URL('key.pem', tlsDir));
  let https: ReturnType<typeof createHttpsServer>;
  let secure: RangeTransport;
  let secureConnections = 0;

  beforeAll(async () => {
    https = createHttpsServer({ cert, key }, serve);
    https.on('secureConnection', () => secureConnections++);
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', () => r()));
    const p = (https.address() as AddressInfo).port;
    secure = createSocketTransport({
      signer: new UrlSigner({
        presign: async () => ({
          url: `https://127.0.0.1:${p}/b/k?X-Amz-Signature=abc`,
          expiresAt: Date.now() + 3_600_000,
        }),
      }),
      connections: 2,
      tls: { ca: cert },
      ...SAFE_TIMEOUTS,
    });
  });
  afterAll(async () => {
    await secure.close();
    https.closeAllConnections();
    await new Promise((r) => https.close(r));
  });

  it('reads exact ranges into the caller buffer over TLS and reuses the connection', async () => {
    const into = Buffer.alloc(250_000);
    const got = await secure.get({ object, start: 10_000, length: 250_000, alloc: () => into });
    expect(got).toBe(into);
    expect(got.equals(body.subarray(10_000, 260_000))).toBe(true);
    const before = secureConnections;
    for (let i = 0; i < 5; i++) {
      expect(
        (await secure.get({ object, start: i * 1000, length: 1000 })).equals(
          body.subarray(i * 1000, (i + 1) * 1000),
        ),
      ).toBe(true);
    }
    expect(secureConnections).toBe(before);
    mode = 'not-found';
    await expect(secure.get({ object, start: 0, length: 10 })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses a server whose certificate is not trusted, at once and with the fix', async () => {
    const p = (https.address() as AddressInfo).port;
    const untrusting = createSocketTransport({
      signer: new UrlSigner({
        presign: async () => ({ url: `https://127.0.0.1:${p}/b/k`, expiresAt: Date.now() + 3_600_000 }),
      }),
      connections: 1,
    });
    try {
      const err = await untrusting.get({ object, start: 0, length: 10 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(S3ReadError);
      expect(err).not.toBeInstanceOf(TransientError);
      expect((err as Error).message).toMatch(/NODE_EXTRA_CA_CERTS/);
    } finally {
      await untrusting.close();
    }
  });
});
