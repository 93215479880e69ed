/**
 * The peer wire format: a block request is `/v1/blocks/{blockKey}?bucket=&key=&size=&etag=[&versionId=]
 * &index=&blockSize=[&url=&urlExpiresAt=]`. The query carries everything the owner needs to read the
 * block through from S3 (the owner may never have resolved this object); the path repeats the block
 * key so the owner can check the two agree. The whole target is signed (auth.ts), so none of it can
 * be altered in flight.
 *
 * The response body is the block; `x-strata-crc32c` is the crc32c of the body (unsigned decimal),
 * which the requester recomputes before using a single byte. It comes as a header when the owner has
 * the block at hand, and as an HTTP trailer when the owner answered early and read the block through.
 */
import { z } from 'zod';
import { blockKey } from '../block-cache/block-key.ts';
import type { BlockId } from '../block-cache/types.ts';

export const CRC_HEADER = 'x-strata-crc32c';
/** Sent when the owner answers before it has the bytes (read-through); the crc32c then comes as a trailer. */
export const LENGTH_HEADER = 'x-strata-block-length';
export const BLOCKS_PREFIX = '/v1/blocks/';
export const PING_PATH = '/v1/ping';

/**
 * 256 MiB: the largest block size the data path accepts; a bigger request is not ours and would
 * let a peer make the owner buffer an arbitrary amount.
 */
export const MAX_BLOCK_SIZE = 256 * 1024 * 1024;

export function encodeBlockRequest(id: BlockId): string {
  const o = id.object;
  const q = new URLSearchParams({ bucket: o.bucket, key: o.key, size: String(o.size), etag: o.etag });
  if (o.versionId) q.set('versionId', o.versionId);
  q.set('index', String(id.index));
  q.set('blockSize', String(id.blockSize));
  // On-prem nodes read S3 through presigned URLs only; the owner needs the URL to read through.
  // It is scoped to one object and short-lived, and it travels only inside the signed request.
  if (o.url) {
    q.set('url', o.url);
    if (o.urlExpiresAt !== undefined) q.set('urlExpiresAt', String(o.urlExpiresAt));
  }
  return `${BLOCKS_PREFIX}${blockKey(id)}?${q.toString()}`;
}

const int = (max: number) => z.coerce.number().int().min(0).max(max);

const query = z
  .object({
    bucket: z.string().min(1).max(255),
    key: z.string().min(1).max(1024),
    size: int(Number.MAX_SAFE_INTEGER),
    etag: z.string().min(1).max(256),
    versionId: z.string().min(1).max(1024).optional(),
    index: int(2 ** 32 - 1),
    blockSize: z.coerce.number().int().min(1).max(MAX_BLOCK_SIZE),
    url: z.url({ protocol: /^https?$/ }).optional(),
    urlExpiresAt: int(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((q) => q.index * q.blockSize < q.size, { message: 'block index is past the end of the object' });

export type DecodeResult = { ok: true; id: BlockId } | { ok: false; message: string };

/** Parses a request target back into a BlockId; rejects anything malformed or inconsistent. */
export function decodeBlockRequest(target: string): DecodeResult {
  const url = new URL(target, 'http://peer.invalid');
  if (!url.pathname.startsWith(BLOCKS_PREFIX)) return { ok: false, message: 'not a block path' };
  const parsed = query.safeParse(Object.fromEntries(url.searchParams));
  if (!parsed.success) {
    return {
      ok: false,
      message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    };
  }
  const q = parsed.data;
  const id: BlockId = {
    object: {
      bucket: q.bucket,
      key: q.key,
      size: q.size,
      etag: q.etag,
      ...(q.versionId ? { versionId: q.versionId } : {}),
      ...(q.url ? { url: q.url, urlExpiresAt: q.urlExpiresAt } : {}),
    },
    index: q.index,
    blockSize: q.blockSize,
  };
  if (url.pathname.slice(BLOCKS_PREFIX.length) !== blockKey(id)) {
    return { ok: false, message: 'the block key in the path does not match the query' };
  }
  return { ok: true, id };
}
