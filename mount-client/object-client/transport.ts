/**
 * One ranged GET attempt, pinned to an object version. Implementations: keep-alive sockets that read
 * each body straight into the block buffer (transport-socket.ts, the default — least CPU per byte,
 * see docs/benchmarks/mount-data.md), undici's raw dispatch (transport-undici.ts) and the AWS SDK
 * GetObject pipeline (transport-sdk.ts); the last two are kept selectable and in the side-by-side
 * benchmark. All throw TransientError (retry), PreconditionFailedError (changed object),
 * NotFoundError (permanent) or S3ReadError (permanent refusal). The body is read straight into one
 * buffer of exactly `length`.
 */

import { normalizeEtag } from '../block-cache/block-key.ts';
import type { ObjectVersion } from '../block-cache/types.ts';
import { PreconditionFailedError, TransientError } from './errors.ts';

export interface RangeRequest {
  object: ObjectVersion;
  start: number;
  length: number;
  signal?: AbortSignal;
  /** Supplies the buffer of exactly `length` bytes the body is read into (default: a new one). */
  alloc?: (length: number) => Buffer;
}

export interface RangeTransport {
  readonly name: string;
  get(req: RangeRequest): Promise<Buffer>;
  close(): Promise<void>;
}

/** Quoted etag for If-Match (S3 wants the quotes; indexes often store it bare). */
export function quotedEtag(etag: string): string {
  return `"${normalizeEtag(etag)}"`;
}

/**
 * Belt and braces for servers that ignore If-Match/versionId: the response must describe the same
 * version we pinned, or the bytes are rejected rather than mixed into a file.
 */
export function checkSameVersion(
  req: RangeRequest,
  etag: string | undefined,
  versionId: string | undefined,
  totalSize: number | undefined,
): void {
  const o = req.object;
  const where = `s3://${o.bucket}/${o.key}`;
  if (o.versionId && versionId && versionId !== o.versionId) {
    throw new PreconditionFailedError(`${where} returned version ${versionId}, expected ${o.versionId}`);
  }
  if (!o.versionId && etag && normalizeEtag(etag) !== normalizeEtag(o.etag)) {
    throw new PreconditionFailedError(`${where} changed (etag ${etag}, expected ${o.etag}); reopen the file`);
  }
  if (totalSize !== undefined && totalSize !== o.size) {
    throw new PreconditionFailedError(
      `${where} is now ${totalSize} bytes, expected ${o.size}; reopen the file`,
    );
  }
}

/**
 * A 206 must carry exactly the range asked for (`bytes start-end/total`): a proxy or server that
 * answers another range would otherwise put the wrong bytes at this offset of the file.
 */
export function checkContentRange(req: RangeRequest, header: string | undefined): void {
  const m = header ? /^\s*bytes\s+(\d+)-(\d+)\//i.exec(header) : null;
  const end = req.start + req.length - 1;
  if (!m || Number(m[1]) !== req.start || Number(m[2]) !== end) {
    throw new TransientError(
      'bad-range',
      `s3://${req.object.bucket}/${req.object.key}: asked for bytes ${req.start}-${end}, the response says ${JSON.stringify(header ?? null)}`,
      206,
    );
  }
}

/** `bytes 0-99/1234` → 1234. */
export function totalFromContentRange(h: string | undefined): number | undefined {
  const m = h ? /\/(\d+)\s*$/.exec(h) : null;
  return m ? Number(m[1]) : undefined;
}
