/**
 * The block GET between peers, received by the kernel straight into the caller's block buffer.
 *
 * Why not an HTTP client library: every one (undici, node:http) reads the socket into a fresh 64 KiB
 * buffer per read and hands the body on as chunks, which the requester then copies into its block.
 * Per GiB that is 16k short-lived backing stores — V8 counts them as external memory and ran a full
 * mark-compact every few blocks — plus a page fault on each new buffer's first touch and one more
 * copy. Profiled on a peer hit (docs/benchmarks/peers.md) those were the reader's largest costs once
 * the cache write was gone. `net.Socket`'s `onread` lets us choose the memory each read lands in, so
 * body bytes go from the socket into the (pooled) block buffer with no allocation and no copy. The
 * wire stays plain HTTP/1.1 — the peer server is node:http, and curl or any client still works.
 *
 * Scope: exactly what a peer server sends: a status line and headers, then a body framed by
 * content-length or chunked transfer coding (with trailers: the crc32c after a read-through). One
 * request per connection at a time; idle connections are kept per peer and reused.
 *
 * What must stay true: a read is never given more of the block buffer than the bytes the framing
 * says belong to the body, so framing bytes can never land in it; once a request has failed or been
 * abandoned its socket is destroyed at once (the kernel could otherwise still write into a buffer
 * the caller has reused); a response larger than the block is refused, never truncated.
 */
import { connect, type Socket } from 'node:net';
import { parseFields, parseResponseHead } from '../object-client/http-head.ts';

export interface BlockResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  trailers: Record<string, string>;
  /** Bytes written into the block buffer (200), or the (small) error body otherwise. */
  length: number;
  errorBody?: string;
}

export interface BlockGet {
  host: string;
  port: number;
  /** Request target (path + query). */
  target: string;
  headers: Record<string, string>;
  /** Where a 200 body goes; a longer body fails the request (`overflow`). */
  into: Buffer;
  /** Each body byte range as it lands in `into` (e.g. to checksum it while hot in the CPU cache). */
  onBody?: (bytes: Buffer) => void;
  /** Until the response headers are complete (after the connection is up). */
  headersTimeoutMs: number;
  /** Longest silence while the body arrives. */
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
  signal?: AbortSignal;
}

/** Why a block GET failed; the client maps these onto peer error kinds. */
export class BlockReceiveError extends Error {
  constructor(
    readonly reason:
      | 'connect'
      | 'connect_timeout'
      | 'headers_timeout'
      | 'body_timeout'
      | 'closed'
      | 'protocol'
      | 'overflow'
      | 'aborted',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BlockReceiveError';
  }

  /** Set when the request failed before any response byte arrived (safe to retry elsewhere). */
  early = false;
}

/** 64 KiB: the socket read size Node itself uses; framing and error bodies are small. */
const SCRATCH_BYTES = 64 * 1024;
/** Status line + headers (or trailers) longer than this are not from a peer server. */
const MAX_HEAD_BYTES = 32 * 1024;
/** An error body (JSON) longer than this is cut; it is only for the error message. */
const MAX_ERROR_BODY = 4 * 1024;

type State = 'head' | 'fixed' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'done';

class Connection {
  readonly socket: Socket;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Set while a request is active; reads are routed to it. */
  private req: Exchange | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(
    readonly key: string,
    host: string,
    port: number,
    onDead: (c: Connection) => void,
  ) {
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: () => this.req?.nextBuffer(this.scratch) ?? this.scratch,
        callback: (n: number, buf: Uint8Array) => {
          if (this.req) this.req.onRead(buf as Buffer, n);
          else this.socket.destroy(); // bytes nobody asked for: the stream is out of step
          return true;
        },
      },
    });
    const die = (err?: Error) => {
      this.dead = true;
      onDead(this);
      this.req?.fail(
        err
          ? new BlockReceiveError('connect', err.message, { cause: err })
          : new BlockReceiveError('closed', 'the peer closed the connection mid-response'),
      );
    };
    this.socket.on('error', die);
    this.socket.on('close', () => die());
    this.socket.on('end', () => this.socket.destroy());
  }

  run(ex: Exchange): void {
    this.req = ex;
    ex.attach(this);
  }

  release(): void {
    this.req = undefined;
  }
}

/** One request/response on a connection. */
class Exchange {
  private state: State = 'head';
  private head: Buffer[] = [];
  private headBytes = 0;
  private remaining = 0;
  private filled = 0;
  private errorChunks: Buffer[] = [];
  private errorBytes = 0;
  private chunked = false;
  private sizeLine = '';
  private status = 0;
  private headers: Record<string, string> = {};
  private trailers: Record<string, string> = {};
  private timer: NodeJS.Timeout | undefined;
  private conn: Connection | undefined;
  /** Whether any response byte arrived (a stale keep-alive socket fails before any). */
  gotBytes = false;
  private settled = false;
  private readonly onAbort = () => this.fail(new BlockReceiveError('aborted', 'the read was cancelled'));

