/**
 * The local S3 keeps the user metadata a presigned PUT carries in its query string, as S3 does.
 * The SDK's presigner hoists `x-amz-meta-*` headers into the URL; fauxqs read metadata only from
 * headers, so a single-PUT upload's `date` (stored as `strata-date`) was dropped and the file was
 * listed under its upload day instead (found by the server soak's by-date check).
 */
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';

const BUCKET = 'soak-meta';
const credentials = { accessKeyId: 'soak-key', secretAccessKey: 'soak-secret' };
let emulator: Emulator;
let s3: S3Client;

beforeAll(async () => {
  emulator = await startEmulator({ region: 'us-east-1', credentials });
  s3 = new S3Client({
    region: 'us-east-1',
    endpoint: emulator.endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  s3?.destroy();
  await emulator?.stop();
});

describe('presigned PUT with metadata', () => {
  it('stores the x-amz-meta-* query parameters as the object metadata', async () => {
    const url = await getSignedUrl(
      s3,
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'd/x.bin',
        ContentType: 'application/octet-stream',
        Metadata: { 'strata-date': '2024-01-01', owner: 'me' },
      }),
      { expiresIn: 60 },
    );
    expect(new URL(url).searchParams.get('x-amz-meta-strata-date')).toBe('2024-01-01');
    const put = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'abc',
      signal: AbortSignal.timeout(10_000),
    });
    expect(put.status).toBe(200);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'd/x.bin' }));
    expect(head.Metadata).toEqual({ 'strata-date': '2024-01-01', owner: 'me' });
  });
});
