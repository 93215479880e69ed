/**
 * What the metadata layer knows about one path: enough to answer getattr, readdir and getxattr
 * without another API call, and (for files) to pin a read to one version.
 */
import type { Entry } from '../../functions/core/api-types.ts';

export interface Node {
  path: string;
  type: 'file' | 'dir';
  size: number;
  mtimeMs: number;
  etag?: string;
  versionId?: string;
  sha256?: string;
  /** Where the index says the bytes live (present once the path has been resolved). */
  bucket?: string;
  key?: string;
  /** For by-date view entries: the real path this name stands for. */
  target?: string;
}

export function nodeFromEntry(e: Entry & { bucket?: string; key?: string }, path = e.path): Node {
  const mtimeMs = Date.parse(e.mtime);
  return {
    path,
    type: e.type,
    size: e.size,
    mtimeMs: Number.isFinite(mtimeMs) ? mtimeMs : 0,
    ...(e.etag ? { etag: e.etag } : {}),
    ...(e.versionId ? { versionId: e.versionId } : {}),
    ...(e.sha256 ? { sha256: e.sha256 } : {}),
    ...(e.type === 'file' && e.bucket ? { bucket: e.bucket } : {}),
    ...(e.type === 'file' && e.key ? { key: e.key } : {}),
  };
}
