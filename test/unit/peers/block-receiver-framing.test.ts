/**
 * The peer block receiver against a raw `net` server that frames responses byte by byte: a head
 * split at every byte boundary, interim 1xx heads, chunk-size lines split across reads, and bytes
 * beyond the framed body (the connection must then never be reused).
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BlockGet, BlockReceiver } from '../../../mount-client/peers/block-receiver.ts';

const block = randomBytes(3000);
let server: Server;
let port = 0;
let connections = 0;
/** How the server answers the next request on a socket. */
let script: (s: Socket) => void = () => {};

beforeAll(async () => {
  server = createServer((s) => {
    connections++;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end >= 0) {
        buf = buf.slice(end + 4);
        script(s);
        end = buf.indexOf('\r\n\r\n');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const get = (into = Buffer.alloc(block.length)): BlockGet => ({
  host: '127.0.0.1',
  port,
  target: '/blocks/x',
  headers: {},
  into,
  // No test here waits for a timeout, so they are far beyond any stall of a loaded machine: Node
  // runs expired timers before polling sockets, and a worker stalled past 2 s (the old value)
  // failed a response that was already in the socket buffer.
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
});

/** Writes `bytes` in two packets split at `at` (the second one on a later tick). */
const splitWrite = (s: Socket, bytes: Buffer, at: number) => {
  if (at > 0) s.write(bytes.subarray(0, at));
  setTimeout(() => s.write(bytes.subarray(at)), 2);
};

const fixedHead = `HTTP/1.1 200 OK\r\ncontent-length: ${block.length}\r\nx-strata-crc32c: 9\r\n\r\n`;

describe('BlockReceiver framing (raw server)', () => {
  it('reads a response whose head is split at every byte boundary, reusing one connection', async () => {
    const receiver = new BlockReceiver(1);
    const bytes = Buffer.concat([Buffer.from(fixedHead, 'latin1'), block]);
    const before = connections;
    try {
      for (let at = 0; at <= fixedHead.length + 1; at++) {
        script = (s) => splitWrite(s, bytes, at);
        const into = Buffer.alloc(block.length);
        const res = await receiver.get(get(into));
        expect(res).toMatchObject({ status: 200, length: block.length });
        expect(res.headers['x-strata-crc32c']).toBe('9');
        expect(into.equals(block)).toBe(true);
      }
      expect(connections - before).toBe(1);
    } finally {
      receiver.close();
    }
  });

  it('reads chunked framing split at every byte of its size lines and trailer', async () => {
    const receiver = new BlockReceiver(1);
    const head = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n';
    const frame = (b: Buffer) =>
      Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
    const bytes = Buffer.concat([
      Buffer.from(head),
      frame(block.subarray(0, 1000)),
      frame(block.subarray(1000)),
      Buffer.from('0\r\nx-strata-crc32c: 5\r\n\r\n'),
    ]);
    try {
      // Every split point in the framing after the head (and a few inside the data).
      const framing = [...Array(12).keys()].map((i) => head.length + i);
      const tail = [...Array(30).keys()].map((i) => bytes.length - 30 + i);
      for (const at of [...framing, head.length + 1010, ...tail]) {
        script = (s) => splitWrite(s, bytes, at);
        const into = Buffer.alloc(block.length);
        const res = await receiver.get(get(into));
        expect(res.length).toBe(block.length);
        expect(res.trailers['x-strata-crc32c']).toBe('5');
        expect(into.equals(block)).toBe(true);
      }
    } finally {
      receiver.close();
    }
  });

  it('skips an interim 100 Continue head', async () => {
    const receiver = new BlockReceiver(1);
    script = (s) => s.write(Buffer.concat([Buffer.from(`HTTP/1.1 100 Continue\r\n\r\n${fixedHead}`), block]));
    try {
      const into = Buffer.alloc(block.length);
      const res = await receiver.get(get(into));
      expect(res.status).toBe(200);
      expect(into.equals(block)).toBe(true);
    } finally {
      receiver.close();
    }
  });

  it('never reuses a connection that carried bytes beyond the framed body', async () => {
    const receiver = new BlockReceiver(1);
    const before = connections;
    try {
      // The surplus arrives in the same packet as the body's end: dropped silently, the stream is
      // out of step, so the next request must go out on a new connection.
      script = (s) =>
        s.write(Buffer.concat([Buffer.from(fixedHead), block, Buffer.from('HTTP/1.1 200 OK\r\n')]));
      const into = Buffer.alloc(block.length);
      expect((await receiver.get(get(into))).status).toBe(200);
      script = (s) => s.write(Buffer.concat([Buffer.from(fixedHead), block]));
      const again = Buffer.alloc(block.length);
      expect((await receiver.get(get(again))).status).toBe(200);
      expect(again.equals(block)).toBe(true);
      expect(connections - before).toBe(2);
    } finally {
      receiver.close();
    }
  });
});
