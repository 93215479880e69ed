/**
 * Review finding (session 5): S3 events arrive unordered. In a versioned bucket, "undelete" is
 * deleting the delete marker (`DELETE ?versionId=<marker>`, an ObjectRemoved:Delete naming a
 * version): the previous version is current again. When that event was indexed before the older
 * DeleteMarkerCreated event, the indexer saw the index already holding the current version and
 * dropped the change as a no-op — without recording its sequencer. The older marker event then
 * won the sequencer guard and the path was marked deleted while S3 serves it (until reconcile).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changesSince, getObject } from '../../../functions/adapters/pg/index-store.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { buildS3EventRecord, type S3EventName, s3EventMessage } from '../../../local/s3-events.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, seq, sqsRecord } from '../index/s3-events.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
/** S3's current version per key, as HEAD (no versionId) answers it; undefined = 404. */
const current = new Map<string, { etag: string; size: number; versionId: string } | undefined>();

beforeAll(async () => {
  db = await startTestDb();
  deps = {
    config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
    pool: db.pool,
    redis: new RedisGuard(undefined),
    head: async (key, versionId) => {
      const c = current.get(key);
      if (!c || (versionId !== undefined && versionId !== c.versionId)) return undefined;
      return { ...c, lastModified: new Date('2024-03-01T00:00:00Z'), contentType: 'text/plain' };
    },
  };
});

afterAll(async () => {
  await db?.stop();
});

function event(eventName: S3EventName, key: string, n: number, versionId: string): string {
  return s3EventMessage([
    buildS3EventRecord({
      eventName,
      bucket: BUCKET,
      key,
      sequencer: seq(n),
      versionId,
      ...(eventName.startsWith('ObjectCreated:') ? { size: 20, eTag: 'e2' } : {}),
    }),
  ]);
}

const run = (bodies: string[]) =>
  indexBatch(
    deps,
    bodies.map((b) => sqsRecord(b)),
  );

describe('versioned bucket, events out of order', () => {
  it('an undelete indexed before the delete it undoes leaves the path live', async () => {
    // Prepare: v2 is indexed; then S3 saw a delete marker (seq 3) and its removal (seq 4).
    current.set('data/u/a', { etag: 'e2', size: 20, versionId: 'v2' });
    await run([event('ObjectCreated:Put', 'data/u/a', 2, 'v2')]);
    // Act: the removal of the marker arrives first, the marker's creation after it.
    const undelete = await run([event('ObjectRemoved:Delete', 'data/u/a', 4, 'marker-1')]);
    const { latest } = await changesSince(db.pool, 0, 1000);
    const late = await run([event('ObjectRemoved:DeleteMarkerCreated', 'data/u/a', 3, 'marker-1')]);
    // Assess: v2 is current in S3, so it stays indexed; the undelete itself wrote no journal entry.
    expect(undelete.failed.size + late.failed.size).toBe(0);
    expect(await getObject(db.pool, '/u/a')).toMatchObject({ state: 'active', etag: 'e2', versionId: 'v2' });
    expect((await changesSince(db.pool, 0, 1000)).latest).toBe(latest);
  });

  it('the same two events in one batch leave the path live too', async () => {
    current.set('data/u/c', { etag: 'e2', size: 20, versionId: 'v2' });
    await run([event('ObjectCreated:Put', 'data/u/c', 2, 'v2')]);
    await run([
      event('ObjectRemoved:Delete', 'data/u/c', 4, 'marker-1'),
      event('ObjectRemoved:DeleteMarkerCreated', 'data/u/c', 3, 'marker-1'),
    ]);
    expect(await getObject(db.pool, '/u/c')).toMatchObject({ state: 'active', etag: 'e2' });
  });

  it('a delete of the last version racing ahead of an older undelete still ends deleted', async () => {
    // Prepare: v1 is indexed and current.
    current.set('data/u/b', { etag: 'e1', size: 20, versionId: 'v1' });
    await run([event('ObjectCreated:Put', 'data/u/b', 2, 'v1')]);
    // Act: the noncurrent-version no-op (seq 3) is seen, then v1 itself is deleted for good (seq 5).
    await run([event('LifecycleExpiration:Delete', 'data/u/b', 3, 'v0')]);
    current.set('data/u/b', undefined);
    await run([event('ObjectRemoved:Delete', 'data/u/b', 5, 'v1')]);
    // Assess
    expect((await getObject(db.pool, '/u/b'))?.state).toBe('deleted');
  });
});
