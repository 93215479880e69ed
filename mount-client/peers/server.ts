/**
 * The peer server: answers `GET`/`HEAD /v1/blocks/{blockKey}` from this node's data path, reading the
 * block through from S3 (and caching it) when it is not cached yet. Because every node sends a given
 * block to the same owner (rendezvous.ts) and the owner's data path collapses concurrent loads of one
 * block (singleflight), a block wanted by the whole fleet at once costs one S3 GET.
 *
 * What must stay true: nothing is answered before the signature checks out (401 otherwise); a block
 * whose length is not what the object version says is never sent (a response already started is
 * broken off instead); the crc32c (header, or trailer after a read-through) is computed over exactly
 * the bytes sent; secrets and presigned URLs never reach a log or an error body.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StrataError } from '../../functions/core/errors.ts';
import { blockKey } from '../block-cache/block-key.ts';
import { subBlockSize } from '../block-cache/format.ts';
import { subBlockCrcs } from '../block-cache/payload-crcs.ts';
import { type BlockId, blockLength } from '../block-cache/types.ts';
import { BLOCK_MAC_HEADER, type PeerSigner } from './auth.ts';
import { crcFromTable } from './crc.ts';
import type { PeerMetrics } from './metrics.ts';
import { applyPolicy, type ServePolicy } from './policy.ts';
import { BLOCKS_PREFIX, CRC_HEADER, decodeBlockRequest, LENGTH_HEADER, PING_PATH } from './wire.ts';

/** What the server needs from the data path: load a block from cache, else from S3 (never a peer). */
export interface BlockSource {
  loadBlock(id: BlockId, options: { viaPeer: boolean }): Promise<Buffer>;
  /**
   * The same without a copy when the source can lend its own buffer until `release()` (the data
   * path's pooled blocks): the server then sends straight from it and releases once the response
   * is handed to the kernel or abandoned.
   */
  leaseBlock?(id: BlockId, options: { viaPeer: boolean }): Promise<{ data: Buffer; release(): void }>;
}

export interface PeerServerOptions {
  source: BlockSource;
  signer: PeerSigner;
  metrics: PeerMetrics;
  host: string;
  /** 0 picks a free port (tests); the bound port is in `port` once `start()` resolves. */
  port: number;
  /** The fleet's block size; a request for another size is refused (409) so it falls back to S3. */
  blockSize?: number;
  /**
   * Which buckets, keys and presigned-URL origins this node reads through for others (policy.ts).
   * Required: a server without one would fetch whatever a secret holder asks for with its own role.
   */
  policy: ServePolicy;
  /** This node's advertised address, returned by /v1/ping so probes can check they reached the right node. */
  self?: () => string;
}

export class PeerServer {
  private readonly server: Server;
  private readonly options: PeerServerOptions;
  host = '';
  port = 0;

