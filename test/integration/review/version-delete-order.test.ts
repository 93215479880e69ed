/**
 * Review finding (session 5): S3 events arrive unordered. In a versioned bucket, "undelete" is
 * deleting the delete marker (`DELETE ?versionId=<marker>`, an ObjectRemoved:Delete naming a
 * version): the previous version is current again. When that event was indexed before the older
 * DeleteMarkerCreated event, the indexer saw the index already holding the current version and
 * dropped the change as a no-op — without recording its sequencer. The older marker event then
 * won the sequencer guard and the path was marked deleted while S3 serves it (until reconcile).
 */
import { describe, expect, it } from 'vitest';
import { changesSince, getObject } from '../../../functions/adapters/pg/index-store.ts';
import type { S3EventName } from '../../../local/s3-events.ts';
import { useVersionedIndexer, versionEvent } from '../index/versioned-bucket.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

const t = useVersionedIndexer();

function event(eventName: S3EventName, key: string, n: number, versionId: string): string {
  return versionEvent(eventName, key, n, { versionId });
}

describe('versioned bucket, events out of order', () => {
  it('an undelete indexed before the delete it undoes leaves the path live', async () => {
    // Prepare: v2 is indexed; then S3 saw a delete marker (seq 3) and its removal (seq 4).
    t.current.set('data/u/a', { etag: 'e2', size: 20, versionId: 'v2' });
    await t.run([event('ObjectCreated:Put', 'data/u/a', 2, 'v2')]);
    // Act: the removal of the marker arrives first, the marker's creation after it.
    const undelete = await t.run([event('ObjectRemoved:Delete', 'data/u/a', 4, 'marker-1')]);
    const { latest } = await changesSince(t.db.pool, 0, 1000);
    const late = await t.run([event('ObjectRemoved:DeleteMarkerCreated', 'data/u/a', 3, 'marker-1')]);
    // Assess: v2 is current in S3, so it stays indexed; the undelete itself wrote no journal entry.
    expect(undelete.failed.size + late.failed.size).toBe(0);
    expect(await getObject(t.db.pool, '/u/a')).toMatchObject({
      state: 'active',
      etag: 'e2',
      versionId: 'v2',
    });
    expect((await changesSince(t.db.pool, 0, 1000)).latest).toBe(latest);
  });

  it('the same two events in one batch leave the path live too', async () => {
    t.current.set('data/u/c', { etag: 'e2', size: 20, versionId: 'v2' });
    await t.run([event('ObjectCreated:Put', 'data/u/c', 2, 'v2')]);
    await t.run([
      event('ObjectRemoved:Delete', 'data/u/c', 4, 'marker-1'),
      event('ObjectRemoved:DeleteMarkerCreated', 'data/u/c', 3, 'marker-1'),
    ]);
    expect(await getObject(t.db.pool, '/u/c')).toMatchObject({ state: 'active', etag: 'e2' });
  });

  it('a delete of the last version racing ahead of an older undelete still ends deleted', async () => {
    // Prepare: v1 is indexed and t.current.
    t.current.set('data/u/b', { etag: 'e1', size: 20, versionId: 'v1' });
    await t.run([event('ObjectCreated:Put', 'data/u/b', 2, 'v1')]);
    // Act: the noncurrent-version no-op (seq 3) is seen, then v1 itself is deleted for good (seq 5).
    await t.run([event('LifecycleExpiration:Delete', 'data/u/b', 3, 'v0')]);
    t.current.set('data/u/b', undefined);
    await t.run([event('ObjectRemoved:Delete', 'data/u/b', 5, 'v1')]);
    // Assess
    expect((await getObject(t.db.pool, '/u/b'))?.state).toBe('deleted');
  });
});
