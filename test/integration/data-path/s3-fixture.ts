/**
 * A real fauxqs S3 for data-path tests: in-process, 127.0.0.1, port 0, with a counter of ranged
 * object GETs seen by the server (what "zero S3 GETs after a restart" is asserted against).
 */
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { buildApp } from 'fauxqs';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';

export interface S3Fixture {
  endpoint: string;
  region: string;
  bucket: string;
  s3: S3Client;
  /** GET requests for object bytes the server has answered (HEAD/PUT/list excluded). */
  gets(): number;
  put(key: string, body: Buffer): Promise<ObjectVersion>;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'data'): Promise<S3Fixture> {
  // The data path presigns with the AWS default provider chain; fauxqs does not check signatures,
  // so any static env credentials exercise the real chain.
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  const app = buildApp({ logger: false });
  let gets = 0;
  app.addHook('onRequest', async (req: { method: string; headers: Record<string, unknown> }) => {
    if (req.method === 'GET' && req.headers.range) gets++;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('fauxqs did not bind a TCP port');
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const region = 'us-east-1';
  const s3 = new S3Client({
    region,
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    endpoint,
    region,
    bucket,
    s3,
    gets: () => gets,
    async put(key, body) {
      // Multipart: fauxqs refuses single PUTs over 11 MiB.
      await new Upload({
        client: s3,
        params: { Bucket: bucket, Key: key, Body: body },
        partSize: 5 * 1024 * 1024,
      }).done();
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { bucket, key, size: Number(head.ContentLength), etag: String(head.ETag) };
    },
    async stop() {
      s3.destroy();
      await app.close();
    },
  };
}