  constructor(options: PeerServerOptions) {
    this.options = options;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        // handle() answers every error itself; this only guards against a bug leaving a socket open.
        if (!res.headersSent) sendError(res, 500, 'internal', 'peer server error');
        else res.destroy(err as Error);
      });
    });
    // Longer than the fetcher's idle keep-alive (20 s) so the client always closes first and never
    // races a server-side close with a new request.
    this.server.keepAliveTimeout = 30_000;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.host = addr.address;
    this.port = addr.port;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const target = req.url ?? '/';
    const method = req.method ?? 'GET';
    const done = (status: number, bytes = 0) =>
      this.options.metrics.served(status, bytes, (performance.now() - started) / 1000);

    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendError(res, 405, 'method_not_allowed', 'peer servers answer GET and HEAD only');
      return done(405);
    }
    const auth = this.options.signer.verify(method, target, req.headers);
    if (!auth.ok) {
      const hint =
        auth.reason === 'stale'
          ? 'the request timestamp is outside the validity window; check the clocks (NTP) of both nodes'
          : 'sign peer requests with the cluster secret (--peer-secret / STRATA_PEER_SECRET, the same on every node)';
      sendError(res, 401, 'unauthorized', `peer request ${auth.reason.replace('_', ' ')}: ${hint}`);
      return done(401);
    }
    const path = target.split('?', 1)[0]!;
    if (path === PING_PATH) {
      const body = JSON.stringify({
        ok: true,
        address: this.options.self?.() ?? `${this.host}:${this.port}`,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(method === 'HEAD' ? undefined : body);
      return done(200);
    }
    if (!path.startsWith(BLOCKS_PREFIX)) {
      sendError(res, 404, 'not_found', `no such peer endpoint ${path}; blocks are under ${BLOCKS_PREFIX}`);
      return done(404);
    }
    const decoded = decodeBlockRequest(target);
    if (!decoded.ok) {
      sendError(res, 400, 'invalid_request', `bad block request: ${decoded.message}`);
      return done(400);
    }
    const allowed = applyPolicy(this.options.policy, decoded.id);
    if (!allowed.ok) {
      sendError(
        res,
        allowed.status,
        allowed.status === 403 ? 'forbidden' : 'invalid_request',
        allowed.message,
      );
      return done(allowed.status);
    }
    const id = allowed.id;
    const { blockSize } = this.options;
    if (blockSize !== undefined && id.blockSize !== blockSize) {
      sendError(
        res,
        409,
        'block_size_mismatch',
        `this node caches ${blockSize}-byte blocks, the request is for ${id.blockSize}; use the same --block-size on every node`,
      );
      return done(409);
    }

    const source = this.options.source;
    const loading = (
      source.leaseBlock
        ? source.leaseBlock(id, { viaPeer: false })
        : source.loadBlock(id, { viaPeer: false }).then((data) => ({ data, release: () => undefined }))
    ).then(
      (lease) => lease,
      (error: unknown) => ({ error }),
    );
    // A lent block goes back once the response is done with it: 'close' follows 'finish' (the last
    // byte handed to the kernel) and also comes when the client goes away mid-response.
    void loading.then((l) => {
      if (!('release' in l)) return;
      if (res.closed || res.destroyed) l.release();
      else res.once('close', l.release);
    });
    // A cached block is ready within microseconds; one that must be read through from S3 is not.
    // For those, answer the headers at once and send the crc32c as a trailer once the bytes are in:
    // the requester's short header timeout then tells a dead or hung owner from one that is busy
    // fetching for it, and it waits for the read-through instead of paying a second S3 GET.
    const quick = method === 'GET' ? await raceDelay(loading, EARLY_HEADERS_MS) : await loading;
    if (quick === undefined) {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        trailer: `${CRC_HEADER}, ${BLOCK_MAC_HEADER}`,
        [LENGTH_HEADER]: blockLength(id),
      });
      res.flushHeaders();
      const late = await loading;
      if ('error' in late || late.data.length !== blockLength(id)) {
        // Headers are gone: the only honest signal left is to break the response.
        res.destroy();
        return done('error' in late ? statusOf(late.error) : 500);
      }
      res.addTrailers(this.integrity(late.data, id));
      res.end(late.data);
      return done(200, late.data.length);
    }
    if ('error' in quick) {
      const err = quick.error;
      const status = statusOf(err);
      // Only our own typed errors carry messages meant for callers; anything else may hold internals.
      const message = err instanceof StrataError ? err.message : 'the owner could not read the block through';
      sendError(res, status, err instanceof StrataError ? err.code : 'unavailable', message);
      return done(status);
    }
    const data = quick.data;
    if (data.length !== blockLength(id)) {
      // The data path handed us bytes that are not this block: refuse rather than pass them on.
      sendError(res, 500, 'unverifiable_block', 'the owner holds a block of the wrong length; not served');
      return done(500);
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': data.length,
      ...this.integrity(data, id),
    });
    res.end(method === 'HEAD' ? undefined : data);
    return done(200, method === 'HEAD' ? 0 : data.length);
  }

  /** The crc32c and the owner's tag over (block key, length, crc32c) that the requester verifies. */
  private integrity(data: Buffer, id: BlockId): Record<string, string> {
    const crc = checksum(data, id);
    return {
      [CRC_HEADER]: String(crc),
      [BLOCK_MAC_HEADER]: this.options.signer.blockMac(blockKey(id), data.length, crc),
    };
  }
}

/**
 * 20 ms: far above a memory or NVMe hit (µs to ~1 ms for a few MiB), far below any S3 first byte, so
 * only read-throughs take the trailer path.
 */
const EARLY_HEADERS_MS = 20;

/**
 * Whole-block crc32c for the wire, derived from the block's sub-block table (crc.ts). The table is
 * the one the disk cache verified the block against, or was computed when the block was first
 * stored (block-cache/payload-crcs.ts), so a cached block is sent without a crc32c pass over its
 * bytes; only a block no layer has checksummed yet is scanned, once, and its table is kept for the
 * disk-cache write that follows. The whole-block value is kept per Buffer too (WeakMap, lives
 * exactly as long as the bytes), so several peers asking for one hot block cost one derivation.
 */
const checksums = new WeakMap<Buffer, number>();

function checksum(data: Buffer, id: BlockId): number {
  let crc = checksums.get(data);
  if (crc === undefined) {
    const sub = subBlockSize(id.blockSize);
    crc = crcFromTable(subBlockCrcs(data, sub), sub, data.length);
    checksums.set(data, crc);
  }
  return crc;
}

/** `p`, or undefined after `ms` if it has not settled; the timer is cleared either way. */
async function raceDelay<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function statusOf(err: unknown): number {
  switch (err instanceof StrataError ? err.code : '') {
    case 'not_found':
      return 404;
    case 'precondition_failed':
      return 412;
    case 'invalid_request':
      return 400;
    case 'forbidden':
      return 403;
    default:
      return 503;
  }
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
