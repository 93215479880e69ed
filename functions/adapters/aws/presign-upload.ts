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
import { formatUrl } from '@aws-sdk/core/util';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import type { HttpRequest } from '@smithy/types';

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
  signingDate?: Date,
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
    unhoistableHeaders: new Set(UNHOISTABLE),
    ...(signingDate ? { signingDate } : {}),
  });
  const headers: Record<string, string> = { 'content-type': spec.contentType };
  if (spec.sha256Base64) headers['x-amz-checksum-sha256'] = spec.sha256Base64;
  return { url, headers };
}

/**
 * Many single-PUT URLs at once (the batch endpoint). getSignedUrl runs the client's whole
 * middleware stack (endpoint rules, serializers) per URL — about 0.5 ms of CPU each, half of the
 * API's cost per small file. Here the stack runs once, for the first spec; its URL gives the
 * endpoint and the path before the key, and every other URL is signed directly with SigV4 on a
 * request built the way the SDK's serializer builds it (key segments escaped with S3's rules,
 * `x-id=PutObject`, the same headers). The result is byte-identical to getSignedUrl for the same
 * signing time (unit test: presign-upload.test.ts); if the first URL's path does not end with the
 * key as expected (an endpoint shape we did not foresee), every URL falls back to getSignedUrl.
 */
export async function presignPuts(
  s3: S3Client,
  specs: Array<ObjectSpec & { size: number }>,
  expiresIn: number,
  signingDate?: Date,
): Promise<PresignedPut[]> {
  const first = specs[0];
  if (!first) return [];
  const one = (spec: ObjectSpec & { size: number }) => presignPut(s3, spec, expiresIn, signingDate);
  const template = new URL((await one(first)).url);
  const firstKeyPath = `/${encodeKey(first.key)}`;
  // Anything the SDK added beyond the signature and what we pass (e.g. a flexible-checksum
  // parameter when the client was not built with WHEN_REQUIRED) means the template cannot be reused.
  // With the SDK's default (WHEN_SUPPORTED) the parameters vary per request (a CRC32 when no SHA-256
  // is given), so only clients built the Strata way (s3-client.ts) take the fast path.
  const checksums = await s3.config.requestChecksumCalculation();
  const foreign =
    checksums !== 'WHEN_REQUIRED' ||
    [...template.searchParams.keys()].some(
      (k) => !TEMPLATE_QUERY.has(k) && !k.startsWith('x-amz-meta-') && k !== 'x-amz-checksum-sha256',
    );
  if (foreign || !template.pathname.endsWith(firstKeyPath)) return Promise.all(specs.map(one));
  const prefix = template.pathname.slice(0, -firstKeyPath.length);
  const presigner = presignerFor(s3);
  const region = await s3.config.region();
  return Promise.all(
    specs.map(async (spec, i) => {
      if (i === 0) return one(spec);
      const headers: Record<string, string> = {
        host: template.host,
        'content-type': spec.contentType,
        'content-length': String(spec.size),
      };
      if (spec.sha256Base64) headers['x-amz-checksum-sha256'] = spec.sha256Base64;
      for (const [k, v] of Object.entries(spec.metadata ?? {})) headers[`x-amz-meta-${k}`] = v;
      const request: HttpRequest = {
        protocol: template.protocol,
        hostname: template.hostname,
        ...(template.port ? { port: Number(template.port) } : {}),
        method: 'PUT',
        path: `${prefix}/${encodeKey(spec.key)}`,
        query: { 'x-id': 'PutObject' },
        headers,
      };
      const signed = await presigner.presign(request, {
        expiresIn,
        signableHeaders: SIGNED,
        unhoistableHeaders: new Set(UNHOISTABLE),
        signingRegion: region,
        signingService: 's3',
        ...(signingDate ? { signingDate } : {}),
      });
      const out: Record<string, string> = { 'content-type': spec.contentType };
      if (spec.sha256Base64) out['x-amz-checksum-sha256'] = spec.sha256Base64;
      return { url: formatUrl(signed), headers: out };
    }),
  );
}

const TEMPLATE_QUERY = new Set([
  'X-Amz-Algorithm',
  'X-Amz-Content-Sha256',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-Signature',
  'X-Amz-SignedHeaders',
  'x-id',
]);

const presigners = new WeakMap<S3Client, S3RequestPresigner>();
function presignerFor(s3: S3Client): S3RequestPresigner {
  let p = presigners.get(s3);
  if (!p) {
    p = new S3RequestPresigner({ ...s3.config, signingName: 's3' });
    presigners.set(s3, p);
  }
  return p;
}

/** S3's key escaping in request paths (the SDK's extendedEncodeURIComponent per `/` segment). */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((seg) =>
      /^[\w.~-]+$/.test(seg)
        ? seg
        : encodeURIComponent(seg).replace(
            /[!'()*]/g,
            (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
          ),
    )
    .join('/');
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
