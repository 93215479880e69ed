/**
 * Backend for the real-FUSE tests: a real S3 (the local stack's fauxqs emulator) holding the bytes,
 * and an HTTP API v1 (resolve/list/dates/by-date/changes, the api-types.ts shapes) answering from a
 * MemoryIndex that `put` keeps in step with S3. The mount process under test talks to both over
 * HTTP exactly as it would to a deployment.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StrataError } from '../../../functions/core/errors.ts';
import { keyForPath } from '../../../functions/core/paths.ts';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';

export const REGION = 'us-east-1';
export const BUCKET = 'strata-fuse-test';
export const DATA_PREFIX = 'data/';
export const TOKEN = 'fuse-test-token';
export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'strata-local',
  AWS_SECRET_ACCESS_KEY: 'strata-local-secret',
  AWS_REGION: REGION,
};

export interface Backend {
  apiUrl: string;
  s3Endpoint: string;
  index: MemoryIndex;
  s3: S3Client;
  put(path: string, bytes: Buffer, date?: string): Promise<{ etag: string; sha256: string }>;
  stop(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  const emulator: Emulator = await startEmulator({ region: REGION });
  emulator.createBucket(BUCKET);
  const s3 = new S3Client({
    region: REGION,
    endpoint: emulator.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: AWS_ENV.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const index = new MemoryIndex({ bucket: BUCKET, dataPrefix: DATA_PREFIX });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = (k: string) => url.searchParams.get(k) ?? undefined;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return send(401, { error: { code: 'unauthorized', message: 'bad token' } });
    }
    let answer: Promise<unknown>;
    const p = url.pathname;
    if (p === '/v1/resolve') answer = index.resolve(q('path') ?? '', { presign: q('presign') === '1' });
    else if (p === '/v1/list') answer = index.list(q('path') ?? '/', q('cursor'), Number(q('limit') ?? 1000));
    else if (p === '/v1/dates') answer = index.dates();
    else if (p.startsWith('/v1/by-date/'))
      answer = index.byDate(decodeURIComponent(p.slice(12)), q('cursor'));
    else if (p === '/v1/changes') answer = index.changes(Number(q('since') ?? 0), Number(q('limit') ?? 1000));
    else answer = Promise.reject(new StrataError('not_found', `no route ${p}`));
    answer.then(
      (body) => send(200, body),
      (err: StrataError) =>
        send(err.code === 'not_found' ? 404 : 500, { error: { code: err.code, message: err.message } }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;

  return {
    apiUrl: `http://127.0.0.1:${port}`,
    s3Endpoint: emulator.endpoint,
    index,
    s3,
    async put(path, bytes, date) {
      const key = keyForPath(DATA_PREFIX, path);
      let etag: string;
      // The emulator takes single PUTs up to 11 MiB; larger bodies go multipart, as in production.
      if (bytes.length <= 8 * 1024 * 1024) {
        const r = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes }));
        etag = r.ETag ?? '';
      } else {
        const r = await new Upload({
          client: s3,
          params: { Bucket: BUCKET, Key: key, Body: bytes },
          partSize: 8 * 1024 * 1024,
        }).done();
        etag = r.ETag ?? '';
      }
      etag = etag.replace(/"/g, '');
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      index.put(path, { size: bytes.length, etag, sha256, ...(date ? { date } : {}) });
      return { etag, sha256 };
    },
    async stop() {
      await new Promise<void>((r) => (server as Server).close(() => r()));
      server.closeAllConnections();
      s3.destroy();
      await emulator.stop();
    },
  };
}
