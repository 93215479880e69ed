/**
 * Ranged GETs with undici straight to S3 on a presigned URL (see url-signer.ts). Why not the SDK:
 * its GetObject pipeline adds middleware, header signing and a stream wrapper per request; undici's
 * raw dispatch hands us each body chunk, copied once into the block buffer. Measured side by side in bench/mount/ceilings.ts.
 */
import { Agent, type Dispatcher, errors as undiciErrors } from 'undici';
import { NotFoundError, PreconditionFailedError, S3ReadError, TransientError } from './errors.ts';
import {
  checkContentRange,
  checkSameVersion,
  quotedEtag,
  type RangeRequest,
  type RangeTransport,
  totalFromContentRange,
} from './transport.ts';
import type { UrlSigner } from './url-signer.ts';

export interface UndiciTransportOptions {
  signer: UrlSigner;
  /** Sockets per origin; the limiter above caps requests, this just must not be lower. */
  connections: number;
  /**
   * 3 s to first byte: S3's p99 first-byte latency is ~100–200 ms, so 3 s means the request is lost
   * (dead connection, overloaded front-end) and a retry on a new connection is faster than waiting.
   */
  headersTimeoutMs?: number;
  /** 5 s without a body chunk: a stalled transfer, retry it rather than hang the FUSE op. */
  bodyTimeoutMs?: number;
}

export function createUndiciTransport(o: UndiciTransportOptions): RangeTransport {
  const agent = new Agent({
    connections: o.connections,
    headersTimeout: o.headersTimeoutMs ?? 3000,
    bodyTimeout: o.bodyTimeoutMs ?? 5000,
    // Keep connections warm between blocks of a sequential read (TLS setup costs a round trip or two).
    keepAliveTimeout: 30_000,
  });
  return {
    name: 'undici',
    async get(req: RangeRequest): Promise<Buffer> {
      const o2 = req.object;
      const url = await o.signer.urlFor(o2);
      const headers: Record<string, string> = { range: `bytes=${req.start}-${req.start + req.length - 1}` };
      if (!o2.versionId) headers['if-match'] = quotedEtag(o2.etag);
      const u = new URL(url);
      const r = await rangedGet(agent, { origin: u.origin, path: u.pathname + u.search, headers }, req);
      if ('status' in r) throw statusError(r.status, r.text, req, () => o.signer.invalidate(o2));
      return r.body;
    },
    close: () => agent.close(),
  };
}

/** Error bodies are S3 XML of a few hundred bytes; more is never needed to classify them. */
const MAX_ERROR_BODY = 16 * 1024;

/**
 * One ranged GET through undici's raw dispatch API: each body chunk is copied straight into the
 * block buffer from the socket callback. The stream-based `request()` body cost a Readable, an
 * async iterator and several nextTicks per 64 KiB chunk — about a third of the mount's CPU on a
 * cold read in a --cpu-prof of the mount process. Resolves with the bytes on 200/206 (after the
 * version and length checks), with the status and error text otherwise; rejects with typed errors.
 */
function rangedGet(
  agent: Agent,
  opts: { origin: string; path: string; headers: Record<string, string> },
  req: RangeRequest,
): Promise<{ body: Buffer } | { status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let status = 0;
    let out: Buffer | undefined;
    let off = 0;
    const errorChunks: Buffer[] = [];
    let errorBytes = 0;
    let ctrl: Dispatcher.DispatchController | undefined;
    const onAbort = () => ctrl?.abort(req.signal?.reason ?? new Error('aborted'));
    const done = (err: Error | undefined, value?: { body: Buffer } | { status: number; text: string }) => {
      if (settled) return;
      settled = true;
      req.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value as { body: Buffer } | { status: number; text: string });
    };
    /** Fails the request with a typed error and tears the connection's response down. */
    const fail = (c: Dispatcher.DispatchController, err: Error) => {
      done(err);
      if (!c.aborted) c.abort(err);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        ctrl = c;
        if (req.signal?.aborted) c.abort(req.signal.reason ?? new Error('aborted'));
      },
      onResponseStart(c, statusCode, h) {
        status = statusCode;
        if (status !== 206 && status !== 200) return;
        const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
        try {
          checkSameVersion(
            req,
            one(h.etag),
            one(h['x-amz-version-id']),
            status === 206
              ? totalFromContentRange(one(h['content-range']))
              : Number(one(h['content-length'])),
          );
          if (status === 206) checkContentRange(req, one(h['content-range']));
        } catch (err) {
          return fail(c, err as Error);
        }
        if (status === 200 && (req.start !== 0 || Number(one(h['content-length'])) !== req.length)) {
          return fail(
            c,
            new TransientError('short-body', `server ignored the Range header for ${req.object.key}`, status),
          );
        }
        out = req.alloc ? req.alloc(req.length) : Buffer.allocUnsafe(req.length);
      },
      onResponseData(c, chunk) {
        if (settled) return;
        if (!out) {
          if (errorBytes < MAX_ERROR_BODY) {
            errorChunks.push(chunk);
            errorBytes += chunk.length;
          }
          return;
        }
        if (off + chunk.length > out.length) {
          return fail(
            c,
            new TransientError('short-body', `body longer than the ${req.length}-byte range`, status),
          );
        }
        chunk.copy(out, off);
        off += chunk.length;
      },
      onResponseEnd() {
        if (!out) return done(undefined, { status, text: Buffer.concat(errorChunks).toString('utf8') });
        if (off !== req.length) {
          return done(
            new TransientError(
              'short-body',
              `got ${off} of ${req.length} bytes for ${req.object.key}`,
              status,
            ),
          );
        }
        done(undefined, { body: out });
      },
      onResponseError(_c, err) {
        done(classifyNetworkError(err));
      },
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      agent.dispatch({ origin: opts.origin, path: opts.path, method: 'GET', headers: opts.headers }, handler);
    } catch (err) {
      done(classifyNetworkError(err));
    }
  });
}