  constructor(
    private readonly g: BlockGet,
    private readonly resolve: (r: BlockResponse) => void,
    private readonly reject: (e: BlockReceiveError) => void,
    private readonly finished: (conn: Connection, reusable: boolean) => void,
  ) {}

  attach(conn: Connection): void {
    this.conn = conn;
    if (this.g.signal?.aborted) {
      this.onAbort();
      return;
    }
    this.g.signal?.addEventListener('abort', this.onAbort, { once: true });
    const lines = [`GET ${this.g.target} HTTP/1.1`, `host: ${this.g.host}:${this.g.port}`];
    for (const [k, v] of Object.entries(this.g.headers)) lines.push(`${k}: ${v}`);
    this.arm(this.g.headersTimeoutMs, 'headers_timeout', 'no response headers');
    conn.socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  }

  private arm(ms: number, reason: 'headers_timeout' | 'body_timeout', what: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail(new BlockReceiveError(reason, `${what} within ${ms} ms`)), ms);
  }

  /** The memory the next socket read lands in: the block buffer only for body bytes. */
  nextBuffer(scratch: Buffer): Buffer {
    if (
      (this.state === 'fixed' || this.state === 'chunk-data') &&
      this.status === 200 &&
      this.remaining > 0
    ) {
      return this.g.into.subarray(this.filled, this.filled + this.remaining);
    }
    return scratch;
  }

  onRead(buf: Buffer, n: number): void {
    if (this.settled) return;
    this.gotBytes = true;
    if (this.state !== 'head') this.arm(this.g.bodyTimeoutMs, 'body_timeout', 'no body bytes');
    if (buf.buffer === this.g.into.buffer && buf.byteOffset === this.g.into.byteOffset + this.filled) {
      // Landed in place.
      this.body(buf.subarray(0, n), true);
      this.afterBody();
      return;
    }
    try {
      this.parse(buf.subarray(0, n));
    } catch (err) {
      this.fail(err as BlockReceiveError);
    }
  }

  /** Framing, error bodies and body bytes that arrived in the scratch buffer. */
  private parse(data: Buffer): void {
    let at = 0;
    while (at < data.length && !this.settled) {
      switch (this.state) {
        case 'head':
        case 'trailers': {
          const end = this.headEnd(data, at);
          if (end < 0) {
            this.keepHead(data.subarray(at));
            return;
          }
          this.keepHead(data.subarray(at, end));
          at = end;
          const text = Buffer.concat(this.head).toString('latin1');
          this.head = [];
          this.headBytes = 0;
          if (this.state === 'head') this.onHead(text);
          else {
            this.trailers = parseFields(text.split('\r\n'));
            this.complete(at === data.length);
            return;
          }
          break;
        }
        case 'fixed':
        case 'chunk-data': {
          const take = Math.min(this.remaining, data.length - at);
          this.body(data.subarray(at, at + take), false);
          at += take;
          // Bytes left in this read after a fixed body are beyond its framing: never reuse.
          this.afterBody(at === data.length);
          break;
        }
        case 'chunk-end':
        case 'chunk-size': {
          const nl = data.indexOf(10, at);
          const piece = data.toString('latin1', at, nl < 0 ? data.length : nl + 1);
          this.sizeLine += piece;
          at = nl < 0 ? data.length : nl + 1;
          if (this.sizeLine.length > 1024) throw protocol('chunk framing line too long');
          if (nl < 0) break;
          const line = this.sizeLine.trimEnd();
          this.sizeLine = '';
          if (this.state === 'chunk-end') {
            if (line !== '') throw protocol('missing CRLF after chunk data');
            this.state = 'chunk-size';
            break;
          }
          const size = Number.parseInt(line.split(';', 1)[0] as string, 16);
          if (!Number.isSafeInteger(size) || size < 0)
            throw protocol(`bad chunk size "${line.slice(0, 20)}"`);
          if (size === 0) {
            this.state = 'trailers';
            // An empty trailer section is just the final CRLF.
            this.head = [Buffer.from('\r\n')];
            this.headBytes = 2;
          } else {
            this.checkRoom(size);
            this.remaining = size;
            this.state = 'chunk-data';
          }
          break;
        }
        case 'done':
          // Bytes after the end of the response: the stream is out of step, never reuse it.
          this.conn?.socket.destroy();
          return;
      }
    }
  }

  /** Index just past the blank line ending a header (or trailer) section, or -1. */
  private headEnd(data: Buffer, at: number): number {
    // The terminator may straddle reads: search the kept tail together with the new bytes.
    const tail = this.head.length ? Buffer.concat(this.head).subarray(-3) : Buffer.alloc(0);
    const joined = tail.length ? Buffer.concat([tail, data.subarray(at)]) : data.subarray(at);
    const i = joined.indexOf('\r\n\r\n');
    if (i < 0) return -1;
    return at + i + 4 - tail.length;
  }

  private keepHead(part: Buffer): void {
    this.headBytes += part.length;
    if (this.headBytes > MAX_HEAD_BYTES) throw protocol('response header section too large');
    this.head.push(Buffer.from(part)); // a copy: the scratch buffer is reused by the next read
  }

  private onHead(text: string): void {
    const parsed = parseResponseHead(text);
    if (!parsed)
      throw protocol(`not an HTTP/1.1 response: "${(text.split('\r\n', 1)[0] ?? '').slice(0, 40)}"`);
    this.status = parsed.status;
    // An interim head (100 Continue, 103 Early Hints): no body; the real response follows.
    if (this.status >= 100 && this.status < 200 && this.status !== 101) {
      this.status = 0;
      return;
    }
    this.headers = parsed.fields;
    clearTimeout(this.timer);
    this.arm(this.g.bodyTimeoutMs, 'body_timeout', 'no body bytes');
    const te = this.headers['transfer-encoding'];
    if (te !== undefined) {
      if (te.toLowerCase() !== 'chunked') throw protocol(`unsupported transfer-encoding ${te}`);
      this.chunked = true;
      this.state = 'chunk-size';
      return;
    }
    const cl = Number(this.headers['content-length'] ?? 'NaN');
    if (!Number.isSafeInteger(cl) || cl < 0)
      throw protocol('response without content-length or chunked framing');
    this.checkRoom(cl);
    this.remaining = cl;
    this.state = 'fixed';
    if (cl === 0) this.complete(true);
  }

  private checkRoom(bytes: number): void {
    const room = this.status === 200 ? this.g.into.length - this.filled : Number.POSITIVE_INFINITY;
    if (bytes > room) {
      throw new BlockReceiveError('overflow', `the peer sent more than the ${this.g.into.length}-byte block`);
    }
  }

  private body(bytes: Buffer, inPlace: boolean): void {
    this.remaining -= bytes.length;
    if (this.status === 200) {
      if (!inPlace) bytes.copy(this.g.into, this.filled);
      const landed = this.g.into.subarray(this.filled, this.filled + bytes.length);
      this.filled += bytes.length;
      this.g.onBody?.(landed);
    } else if (this.errorBytes < MAX_ERROR_BODY) {
      this.errorChunks.push(Buffer.from(bytes.subarray(0, MAX_ERROR_BODY - this.errorBytes)));
      this.errorBytes += Math.min(bytes.length, MAX_ERROR_BODY - this.errorBytes);
    }
  }

  private afterBody(clean = true): void {
    if (this.remaining > 0) return;
    if (this.chunked) this.state = 'chunk-end';
    else this.complete(clean);
  }

  private complete(clean: boolean): void {
    this.state = 'done';
    const keepAlive = clean && (this.headers.connection ?? '').toLowerCase() !== 'close';
    this.settle();
    this.resolve({
      status: this.status,
      headers: this.headers,
      trailers: this.trailers,
      length: this.status === 200 ? this.filled : this.errorBytes,
      ...(this.status !== 200 ? { errorBody: Buffer.concat(this.errorChunks).toString('utf8') } : {}),
    });
    if (this.conn) this.finished(this.conn, keepAlive);
  }

  fail(err: BlockReceiveError): void {
    if (this.settled) return;
    err.early = !this.gotBytes;
    this.settle();
    // Destroy first: the kernel must not write into the block buffer once the caller has it back.
    this.conn?.socket.destroy();
    this.reject(err);
    if (this.conn) this.finished(this.conn, false);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.g.signal?.removeEventListener('abort', this.onAbort);
  }
}

