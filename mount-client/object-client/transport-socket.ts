/**
 * Ranged GETs over keep-alive HTTP/1.1 sockets whose bytes the kernel writes straight into the
 * block buffer (Node's `onread` user-buffer mode): the default transport of the data path.
 *
 * Why not undici (transport-undici.ts, still selectable): a --cpu-prof of the mount process on a
 * cold sequential read (docs/benchmarks/mount-data.md) showed the cold path dominated by what a
 * general-purpose client does per 64 KiB socket chunk — a fresh ArrayBuffer per chunk (external
 * memory: V8 ran a full mark-compact every ~64 MiB streamed, "external memory pressure"), a copy
 * into llhttp's wasm memory, a handler call chain, then our copy into the block. Here each socket
 * read lands in `block.subarray(received)`: no chunk buffers, no parser copies, no per-chunk
 * allocation; only the response head (≤ 16 KiB) is parsed, in a per-connection buffer. Measured
 * side by side with undici in bench/mount/ceilings.ts.
 *
 * Scope, deliberately small: GET with Range (+ If-Match) on a presigned URL (url-signer.ts), one
 * request per connection at a time (no pipelining), `Content-Length`-framed 2xx bodies (S3 always
 * frames GetObject so). Anything else on a 2xx — chunked, a length other than the range — is a
 * TransientError and the connection is dropped. Error responses (non-2xx) are read up to 16 KiB
 * for their S3 `<Code>`, classified exactly like the undici transport (statusError), and their
 * connection is closed rather than reused. `http:` uses net, `https:` uses tls (same onread mode).
 *
 * What must stay true: a body byte is only ever written into the buffer of the exchange that owns
 * the connection, within [0, length); a buffer is resolved only when exactly `length` bytes came
 * and the response matched the pinned version (checkSameVersion); a failed exchange destroys its
 * socket, so no late byte can land in a buffer after its promise settled.
 */
import net from 'node:net';
import tls from 'node:tls';
import { S3ReadError, TransientError } from './errors.ts';
import { parseResponseHead } from './http-head.ts';
import {
  checkContentRange,
  checkSameVersion,
  quotedEtag,
  type RangeRequest,
  type RangeTransport,
  totalFromContentRange,
} from './transport.ts';
import { classifyNetworkError, statusError } from './transport-undici.ts';
import type { UrlSigner } from './url-signer.ts';

export interface SocketTransportOptions {
  signer: UrlSigner;
  /** Sockets per origin; the limiter above caps requests, this just must not be lower. */
  connections: number;
  /** 3 s to the response head: same reasoning as transport-undici.ts (S3 p99 first byte ≈ 200 ms). */
  headersTimeoutMs?: number;
  /** 5 s without a body byte: a stalled transfer, retry it rather than hang the FUSE op. */
  bodyTimeoutMs?: number;
  /**
   * 4 s idle before a kept-alive socket is closed: under the 5 s keep-alive of Node-based servers
   * (fauxqs, most S3 emulators) so we close first; S3 itself keeps idle connections ~20 s. A socket
   * the server closed anyway is retried once on a new connection (see `exchange`).
   */
  idleTimeoutMs?: number;
  /** Extra TLS options for `https:` origins (tests: a self-signed CA). */
  tls?: tls.ConnectionOptions;
}

/** The response head must fit here; S3 heads are well under 2 KiB. */
const HEAD_BYTES = 16 * 1024;
/** Error bodies are S3 XML of a few hundred bytes; more is never needed to classify them. */
const MAX_ERROR_BODY = 16 * 1024;