export function statusError(
  status: number,
  body: string,
  req: RangeRequest,
  invalidateUrl?: () => void,
): Error {
  const o = req.object;
  const where = `s3://${o.bucket}/${o.key}`;
  const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1] ?? '';
  if (status === 412 || status === 416) {
    // 416: the range no longer fits — the object was replaced by a shorter one.
    return new PreconditionFailedError(
      `${where} changed since it was opened (HTTP ${status}); reopen the file`,
    );
  }
  if (status === 404)
    return new NotFoundError(`${where} (version ${o.versionId ?? o.etag}) no longer exists in S3`);
  if (status === 429 || code === 'SlowDown')
    return new TransientError('throttled', `${where}: throttled`, status);
  if (status >= 500) return new TransientError('http-5xx', `${where}: HTTP ${status} ${code}`.trim(), status);
  if (status === 403 && invalidateUrl && /expired/i.test(body)) {
    // Presigned URL expired or credentials rotated: re-sign and retry (bounded by the retry budget).
    invalidateUrl();
    return new TransientError('expired-url', `${where}: HTTP 403 ${code}, re-signing`, status);
  }
  if (code === 'InvalidObjectState') {
    // Not a permission problem: the object is in an archive storage class and must be restored
    // before any GET returns its bytes; retrying cannot help.
    return new S3ReadError(
      `${where} is archived (Glacier Flexible Retrieval / Deep Archive storage class): restore it first (aws s3api restore-object --bucket ${shellQuote(o.bucket)} --key ${shellQuote(o.key)}${o.versionId ? ` --version-id ${shellQuote(o.versionId)}` : ''} --restore-request Days=7), then read it again`,
      1,
      status,
      { s3Code: code },
    );
  }
  if (status === 403) {
    // Without s3:ListBucket (mount clients have none, by design) S3 answers 403 for a version that
    // no longer exists too, so the message names both causes.
    return new S3ReadError(
      `${where}: HTTP 403 ${code}: the node's credentials may not read it (check s3:GetObject${o.versionId ? ', s3:GetObjectVersion' : ''} on the data prefix), or it was deleted since it was opened (reopen the file)`,
      1,
      status,
      { s3Code: code },
    );
  }
  return new S3ReadError(
    `${where}: HTTP ${status} ${code}; check the mount's S3 permissions (s3:GetObject${o.versionId ? ', s3:GetObjectVersion' : ''})`,
    1,
    status,
    { s3Code: code },
  );
}

/**
 * One POSIX shell word: the key comes from whoever wrote the object, and the operator pastes the
 * command into a shell, so a quote in it must not end the quoting (`'` becomes `'\''`).
 */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function classifyNetworkError(err: unknown): Error {
  if (err instanceof TransientError) return err;
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'AbortError') return err as Error;
  if (
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    e?.code === 'ETIMEDOUT' ||
    e?.code === 'UND_ERR_CONNECT_TIMEOUT'
  ) {
    return new TransientError('timeout', `S3 request timed out (${e.code ?? e.name})`, undefined, {
      cause: err,
    });
  }
  if (e?.code === 'ECONNRESET' || e?.code === 'UND_ERR_SOCKET' || e?.code === 'EPIPE') {
    return new TransientError('reset', `connection reset (${e.code})`, undefined, { cause: err });
  }
  return new TransientError('network', `S3 request failed: ${e?.message ?? String(err)}`, undefined, {
    cause: err,
  });
}
