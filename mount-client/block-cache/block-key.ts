/**
 * The only place block keys are computed. A key names one block of one immutable object version at
 * one block size, so a changed object (new etag/versionId) or a different --block-size can never
 * collide with cached bytes of another. sha256 keeps names fixed-length and filesystem-safe whatever
 * the S3 key contains (emoji, `%`, 1 KiB keys).
 */
import { createHash } from 'node:crypto';
import type { BlockId, ObjectVersion } from './types.ts';

/** What pins an object version: the S3 versionId when the bucket is versioned, else the etag. */
export function versionTag(v: ObjectVersion): string {
  return v.versionId ? `v:${v.versionId}` : `e:${normalizeEtag(v.etag)}`;
}

/** ETags compare without their surrounding quotes (S3 returns them quoted, indexes often strip them). */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** 64 hex chars; stable across processes and releases of the same cache format. */
export function blockKey(id: BlockId): string {
  // JSON array: fields are delimited unambiguously whatever bytes a key contains.
  const o = id.object;
  return createHash('sha256')
    .update(JSON.stringify([o.bucket, o.key, versionTag(o), id.blockSize, id.index]))
    .digest('hex');
}