function protocol(message: string): BlockReceiveError {
  return new BlockReceiveError('protocol', message);
}

/** Keep-alive connections per peer (at most `maxPerPeer` busy at once) and the block GET over them. */
export class BlockReceiver {
  private readonly idle = new Map<string, Connection[]>();
  private readonly all = new Set<Connection>();
  private closed = false;

  private readonly slots = new Map<string, { active: number; waiting: Array<() => void> }>();

  /**
   * @param maxPerPeer requests (and so connections) in flight per peer; more wait in a queue whose
   *   wait does not count against the headers timeout, so a burst of read-ahead is not mistaken for
   *   a dead peer. 16 matches the data path's default read concurrency per node; it is also the
   *   number of idle connections kept per peer.
   * @param idleMs an idle connection is closed after this long; below the peer server's 30 s
   *   keep-alive so this side always closes first and never races the server's close with a request.
   */
  constructor(
    private readonly maxPerPeer = 16,
    private readonly idleMs = 20_000,
  ) {}

  async get(g: BlockGet): Promise<BlockResponse> {
    const key = `${g.host}:${g.port}`;
    await this.acquire(key, g.signal);
    try {
      return await this.request(g, key);
    } finally {
      this.releaseSlot(key);
    }
  }

  private acquire(key: string, signal: AbortSignal | undefined): Promise<void> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { active: 0, waiting: [] };
      this.slots.set(key, slot);
    }
    if (slot.active < this.maxPerPeer) {
      slot.active++;
      return Promise.resolve();
    }
    const s = slot;
    return new Promise((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        s.active++;
        resolve();
      };
      const onAbort = () => {
        const i = s.waiting.indexOf(go);
        if (i >= 0) s.waiting.splice(i, 1);
        reject(new BlockReceiveError('aborted', 'the read was cancelled'));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      s.waiting.push(go);
    });
  }

  private releaseSlot(key: string): void {
    const slot = this.slots.get(key);
    if (!slot) return;
    slot.active--;
    const next = slot.waiting.shift();
    if (next) next();
    else if (slot.active === 0) this.slots.delete(key);
  }

  private async request(g: BlockGet, key: string): Promise<BlockResponse> {
    const reused = this.take(key);
    try {
      return await this.once(g, reused ?? (await this.open(g)));
    } catch (err) {
      // A kept-alive socket the peer closed while idle fails before any response byte: that says
      // nothing about the peer, so try once on a fresh connection.
      const stale =
        err instanceof BlockReceiveError &&
        err.early &&
        (err.reason === 'closed' || err.reason === 'connect');
      if (reused && stale && !g.signal?.aborted) {
        return this.once(g, await this.open(g));
      }
      throw err;
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.all) {
      clearTimeout(c.idleTimer);
      c.socket.destroy();
    }
    this.all.clear();
    this.idle.clear();
  }

  private take(key: string): Connection | undefined {
    const list = this.idle.get(key);
    let c = list?.pop();
    while (c?.dead) c = list?.pop();
    if (c) clearTimeout(c.idleTimer);
    return c;
  }

  private open(g: BlockGet): Promise<Connection> {
    if (this.closed) return Promise.reject(new BlockReceiveError('closed', 'the peer client is closed'));
    const key = `${g.host}:${g.port}`;
    const c = new Connection(key, g.host, g.port, (dead) => this.forget(dead));
    this.all.add(c);
    return new Promise((resolve, reject) => {
      const fail = (err: BlockReceiveError) => {
        clearTimeout(timer);
        g.signal?.removeEventListener('abort', onAbort);
        c.socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new BlockReceiveError('connect_timeout', `no connection within ${g.connectTimeoutMs} ms`)),
        g.connectTimeoutMs,
      );
      const onAbort = () => fail(new BlockReceiveError('aborted', 'the read was cancelled'));
      g.signal?.addEventListener('abort', onAbort, { once: true });
      c.socket.once('error', (err) => fail(new BlockReceiveError('connect', err.message, { cause: err })));
      c.socket.once('connect', () => {
        clearTimeout(timer);
        g.signal?.removeEventListener('abort', onAbort);
        resolve(c);
      });
    });
  }

  private once(g: BlockGet, c: Connection): Promise<BlockResponse> {
    return new Promise((resolve, reject) => {
      const ex = new Exchange(g, resolve, reject, (conn, reusable) => {
        conn.release();
        if (reusable && !conn.dead && !this.closed) this.park(conn);
        else conn.socket.destroy();
      });
      c.run(ex);
    });
  }

  private park(c: Connection): void {
    const list = this.idle.get(c.key) ?? [];
    if (list.length >= this.maxPerPeer) {
      c.socket.destroy();
      return;
    }
    list.push(c);
    this.idle.set(c.key, list);
    c.idleTimer = setTimeout(() => c.socket.destroy(), this.idleMs);
    c.idleTimer.unref();
  }

  private forget(c: Connection): void {
    clearTimeout(c.idleTimer);
    this.all.delete(c);
    const list = this.idle.get(c.key);
    if (list) {
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
    }
  }
}
