/**
 * Presigned upload URLs and the multipart lifecycle calls the upload API makes.
 *
 * What a URL binds is the security property here (design.md §7): SigV4 covers every header named
 * in X-Amz-SignedHeaders, so S3 rejects a PUT whose Content-Length, Content-Type or
 * x-amz-checksum-sha256 differs from what was presigned — and with the checksum header, S3 also
 * rejects a body whose SHA-256 differs. The presigner would by default hoist x-amz-* headers into
 * the query string (where a checksum is not enforced on the body), so the checksum is marked
 * unhoistable and the client must send it as a header; `headers` in the result lists exactly what
 * the client must send.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export interface PresignedPut {
  url: string;
  /** Headers the PUT must carry verbatim (they are signed). */
  headers: Record<string, string>;
}

export interface ObjectSpec {
  bucket: string;
  key: string;
  contentType: string;
  /** Base64 of the SHA-256 digest (the x-amz-checksum-sha256 form). */
  sha256Base64?: string;
  /** User metadata stored with the object (x-amz-meta-*). */
  metadata?: Record<string, string>;
}

// The presigner leaves content-type unsigned unless asked; we ask.
const SIGNED = new Set(['content-type', 'content-length', 'x-amz-checksum-sha256']);
const UNHOISTABLE = new Set(['x-amz-checksum-sha256']);
const PART_SIGNED = new Set(['content-length']);

/** A single-PUT URL binding length, type and (when given) checksum. */
export async function presignPut(
  s3: S3Client,
  spec: ObjectSpec & { size: number },
  expiresIn: number,
): Promise<PresignedPut> {
  const command = new PutObjectCommand({
    Bucket: spec.bucket,
    Key: spec.key,
    ContentLength: spec.size,
    ContentType: spec.contentType,
    ...(spec.sha256Base64 ? { ChecksumSHA256: spec.sha256Base64 } : {}),
    ...(spec.metadata ? { Metadata: spec.metadata } : {}),
  });
  const url = await getSignedUrl(s3, command, {
    expiresIn,
    signableHeaders: SIGNED,
    unhoistableHeaders: UNHOISTABLE,
  });
  const headers: Record<string, string> = { 'content-type': spec.contentType };
  if (spec.sha256Base64) headers['x-amz-checksum-sha256'] = spec.sha256Base64;
  return { url, headers };
}

/** Starts a multipart upload; returns S3's upload id. */
export async function createMultipart(s3: S3Client, spec: ObjectSpec): Promise<string> {
  const out = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: spec.bucket,
      Key: spec.key,
      ContentType: spec.contentType,
      ...(spec.metadata ? { Metadata: spec.metadata } : {}),
    }),
  );
  if (!out.UploadId) throw new Error(`S3 returned no UploadId for ${spec.key}`);
  return out.UploadId;
}

/** A part URL binding the part's exact length. */
export async function presignPart(
  s3: S3Client,
  spec: { bucket: string; key: string; uploadId: string; partNumber: number; length: number },
  expiresIn: number,
): Promise<string> {
  return getSignedUrl(
    s3,
    new UploadPartCommand({
      Bucket: spec.bucket,
      Key: spec.key,
      UploadId: spec.uploadId,
      PartNumber: spec.partNumber,
      ContentLength: spec.length,
    }),
    // A part has no content type of its own (the object's was fixed at CreateMultipartUpload).
    { expiresIn, signableHeaders: PART_SIGNED },
  );
}

export async function completeMultipart(
  s3: S3Client,
  spec: { bucket: string; key: string; uploadId: string },
  parts: Array<{ partNumber: number; etag: string }>,
): Promise<{ etag?: string }> {
  const out = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: spec.bucket,
      Key: spec.key,
      UploadId: spec.uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
    }),
  );
  return { etag: out.ETag };
}

/** Aborts a multipart upload; an upload S3 no longer knows (already aborted/completed) is fine. */
export async function abortMultipart(
  s3: S3Client,
  spec: { bucket: string; key: string; uploadId: string },
): Promise<void> {
  try {
    await s3.send(
      new AbortMultipartUploadCommand({ Bucket: spec.bucket, Key: spec.key, UploadId: spec.uploadId }),
    );
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchUpload') return;
    throw err;
  }
}
