/**
 * Ranged GETs with undici straight to S3 on a presigned URL (see url-signer.ts). Why not the SDK:
 * its GetObject pipeline adds middleware, header signing and a stream wrapper per request; undici's
 * body chunks are copied once into the block buffer. Measured side by side in bench/mount/ceilings.ts.
 */
import { Agent, errors as undiciErrors } from 'undici';
import { NotFoundError, PreconditionFailedError, S3ReadError, TransientError } from './errors.ts';
import {
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
      let res: Awaited<ReturnType<Agent['request']>>;
      try {
        const u = new URL(url);
        res = await agent.request({
          origin: u.origin,
          path: u.pathname + u.search,
          method: 'GET',
          headers,
          signal: req.signal,
        });
      } catch (err) {
        throw classifyNetworkError(err);
      }
      const { statusCode: status, body } = res;
      if (status !== 206 && status !== 200) {
        const text = await body.text().catch(() => '');
        throw statusError(status, text, req, () => o.signer.invalidate(o2));
      }
      const h = res.headers;
      const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
      try {
        checkSameVersion(
          req,
          one(h.etag),
          one(h['x-amz-version-id']),
          status === 206 ? totalFromContentRange(one(h['content-range'])) : Number(one(h['content-length'])),
        );
      } catch (err) {
        body.destroy();
        throw err;
      }
      if (status === 200 && (req.start !== 0 || Number(one(h['content-length'])) !== req.length)) {
        body.destroy();
        throw new TransientError('short-body', `server ignored the Range header for ${o2.key}`, status);
      }
      const out = Buffer.allocUnsafe(req.length);
      let off = 0;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (off + chunk.length > out.length) {
            body.destroy();
            throw new TransientError('short-body', `body longer than the ${req.length}-byte range`, status);
          }
          chunk.copy(out, off);
          off += chunk.length;
        }
      } catch (err) {
        if (err instanceof TransientError) throw err;
        throw classifyNetworkError(err);
      }
      if (off !== req.length) {
        throw new TransientError('short-body', `got ${off} of ${req.length} bytes for ${o2.key}`, status);
      }
      return out;
    },
    close: () => agent.close(),
  };
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
  return new S3ReadError(
    `${where}: HTTP ${status} ${code}; check the mount's S3 permissions (s3:GetObject${o.versionId ? ', s3:GetObjectVersion' : ''})`,
    1,
    status,
  );
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
