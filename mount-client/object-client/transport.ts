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
import { PreconditionFailedError } from './errors.ts';

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

/** `bytes 0-99/1234` → 1234. */
export function totalFromContentRange(h: string | undefined): number | undefined {
  const m = h ? /\/(\d+)\s*$/.exec(h) : null;
  return m ? Number(m[1]) : undefined;
}