export function createSocketTransport(o: SocketTransportOptions): RangeTransport {
  const pools = new Map<string, OriginPool>();
  let closed = false;
  const poolFor = (u: URL): OriginPool => {
    const origin = `${u.protocol}//${u.host}`;
    let p = pools.get(origin);
    if (!p) {
      p = new OriginPool(u, o);
      pools.set(origin, p);
    }
    return p;
  };
  return {
    name: 'socket',
    async get(req: RangeRequest): Promise<Buffer> {
      if (closed) throw new Error('socket transport is closed');
      const obj = req.object;
      const u = new URL(await o.signer.urlFor(obj));
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new TransientError(
          'network',
          `unsupported URL scheme ${u.protocol} for s3://${obj.bucket}/${obj.key}`,
        );
      }
      const head =
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n` +
        `range: bytes=${req.start}-${req.start + req.length - 1}\r\n` +
        (obj.versionId ? '' : `if-match: ${quotedEtag(obj.etag)}\r\n`) +
        'user-agent: strata-mount\r\n\r\n';
      const r = await poolFor(u).exchange(head, req);
      if ('status' in r) throw statusError(r.status, r.text, req, () => o.signer.invalidate(obj));
      return r.body;
    },
    async close() {
      closed = true;
      for (const p of pools.values()) p.close();
      pools.clear();
    },
  };
}

type Outcome = { body: Buffer } | { status: number; text: string };

/** Keep-alive connections to one origin, at most `connections` open. */
class OriginPool {
  private readonly idle: Conn[] = [];
  private open = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly url: URL,
    private readonly o: SocketTransportOptions,
  ) {}

  /**
   * Runs one request on an idle connection (or a new one). A reused connection that the server
   * had already closed fails before any response byte: that attempt is repeated once on a fresh
   * connection, as undici does for idempotent requests, so an idle close never costs a retry.
   */
  async exchange(head: string, req: RangeRequest): Promise<Outcome> {
    let c = await this.take();
    try {
      return await c.run(head, req);
    } catch (err) {
      if (!(err instanceof StaleConnection)) throw err;
      c = this.connect();
      return await c.run(head, req).catch((e: unknown) => {
        throw e instanceof StaleConnection ? e.cause : e;
      });
    } finally {
      this.give(c);
    }
  }

  private async take(): Promise<Conn> {
    for (;;) {
      const c = this.idle.pop();
      if (c) {
        if (c.usable) return c;
        continue;
      }
      if (this.open < this.o.connections) return this.connect();
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  private connect(): Conn {
    this.open++;
    const c: Conn = new Conn(this.url, this.o, () => {
      this.open--;
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      this.waiting.shift()?.();
    });
    return c;
  }

  private give(c: Conn): void {
    if (c.usable) {
      c.park(this.o.idleTimeoutMs ?? 4000);
      this.idle.push(c);
      this.waiting.shift()?.();
    }
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.destroy();
  }
}

/**
 * A TLS certificate the node does not trust is a configuration problem, not a transient one:
 * retrying would only spend the retry budget before the same EIO, so it fails at once with the fix.
 */
function certificateError(err: Error, url: URL): S3ReadError | undefined {
  const code = (err as { code?: string }).code ?? '';
  if (!/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME/.test(code)) return undefined;
  return new S3ReadError(
    `TLS certificate of ${url.host} rejected (${code}): trust its CA with NODE_EXTRA_CA_CERTS=<ca.pem> for the mount process, or use the right --s3-endpoint`,
    1,
    undefined,
    { cause: err },
  );
}

const reset = (what: string) => new TransientError('reset', `${what} before the response was complete`);

/** A reused keep-alive socket closed by the server before answering; retried on a new one. */
class StaleConnection extends Error {
  constructor(override readonly cause: Error) {
    super('kept-alive connection was closed by the server', { cause });
  }
}

/** One socket and the exchange it is serving. */
class Conn {
  private readonly socket: net.Socket;
  /** The response head accumulates here; also the read buffer whenever no body is being read. */
  private readonly head = Buffer.allocUnsafe(HEAD_BYTES);
  private ex: Exchange | undefined;
  private dead = false;
  private used = false;

  constructor(url: URL, o: SocketTransportOptions, onGone: () => void) {
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const onread = {
      // Called by Node after every read for the buffer the next read fills: the unread rest of the
      // block while a body is streaming, the head buffer otherwise.
      buffer: () => this.ex?.target() ?? this.head,
      callback: (n: number, buf: Buffer) => {
        if (this.ex) this.ex.onBytes(buf, n);
        else this.destroy(); // bytes nobody asked for: the connection's framing is lost
        return true;
      },
    };
    this.socket =
      url.protocol === 'https:'
        ? tls.connect({
            ...o.tls,
            host,
            port,
            servername: net.isIP(host) ? undefined : host,
            onread,
          } as tls.ConnectionOptions)
        : net.connect({ host, port, onread } as net.NetConnectOpts);
    this.socket.setNoDelay(true);
    this.socket.on('timeout', () => {
      if (this.ex) this.ex.fail(new TransientError('timeout', this.ex.timeoutMessage()));
      else this.destroy();
    });
    this.socket.on('error', (err) => this.ex?.fail(certificateError(err, url) ?? classifyNetworkError(err)));
    this.socket.on('end', () => this.ex?.fail(reset('the server closed the connection')));
    this.socket.once('close', () => {
      this.dead = true;
      this.ex?.fail(reset('connection closed'));
      onGone();
    });
    this.timeouts = { head: o.headersTimeoutMs ?? 3000, body: o.bodyTimeoutMs ?? 5000 };
  }

  private readonly timeouts: { head: number; body: number };

  get usable(): boolean {
    return !this.dead && !this.ex && !this.socket.destroyed;
  }

  /** Idle in the pool: does not keep the process alive, closes itself after `ms`. */
  park(ms: number): void {
    this.socket.unref();
    this.socket.setTimeout(ms);
  }

  run(head: string, req: RangeRequest): Promise<Outcome> {
    const reused = this.used;
    this.used = true;
    this.socket.ref();
    this.socket.setTimeout(this.timeouts.head);
    return new Promise<Outcome>((resolve, reject) => {
      const ex = new Exchange(req, this.head, this.timeouts, this.socket, (err, value) => {
        this.ex = undefined;
        if (err) {
          this.destroy();
          const stale =
            reused &&
            !ex.sawBytes &&
            err instanceof TransientError &&
            (err.reason === 'reset' || err.reason === 'network') &&
            !req.signal?.aborted;
          reject(stale ? new StaleConnection(err) : err);
        } else {
          if (!ex.keepAlive) this.destroy();
          resolve(value as Outcome);
        }
      });
      this.ex = ex;
      if (this.dead || this.socket.destroyed) return ex.fail(reset('connection closed'));
      this.socket.write(head);
    });
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}

/** One request/response on a connection: parses the head, then fills the block in place. */
class Exchange {
  sawBytes = false;
  keepAlive = true;
  private headLen = 0;
  private phase: 'head' | 'body' | 'error' | 'done' = 'head';
  private out: Buffer | undefined;
  private got = 0;
  private status = 0;
  private errorChunks: Buffer[] = [];
  private errorBytes = 0;
  private errorLength = -1;
  private chunked = false;
  private readonly onAbort = () =>
    this.fail(
      (this.req.signal?.reason as Error | undefined) ??
        Object.assign(new Error('aborted'), { name: 'AbortError' }),
    );

  constructor(
    private readonly req: RangeRequest,
    private readonly head: Buffer,
    private readonly timeouts: { head: number; body: number },
    private readonly socket: net.Socket,
    private readonly done: (err: Error | undefined, value?: Outcome) => void,
  ) {
    if (req.signal?.aborted) queueMicrotask(this.onAbort);
    else req.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Where the next socket read should land. */
  target(): Buffer {
    if (this.phase === 'body' && this.out && this.got < this.out.length) return this.out.subarray(this.got);
    return this.head.subarray(this.phase === 'head' ? this.headLen : 0);
  }

  timeoutMessage(): string {
    const o = this.req.object;
    return this.phase === 'head'
      ? `S3 sent no response head within ${this.timeouts.head} ms for s3://${o.bucket}/${o.key}`
      : `S3 body stalled for ${this.timeouts.body} ms for s3://${o.bucket}/${o.key}`;
  }

  onBytes(buf: Buffer, n: number): void {
    if (this.phase === 'done' || n <= 0) return;
    this.sawBytes = true;
    if (this.phase === 'body') {
      const out = this.out as Buffer;
      // In place when Node read into target(); otherwise (the buffer for this read was handed out
      // before the body started) copy it to where it belongs.
      if (!(buf.buffer === out.buffer && buf.byteOffset === out.byteOffset + this.got)) {
        if (this.got + n > out.length) {
          this.fail(this.longBody());
          return;
        }
        buf.copy(out, this.got, 0, n);
      }
      this.got += n;
      if (this.got === out.length) this.finish({ body: out });
      return;
    }
    if (this.phase === 'error') {
      this.onErrorBytes(buf.subarray(0, n));
      return;
    }
    // Head phase: bytes belong at head[headLen…].
    if (!(buf.buffer === this.head.buffer && buf.byteOffset === this.head.byteOffset + this.headLen)) {
      if (this.headLen + n > this.head.length) {
        this.fail(new TransientError('network', 'S3 response head larger than 16 KiB'));
        return;
      }
      buf.copy(this.head, this.headLen, 0, n);
    }
    const from = Math.max(0, this.headLen - 3);
    this.headLen += n;
    const end = this.head.subarray(0, this.headLen).indexOf('\r\n\r\n', from, 'latin1');
    if (end < 0) {
      if (this.headLen === this.head.length)
        this.fail(new TransientError('network', 'S3 response head larger than 16 KiB'));
      return;
    }
    this.onHead(this.head.toString('latin1', 0, end), end + 4);
  }

  private onHead(text: string, bodyStart: number): void {
    const parsed = parseResponseHead(text);
    if (!parsed) {
      const first = text.split('\r\n', 1)[0] ?? '';
      this.fail(
        new TransientError('network', `not an HTTP/1.1 response: ${JSON.stringify(first.slice(0, 80))}`),
      );
      return;
    }
    this.status = parsed.status;
    const h = parsed.fields;
    if (/\bclose\b/i.test(h.connection ?? '')) this.keepAlive = false;
    this.chunked = /\bchunked\b/i.test(h['transfer-encoding'] ?? '');
    const lengthHeader = h['content-length'];
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
    const rest = this.head.subarray(bodyStart, this.headLen);
    this.socket.setTimeout(this.timeouts.body);
    if (this.status >= 100 && this.status < 200) {
      // An interim response (100 Continue): the real head follows.
      const n = rest.copy(this.head, 0);
      this.headLen = 0;
      this.onBytes(this.head, n);
      return;
    }
    if (this.status !== 206 && this.status !== 200) {
      this.keepAlive = false;
      this.phase = 'error';
      this.errorLength = this.chunked ? -1 : (length ?? -1);
      if (this.errorLength === 0) {
        this.finishError();
        return;
      }
      if (rest.length) this.onErrorBytes(Buffer.from(rest));
      return;
    }
    const req = this.req;
    try {
      checkSameVersion(
        req,
        h['etag'],
        h['x-amz-version-id'],
        this.status === 206 ? totalFromContentRange(h['content-range']) : length,
      );
      if (this.status === 206) checkContentRange(req, h['content-range']);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.status === 200 && (req.start !== 0 || length !== req.length)) {
      this.fail(
        new TransientError(
          'short-body',
          `server ignored the Range header for ${req.object.key}`,
          this.status,
        ),
      );
      return;
    }
    if (this.chunked || length === undefined) {
      this.fail(
        new TransientError(
          'short-body',
          `S3 sent a ${this.chunked ? 'chunked' : 'length-less'} body for ${req.object.key}`,
          this.status,
        ),
      );
      return;
    }
    if (length > req.length) {
      this.fail(this.longBody());
      return;
    }
    if (length < req.length) {
      this.fail(
        new TransientError(
          'short-body',
          `got ${length} of ${req.length} bytes for ${req.object.key}`,
          this.status,
        ),
      );
      return;
    }
    const out = req.alloc ? req.alloc(req.length) : Buffer.allocUnsafe(req.length);
    if (rest.length > out.length) {
      this.fail(this.longBody());
      return;
    }
    rest.copy(out, 0);
    this.out = out;
    this.got = rest.length;
    this.phase = 'body';
    this.headLen = 0;
    if (this.got === out.length) this.finish({ body: out });
  }

  private longBody(): TransientError {
    return new TransientError(
      'short-body',
      `body longer than the ${this.req.length}-byte range`,
      this.status,
    );
  }

  private onErrorBytes(b: Buffer): void {
    if (this.errorBytes < MAX_ERROR_BODY) this.errorChunks.push(Buffer.from(b));
    this.errorBytes += b.length;
    const whole = Buffer.concat(this.errorChunks);
    const complete =
      this.errorLength >= 0
        ? this.errorBytes >= this.errorLength
        : this.chunked && whole.subarray(-5).toString('latin1') === '0\r\n\r\n';
    if (complete || this.errorBytes >= MAX_ERROR_BODY) this.finishError();
  }

  private finishError(): void {
    let text = Buffer.concat(this.errorChunks).toString('utf8');
    if (this.chunked) text = text.replace(/(^|\r\n)[0-9a-fA-F]+(;[^\r\n]*)?\r\n/g, '$1');
    this.finish({ status: this.status, text });
  }

  /** The connection ended: an error body framed by the close is complete; anything else failed. */
  fail(err: Error): void {
    if (this.phase === 'error' && this.errorLength < 0 && !this.chunked) {
      this.finishError();
      return;
    }
    this.settle(err);
  }

  private finish(v: Outcome): void {
    this.settle(undefined, v);
  }

  private settle(err: Error | undefined, v?: Outcome): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.req.signal?.removeEventListener('abort', this.onAbort);
    this.done(err, v);
  }
}
