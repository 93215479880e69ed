/**
 * Upload planning: single PUT or multipart, and the part size (design.md §5, issue 4).
 *
 * S3's hard limits drive the math: an object is at most 5 TiB, a multipart upload has at most
 * 10,000 parts, and every part except the last is at least 5 MiB (and at most 5 GiB). The plan is
 * a pure function of the size and the configured threshold/part size, so the API, the cleanup job
 * and the tests agree on part boundaries without storing them.
 */

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** S3's maximum object size. */
export const MAX_OBJECT_BYTES = 5 * TiB;
/** S3's maximum part count per multipart upload. */
export const MAX_PARTS = 10_000;
/** S3's minimum size of every part but the last. */
export const MIN_PART_BYTES = 5 * MiB;
/** S3's maximum part size. */
export const MAX_PART_BYTES = 5 * GiB;

export interface UploadPlanOptions {
  /** Sizes strictly above this go multipart. */
  multipartThreshold: number;
  /** Preferred part size; grown when the object would otherwise need more than 10,000 parts. */
  preferredPartSize: number;
}

export type UploadPlan =
  | { mode: 'single'; size: number }
  | { mode: 'multipart'; size: number; partSize: number; partCount: number };

/**
 * Chooses single vs multipart and a part size that keeps the part count ≤ 10,000.
 * The part size is rounded up to a whole MiB so that part boundaries are easy to reason about.
 */
export function planUpload(size: number, options: UploadPlanOptions): UploadPlan {
  if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_OBJECT_BYTES) {
    throw new RangeError(`size must be an integer in 1..${MAX_OBJECT_BYTES}, got ${size}`);
  }
  if (size <= options.multipartThreshold) return { mode: 'single', size };
  const needed = Math.ceil(size / MAX_PARTS);
  let partSize = Math.max(options.preferredPartSize, MIN_PART_BYTES, needed);
  partSize = Math.ceil(partSize / MiB) * MiB;
  partSize = Math.min(partSize, MAX_PART_BYTES);
  const partCount = Math.ceil(size / partSize);
  return { mode: 'multipart', size, partSize, partCount };
}

/** Byte length of part `partNumber` (1-based) of a multipart plan. */
export function partLength(size: number, partSize: number, partNumber: number): number {
  const partCount = Math.ceil(size / partSize);
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > partCount) {
    throw new RangeError(`part number must be in 1..${partCount}, got ${partNumber}`);
  }
  return partNumber < partCount ? partSize : size - partSize * (partCount - 1);
}
