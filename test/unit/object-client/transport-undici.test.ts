/**
 * The undici transport against a local HTTP server that misbehaves on purpose: every outcome must
 * be bytes of exactly the requested range or a typed error (never a short or long buffer).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { PreconditionFailedError, TransientError } from '../../../mount-client/object-client/errors.ts';
import type { RangeTransport } from '../../../mount-client/object-client/transport.ts';
import { createUndiciTransport } from '../../../mount-client/object-client/transport-undici.ts';
import { UrlSigner } from '../../../mount-client/object-client/url-signer.ts';

const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
type Mode = 'ok' | 'long' | 'cut' | 'changed' | 'stale-etag';
let server: Server;
let transport: RangeTransport;
let mode: Mode = 'ok';

function serve(req: IncomingMessage, res: ServerResponse) {
  const [, a, b] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '') ?? [];
  const start = Number(a);
  const end = Number(b) + 1;
  if (mode === 'changed') {
    res.writeHead(412, { 'content-type': 'application/xml' });
    return res.end('<Error><Code>PreconditionFailed</Code></Error>');
  }
  const slice = body.subarray(start, end);
  const headers = {
    etag: mode === 'stale-etag' ? '"other"' : '"e1"',
    'content-range': `bytes ${start}-${end - 1}/${body.length}`,
  };
  if (mode === 'long') {
    res.writeHead(206, headers);
    return res.end(Buffer.concat([slice, Buffer.alloc(10)]));
  }
  res.writeHead(206, { ...headers, 'content-length': String(slice.length) });
  if (mode === 'cut') {
    res.write(slice.subarray(0, 10));
    return setTimeout(() => res.socket?.destroy(), 20);
  }
  res.end(slice);
}

beforeAll(async () => {
  server = createServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const signer = new UrlSigner({
    presign: async () => ({ url: `http://127.0.0.1:${port}/b/k`, expiresAt: Date.now() + 3_600_000 }),
  });
  // 10 s, not the 3 s / 5 s defaults: no test here waits for a timeout, and a worker stalled past
  // one (Node runs expired timers before polling sockets) failed a request already answered.
  transport = createUndiciTransport({
    signer,
    connections: 4,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
  });
});
afterAll(async () => {
  await transport.close();
  await new Promise((r) => server.close(r));
});

const object: ObjectVersion = { bucket: 'b', key: 'k', size: body.length, etag: 'e1' };
const get = (start: number, length: number) => transport.get({ object, start, length });

describe('undici transport (raw dispatch)', () => {
  it('returns exactly the requested range', async () => {
    mode = 'ok';
    expect((await get(100, 300)).equals(body.subarray(100, 400))).toBe(true);
  });

  it('a body longer than the range, or cut short, is a retryable error', async () => {
    mode = 'long';
    await expect(get(0, 100)).rejects.toMatchObject({ reason: 'short-body' });
    mode = 'cut';
    const err = await get(0, 500).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
  });

  it('a changed object is a precondition failure, by status or by etag', async () => {
    mode = 'changed';
    await expect(get(0, 10)).rejects.toBeInstanceOf(PreconditionFailedError);
    mode = 'stale-etag';
    await expect(get(0, 10)).rejects.toBeInstanceOf(PreconditionFailedError);
    mode = 'ok';
    expect((await get(990, 10)).equals(body.subarray(990))).toBe(true);
  });
});
