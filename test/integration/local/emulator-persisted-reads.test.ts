import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';

// fauxqs's SQLite persistence (dist file of the pinned version, as local/emulator.ts loads it).
type Persistence = { prototype: { readBody(bucket: string, key: string): Buffer } };
const { PersistenceManager } = (await import(
  new URL('./persistence.js', import.meta.resolve('fauxqs')).href
)) as {
  PersistenceManager: Persistence;
};

const dir = mkdtempSync(join(tmpdir(), 'strata-emu-reads-'));
let emulator: Emulator;
let s3: S3Client;
let bodyReads = 0;
const originalReadBody = PersistenceManager.prototype.readBody;

beforeAll(async () => {
  PersistenceManager.prototype.readBody = function (this: unknown, bucket: string, key: string) {
    bodyReads += 1;
    return originalReadBody.call(this, bucket, key);
  };
  emulator = await startEmulator({ dataDir: dir, region: 'us-east-1' });
  emulator.createBucket('qa-bucket');
  s3 = new S3Client({
    endpoint: emulator.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
});

afterAll(async () => {
  PersistenceManager.prototype.readBody = originalReadBody;
  s3?.destroy();
  await emulator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function range(key: string, start: number, end: number): Promise<Buffer> {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: 'qa-bucket', Key: key, Range: `bytes=${start}-${end}` }),
  );
  return Buffer.from(await r.Body!.transformToByteArray());
}

describe('the persisted S3 emulator of the local stack', () => {
  it('loads a body from SQLite once for many ranged GETs, and never serves an overwritten one', async () => {
    const body = randomBytes(4 * 1024 * 1024);
    await s3.send(new PutObjectCommand({ Bucket: 'qa-bucket', Key: 'data/f.bin', Body: body }));
    bodyReads = 0;

    // Like a mount reading a file block by block with GETs in flight at once.
    const block = 256 * 1024;
    const parts = await Promise.all(
      Array.from({ length: 16 }, (_, i) => range('data/f.bin', i * block, (i + 1) * block - 1)),
    );
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    // Every GET re-read the whole 4 MiB body from SQLite before (16 reads).
    expect(bodyReads).toBe(1);

    const next = randomBytes(4 * 1024 * 1024);
    await s3.send(new PutObjectCommand({ Bucket: 'qa-bucket', Key: 'data/f.bin', Body: next }));
    expect((await range('data/f.bin', 0, block - 1)).equals(next.subarray(0, block))).toBe(true);
    expect((await range('data/f.bin', block, 2 * block - 1)).equals(next.subarray(block, 2 * block))).toBe(
      true,
    );
    expect(bodyReads).toBe(2);
  });
});
