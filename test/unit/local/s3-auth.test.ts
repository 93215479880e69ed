/**
 * The local emulator's presigned-request checks (local/s3-auth.ts) against URLs signed exactly as
 * the API issues them (presign-upload.ts, the SDK presigner): every such URL verifies, and every
 * change S3 would refuse is refused.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { describe, expect, it } from 'vitest';
import { presignPart, presignPut, presignPuts } from '../../../functions/adapters/aws/presign-upload.ts';
import { errorXml, isPresigned, verifyChecksum, verifyPresigned } from '../../../local/s3-auth.ts';

const credentials = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
const s3 = new S3Client({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:4566',
  forcePathStyle: true,
  credentials,
});
const body = Buffer.from('hello, strata');
const sha = createHash('sha256').update(body).digest('base64');
type Headers = Record<string, string>;

/** The raw request target and host a client sends for a presigned URL. */
function target(raw: string) {
  const url = new URL(raw);
  return { target: url.pathname + url.search, host: url.host };
}

/** A single-PUT URL as POST /v1/uploads issues it, with the headers the client must send. */
async function upload(key: string) {
  const p = await presignPut(
    s3,
    { bucket: 'b', key, contentType: 'text/plain', sha256Base64: sha, size: body.length },
    900,
  );
  const t = target(p.url);
  return { ...t, headers: { host: t.host, 'content-length': String(body.length), ...p.headers } as Headers };
}

const refusedWith = (method: string, url: string, headers: Headers) =>
  verifyPresigned({ method, url, headers }, credentials)?.code;

describe('presigned request verification (local S3)', () => {
  it('accepts the URLs the API issues: GETs (with a Range) and PUTs binding length, type and checksum, for tricky keys', async () => {
    for (const key of ['data/a.txt', 'data/a b+c/100%/q?x#y', 'data/ü/名前/é.bin', "data/it's (1)*!.txt"]) {
      const get = target(
        await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'b', Key: key }), { expiresIn: 900 }),
      );
      expect(isPresigned(get.target)).toBe(true);
      expect(refusedWith('GET', get.target, { host: get.host, range: 'bytes=0-3' })).toBeUndefined();
      const put = await upload(key);
      expect(refusedWith('PUT', put.target, put.headers)).toBeUndefined();
    }
  });

  it('refuses an oversized or truncated body, another type, a changed checksum, method, key, expiry or host', async () => {
    const put = await upload('data/f');
    const ok = put.headers;
    const otherSha = createHash('sha256').update('x').digest('base64');
    expect(refusedWith('PUT', put.target, ok)).toBeUndefined();
    expect(refusedWith('PUT', put.target, { ...ok, 'content-length': '14' })).toBe('SignatureDoesNotMatch');
    expect(refusedWith('PUT', put.target, { ...ok, 'content-length': '12' })).toBe('SignatureDoesNotMatch');
    expect(refusedWith('PUT', put.target, { ...ok, 'content-type': 'text/html' })).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusedWith('PUT', put.target, { ...ok, 'x-amz-checksum-sha256': otherSha })).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusedWith('DELETE', put.target, ok)).toBe('SignatureDoesNotMatch');
    expect(refusedWith('PUT', put.target.replace('data/f', 'data/g'), ok)).toBe('SignatureDoesNotMatch');
    expect(refusedWith('PUT', put.target.replace('X-Amz-Expires=900', 'X-Amz-Expires=604800'), ok)).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusedWith('PUT', put.target, { ...ok, host: '127.0.0.1:9999' })).toBe('SignatureDoesNotMatch');
    expect(
      refusedWith('PUT', put.target.replace(/X-Amz-Signature=[0-9a-f]+/, 'X-Amz-Signature=zz'), ok),
    ).toBe('SignatureDoesNotMatch');
    expect(refusedWith('PUT', put.target.replace(/&X-Amz-Date=[^&]+/, ''), ok)).toBe(
      'AuthorizationQueryParametersError',
    );
    const req = { method: 'PUT', url: put.target, headers: ok };
    expect(verifyPresigned(req, { ...credentials, secretAccessKey: 'other' })?.code).toBe(
      'SignatureDoesNotMatch',
    );
    expect(verifyPresigned(req, { ...credentials, accessKeyId: 'OTHER' })?.code).toBe('InvalidAccessKeyId');
  });

  it('verifies batch and multipart part URLs as issued, and refuses a part of another length', async () => {
    const specs = [
      { bucket: 'b', key: 'data/batch/a b.txt', contentType: 'text/plain', size: 3 },
      {
        bucket: 'b',
        key: 'data/batch/ü+.bin',
        contentType: 'application/octet-stream',
        size: 5,
        sha256Base64: sha,
      },
    ];
    const urls = await presignPuts(s3, specs, 900);
    urls.forEach((p, i) => {
      const t = target(p.url);
      const headers = { host: t.host, 'content-length': String(specs[i]?.size), ...p.headers };
      expect(refusedWith('PUT', t.target, headers)).toBeUndefined();
    });
    const length = 5 * 1024 * 1024;
    const part = target(
      await presignPart(
        s3,
        { bucket: 'b', key: 'data/big.bin', uploadId: 'u-1', partNumber: 3, length },
        900,
      ),
    );
    expect(
      refusedWith('PUT', part.target, { host: part.host, 'content-length': String(length) }),
    ).toBeUndefined();
    expect(refusedWith('PUT', part.target, { host: part.host, 'content-length': '1' })).toBe(
      'SignatureDoesNotMatch',
    );
  });

  it('refuses a URL past its expiry', async () => {
    const get = target(
      await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'b', Key: 'data/f' }), { expiresIn: 900 }),
    );
    const req = { method: 'GET', url: get.target, headers: { host: get.host } };
    expect(verifyPresigned(req, credentials, Date.now() + 890_000)).toBeUndefined();
    expect(verifyPresigned(req, credentials, Date.now() + 910_000)).toMatchObject({
      status: 403,
      code: 'AccessDenied',
      message: 'Request has expired',
    });
  });

  it('checks a body against the x-amz-checksum-sha256 it was sent with', () => {
    expect(verifyChecksum({ 'x-amz-checksum-sha256': sha }, body)).toBeUndefined();
    expect(verifyChecksum({ 'x-amz-checksum-sha256': sha }, Buffer.from('hello, strat!'))).toMatchObject({
      status: 400,
      code: 'BadDigest',
    });
    expect(verifyChecksum({}, body)).toBeUndefined();
    expect(errorXml({ status: 400, code: 'BadDigest', message: 'a < b' })).toContain(
      '<Code>BadDigest</Code><Message>a &lt; b</Message>',
    );
  });
});
