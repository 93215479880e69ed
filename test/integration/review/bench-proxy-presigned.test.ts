/**
 * Review finding (session 5): the comparison bench signs upload URLs for its latency proxy
 * (bench/run.ts passes the proxy as STRATA_S3_ENDPOINT) and the proxy forwarded them with the
 * Host header rewritten to the emulator's. Since the local S3 verifies presigned requests as S3
 * does (local/s3-auth.ts), the signed `host` no longer matched and every `strata upload` of the
 * bench was refused with SignatureDoesNotMatch. A proxy in front of S3 must pass the Host through.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LatencyProxy, startLatencyProxy } from '../../../bench/compare/latency-proxy.ts';
import { presignPut } from '../../../functions/adapters/aws/presign-upload.ts';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';

const credentials = { accessKeyId: 'review-key', secretAccessKey: 'review-secret' };
let emulator: Emulator;
let proxy: LatencyProxy;
let viaProxy: S3Client;

beforeAll(async () => {
  emulator = await startEmulator({ region: 'us-east-1', credentials });
  emulator.createBucket('bench-bucket');
  proxy = await startLatencyProxy({ target: emulator.endpoint, ttfbMs: 0, jitterMs: 0 });
  // What the bench's API signs with: the proxy is the public S3 endpoint.
  viaProxy = new S3Client({
    region: 'us-east-1',
    endpoint: proxy.url,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
});

afterAll(async () => {
  viaProxy?.destroy();
  await proxy?.close();
  await emulator?.stop();
});

describe('bench latency proxy in front of the verifying local S3', () => {
  it('forwards presigned PUTs and GETs signed for the proxy, which S3 then accepts', async () => {
    // Prepare
    const body = Buffer.from('bench bytes through the proxy');
    const sha256Base64 = createHash('sha256').update(body).digest('base64');
    const put = await presignPut(
      viaProxy,
      {
        bucket: 'bench-bucket',
        key: 'data/p.txt',
        contentType: 'text/plain',
        sha256Base64,
        size: body.length,
      },
      300,
    );
    // Act
    const stored = await request(put.url, { method: 'PUT', headers: put.headers, body });
    const storedText = await stored.body.text();
    const url = await getSignedUrl(
      viaProxy,
      new GetObjectCommand({ Bucket: 'bench-bucket', Key: 'data/p.txt' }),
      {
        expiresIn: 300,
      },
    );
    const read = await request(url, { headers: { range: 'bytes=0-4' } });
    const readBody = await read.body.text();
    // Assess
    expect({ status: stored.statusCode, body: storedText }).toEqual({ status: 200, body: '' });
    expect(read.statusCode).toBe(206);
    expect(readBody).toBe('bench');
  });
});
