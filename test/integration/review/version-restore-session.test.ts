/**
 * Review finding (session 5): a versioned bucket's delete of the current version makes the
 * previous version current again, and the indexer indexes it as a put. Upload settlement matched
 * that put to an open upload session of the same key and size — a producer's upload still in
 * flight — and marked it completed with its reservation released. For a multipart session the
 * producer's POST /complete then answered "completed" (a retried complete) without completing
 * the upload in S3: the new content was acknowledged and never stored. A restored version is no
 * upload: it settles no session; its bytes still count against the quota.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getObject } from '../../../functions/adapters/pg/index-store.ts';
import { getQuota, getSession, openSession, setQuota } from '../../../functions/adapters/pg/uploads-store.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { keyForPath } from '../../../functions/core/paths.ts';
import { type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { buildS3EventRecord, type S3EventName, s3EventMessage } from '../../../local/s3-events.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, seq, sqsRecord } from '../index/s3-events.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
const current = new Map<
  string,
  { etag: string; size: number; versionId: string; lastModified?: Date } | undefined
>();

beforeAll(async () => {
  db = await startTestDb();
  deps = {
    config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
    pool: db.pool,
    redis: new RedisGuard(undefined),
    head: async (key, versionId) => {
      const c = current.get(key);
      if (!c || (versionId !== undefined && versionId !== c.versionId)) return undefined;
      return { lastModified: new Date('2024-03-01T00:00:00Z'), ...c, contentType: 'text/plain' };
    },
  };
});

afterAll(async () => {
  await db?.stop();
});

function event(
  eventName: S3EventName,
  n: number,
  versionId: string,
  size?: number,
  eTag?: string,
  key = 'data/q/a',
): string {
  return s3EventMessage([
    buildS3EventRecord({
      eventName,
      bucket: BUCKET,
      key,
      sequencer: seq(n),
      versionId,
      ...(size !== undefined ? { size, eTag } : {}),
    }),
  ]);
}

const run = (bodies: string[]) =>
  indexBatch(
    deps,
    bodies.map((b) => sqsRecord(b)),
  );

async function openMultipart(path: string, size: number): Promise<string> {
  const id = randomUUID();
  await openSession(db.pool, {
    id,
    path,
    key: keyForPath(PREFIX, path),
    size,
    sha256: null,
    contentType: 'application/octet-stream',
    date: null,
    metadata: null,
    mode: 'multipart',
    s3UploadId: `mpu-${id}`,
    partSize: size,
    partCount: 1,
    tokenId: 'tok',
    idempotencyKey: null,
    bodyHash: null,
    expiresAt: new Date(Date.now() + 600_000),
  });
  return id;
}

describe('a version made current again by a delete', () => {
  it('settles no open upload of the same size, and moves the quota by the size difference', async () => {
    // Prepare: /q/a is v1 (20 bytes) then v2 (30 bytes), under a quota.
    await setQuota(db.pool, PREFIX, '/q', 1000);
    current.set('data/q/a', { etag: 'e1', size: 20, versionId: 'v1' });
    await run([event('ObjectCreated:Put', 2, 'v1', 20, 'e1')]);
    current.set('data/q/a', { etag: 'e2', size: 30, versionId: 'v2' });
    await run([event('ObjectCreated:Put', 3, 'v2', 30, 'e2')]);
    // A producer starts a 20-byte multipart upload of /q/a (its parts are still being sent).
    const id = await openMultipart('/q/a', 20);
    // Act: someone deletes v2 for good; v1 is current again.
    current.set('data/q/a', { etag: 'e1', size: 20, versionId: 'v1' });
    const r = await run([event('ObjectRemoved:Delete', 4, 'v2')]);
    // Assess
    expect(r.failed.size).toBe(0);
    expect(await getObject(db.pool, '/q/a')).toMatchObject({ state: 'active', etag: 'e1', size: 20 });
    expect(await getSession(db.pool, id)).toMatchObject({ state: 'pending', reservedBytes: 20 });
    expect(await getQuota(db.pool, '/q')).toMatchObject({ usedBytes: 20, reservedBytes: 20 });
  });

  it('still settles the session whose own upload HEAD finds current (its put event not indexed yet)', async () => {
    // Prepare: /q/b is v1; a session opens and its upload completes as v2 (written now).
    current.set('data/q/b', { etag: 'e1', size: 20, versionId: 'v1' });
    await run([event('ObjectCreated:Put', 2, 'v1', 20, 'e1', 'data/q/b')]);
    const id = await openMultipart('/q/b', 25);
    current.set('data/q/b', { etag: 'e2', size: 25, versionId: 'v2', lastModified: new Date() });
    // Act: the lifecycle expiry of v1 (seq 4) is indexed before v2's own put event (seq 3).
    await run([event('LifecycleExpiration:Delete', 4, 'v1', undefined, undefined, 'data/q/b')]);
    await run([event('ObjectCreated:CompleteMultipartUpload', 3, 'v2', 25, 'e2', 'data/q/b')]);
    // Assess: v2 is indexed and its session settled (the put event itself lost the guard).
    expect(await getObject(db.pool, '/q/b')).toMatchObject({ state: 'active', etag: 'e2' });
    expect(await getSession(db.pool, id)).toMatchObject({ state: 'completed', reservedBytes: 0 });
  });
});
