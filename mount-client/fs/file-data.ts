/**
 * The port the filesystem reads bytes through. The real implementation is the data path
 * (object-client/data-path.ts: block cache, prefetch, ranged S3 GETs pinned to the version);
 * memory-file-data.ts is the in-memory one for unit tests and the FUSE ceiling bench.
 */
import type { ObjectVersion } from '../block-cache/types.ts';
import type { LentBlock } from '../fuse/lender.ts';

export interface FileReader {
  /** Up to `length` bytes at `offset` (fewer only at end of file). Throws typed errors. */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional warm fast path: the same bytes synchronously when they are already in memory, else
   * undefined with no side effects (the caller then uses read()).
   */
  readNow?(offset: number, length: number): Buffer | undefined;
  /**
   * Optional FUSE fast path: like readNow but copied into `into` (at 0), and may also serve bytes
   * that are on local disk, synchronously; the byte count, or undefined with no side effects.
   */
  readNowInto?(offset: number, length: number, into: Buffer): number | undefined;
  /**
   * Optional: the in-memory block around `offset`, for the FUSE addon to serve this handle's reads
   * inside it by itself (fuse/lender.ts); undefined when there is none worth lending.
   */
  lend?(offset: number): LentBlock | undefined;
  /** Optional: reads the addon served from lent blocks (furthest end, count, bytes) since the last call. */
  absorb?(end: number, reads: number, bytes: number): void;
  close(): void | Promise<void>;
}

export interface FileData {
  open(version: ObjectVersion): FileReader;
}
