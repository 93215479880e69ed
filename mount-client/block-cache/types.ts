/**
 * The block vocabulary shared by the block cache, the object client, prefetch and peers.
 * A block is a fixed-size, block-aligned slice of one version of one object; the last block of an
 * object may be shorter. Block keys are computed only in block-key.ts.
 */

/** One immutable version of an object, as resolved through the API. */
export interface ObjectVersion {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  versionId?: string;
  /** Presigned GET URL (on-prem `--presign` mode) and when it expires (epoch ms). */
  url?: string;
  urlExpiresAt?: number;
}

export interface BlockId {
  object: ObjectVersion;
  /** Zero-based block number. */
  index: number;
  blockSize: number;
}

/** Local (or shared) block storage. A miss, a corrupt block or a version mismatch → undefined. */
export interface BlockStore {
  get(id: BlockId): Promise<Buffer | undefined>;
  put(id: BlockId, data: Buffer): Promise<void>;
}

/** A tier that can produce a block it does not hold (peer, S3). Throws typed errors on failure. */
export interface BlockFetcher {
  readonly name: string;
  fetch(id: BlockId, signal?: AbortSignal): Promise<Buffer>;
}

/** Byte length of block `index` of an object (the last block may be short). */
export function blockLength(id: BlockId): number {
  const start = id.index * id.blockSize;
  return Math.max(0, Math.min(id.blockSize, id.object.size - start));
}
