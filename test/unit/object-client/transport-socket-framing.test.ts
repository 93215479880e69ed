/**
 * The socket transport against a raw `net` server, for framing cases the main suite does not
 * script: a head split at EVERY byte boundary (two packets), an interim 1xx in its own packet,
 * surplus bytes after the body, a head larger than 16 KiB, a Connection: close answer, and a URL
 * whose key holds CR/LF (must stay percent-encoded on the request line).
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { TransientError } from '../../../mount-client/object-client/errors.ts';
import type { RangeTransport } from '../../../mount-client/object-client/transport.ts';
import { createSocketTransport } from '../../../mount-client/object-client/transport-socket.ts';
import { UrlSigner } from '../../../mount-client/object-client/url-signer.ts';

const body = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 13) % 251));
const object: ObjectVersion = { bucket: 'b', key: 'k', size: body.length, etag: 'e1' };
let server: Server;
let transport: RangeTransport;
let connections = 0;
let lastRequestLine = '';
let script: (s: Socket, range: [number, number]) => void = () => {};
let urlPath = '/b/k';

beforeAll(async () => {
  server = createServer((s) => {
    connections++;
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end >= 0) {
        const head = buf.slice(0, end);
        lastRequestLine = head.split('\r\n')[0] ?? '';
        const m = /range: bytes=(\d+)-(\d+)/i.exec(head);
        buf = buf.slice(end + 4);
        script(s, [Number(m?.[1]), Number(m?.[2]) + 1]);
        end = buf.indexOf('\r\n\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  transport = createSocketTransport({
    signer: new UrlSigner({
      presign: async () => ({ url: `http://127.0.0.1:${port}${urlPath}`, expiresAt: Date.now() + 3_600_000 }),
    }),
    connections: 1,
    // No test here waits for a timeout, so they are far beyond any stall of a loaded machine: Node
    // runs expired timers before polling sockets, and a worker stalled past 1 s (the old value)
    // failed a request whose answer was already in the socket buffer.
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
  });
});
afterAll(async () => {
  await transport.close();
  await new Promise((r) => server.close(r));
});

const head = (a: number, e: number, extra = '') =>
  `HTTP/1.1 206 Partial Content\r\nETag: "e1"\r\nContent-Range: bytes ${a}-${e - 1}/${body.length}\r\nContent-Length: ${e - a}\r\n${extra}\r\n`;

describe('socket transport framing (raw server)', () => {
  it('reads a response split into two packets at every byte boundary of its head, on one connection', async () => {
    const before = connections;
    const h = head(100, 1100);
    for (let at = 1; at <= h.length + 1; at++) {
      script = (s, [a, e]) => {
        const bytes = Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)]);
        s.write(bytes.subarray(0, at));
        setTimeout(() => s.write(bytes.subarray(at)), 1);
      };
      const got = await transport.get({ object, start: 100, length: 1000 });
      expect(got.equals(body.subarray(100, 1100))).toBe(true);
    }
    expect(connections - before).toBe(1);
  });

  it('skips a 100 Continue that arrives in a packet of its own', async () => {
    script = (s, [a, e]) => {
      s.write('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => s.write(Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)])), 2);
    };
    const got = await transport.get({ object, start: 0, length: 500 });
    expect(got.equals(body.subarray(0, 500))).toBe(true);
  });

  it('surplus bytes after the body fail that read or close the connection; the next read is exact', async () => {
    script = (s, [a, e]) =>
      s.write(Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e), Buffer.from('JUNK')]));
    // Either outcome is safe: the exact bytes, or a retryable error — never other bytes.
    const first = await transport.get({ object, start: 0, length: 300 }).then(
      (b) => b,
      (err: unknown) => err,
    );
    if (first instanceof Buffer) expect(first.equals(body.subarray(0, 300))).toBe(true);
    else expect(first).toBeInstanceOf(TransientError);
    script = (s, [a, e]) => s.write(Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)]));
    const second = await transport.get({ object, start: 300, length: 300 });
    expect(second.equals(body.subarray(300, 600))).toBe(true);
  });

  it('refuses a response head larger than 16 KiB', async () => {
    script = (s, [a, e]) => s.write(head(a, e, `x-pad: ${'p'.repeat(17 * 1024)}\r\n`), 'latin1');
    await expect(transport.get({ object, start: 0, length: 10 })).rejects.toBeInstanceOf(TransientError);
  });

  it('a Connection: close answer is read in full and its socket is not reused', async () => {
    const before = connections;
    script = (s, [a, e]) => {
      s.end(Buffer.concat([Buffer.from(head(a, e, 'Connection: close\r\n'), 'latin1'), body.subarray(a, e)]));
    };
    expect((await transport.get({ object, start: 0, length: 100 })).equals(body.subarray(0, 100))).toBe(true);
    script = (s, [a, e]) => s.write(Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)]));
    expect((await transport.get({ object, start: 100, length: 100 })).equals(body.subarray(100, 200))).toBe(
      true,
    );
    expect(connections - before).toBe(2);
  });

  it('refuses a 206 for another range than the one asked for (never the wrong bytes at an offset)', async () => {
    // A same-length range shifted by 10 bytes, correctly framed: only Content-Range tells.
    script = (s, [a, e]) =>
      s.write(Buffer.concat([Buffer.from(head(a + 10, e + 10), 'latin1'), body.subarray(a + 10, e + 10)]));
    const err = await transport.get({ object, start: 0, length: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).reason).toBe('bad-range');
    expect((err as Error).message).toContain('asked for bytes 0-99');
  });

  it('keeps CR/LF in a key percent-encoded on the request line (no header injection)', async () => {
    urlPath = `/b/${encodeURIComponent('evil\r\nx-injected: 1\r\n.txt')}`;
    try {
      script = (s, [a, e]) =>
        s.write(Buffer.concat([Buffer.from(head(a, e), 'latin1'), body.subarray(a, e)]));
      await transport.get({ object: { ...object, key: 'evil-k' }, start: 0, length: 10 });
      expect(lastRequestLine).toBe(`GET ${urlPath} HTTP/1.1`);
      expect(lastRequestLine).not.toMatch(/[\r\n]/);
    } finally {
      urlPath = '/b/k';
    }
  });
});
