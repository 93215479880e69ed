/**
 * Review finding (session 5): a versioned bucket's delete of the current version makes the
 * previous version current again, and the indexer indexes it as a put. Upload settlement matched
 * that put to an open upload session of the same key and size — a producer's upload still in
 * flight — and marked it completed with its reservation released. For a multipart session the
 * producer's POST /complete then answered "completed" (a retried complete) without completing
 * the upload in S3: the new content was acknowledged and never stored. A restored version is no
 * upload: it settles no session; its bytes still count against the quota.
 */
import { describe, expect, it } from 'vitest';
import { getObject } from '../../../functions/adapters/pg/index-store.ts';
import {
  getQuota,
  getSession,
  markCompleted,
  setQuota,
} from '../../../functions/adapters/pg/uploads-store.ts';
import type { S3EventName } from '../../../local/s3-events.ts';
import { PREFIX } from '../index/s3-events.ts';
import { useVersionedIndexer, versionEvent } from '../index/versioned-bucket.ts';
import { openMultipart } from '../upload/sessions.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

const t = useVersionedIndexer();

function event(
  eventName: S3EventName,
  n: number,
  versionId: string,
  size?: number,
  eTag?: string,
  key = 'data/q/a',
): string {
  return versionEvent(eventName, key, n, { versionId, ...(size !== undefined ? { size, eTag } : {}) });
}

describe('a version made current again by a delete', () => {
  it('settles no open upload of the same size, and moves the quota by the size difference', async () => {
    // Prepare: /q/a is v1 (20 bytes) then v2 (30 bytes), under a quota.
    await setQuota(t.db.pool, PREFIX, '/q', 1000);
    t.current.set('data/q/a', { etag: 'e1', size: 20, versionId: 'v1' });
    await t.run([event('ObjectCreated:Put', 2, 'v1', 20, 'e1')]);
    t.current.set('data/q/a', { etag: 'e2', size: 30, versionId: 'v2' });
    await t.run([event('ObjectCreated:Put', 3, 'v2', 30, 'e2')]);
    // A producer starts a 20-byte multipart upload of /q/a (its parts are still being sent).
    const id = await openMultipart(t.db.pool, '/q/a', 20);
    // Act: someone deletes v2 for good; v1 is current again.
    t.current.set('data/q/a', { etag: 'e1', size: 20, versionId: 'v1' });
    const r = await t.run([event('ObjectRemoved:Delete', 4, 'v2')]);
    // Assess
    expect(r.failed.size).toBe(0);
    expect(await getObject(t.db.pool, '/q/a')).toMatchObject({ state: 'active', etag: 'e1', size: 20 });
    expect(await getSession(t.db.pool, id)).toMatchObject({ state: 'pending', reservedBytes: 20 });
    expect(await getQuota(t.db.pool, '/q')).toMatchObject({ usedBytes: 20, reservedBytes: 20 });
  });

  it('still settles the session whose own upload HEAD finds current (its put event not indexed yet)', async () => {
    // Prepare: /q/b is v1; a session opens, its upload completes in S3 as v2 (written now) and its
    // POST /complete records the ETag S3 returned.
    t.current.set('data/q/b', { etag: 'e1', size: 20, versionId: 'v1' });
    await t.run([event('ObjectCreated:Put', 2, 'v1', 20, 'e1', 'data/q/b')]);
    const id = await openMultipart(t.db.pool, '/q/b', 25);
    t.current.set('data/q/b', { etag: 'e2', size: 25, versionId: 'v2', lastModified: new Date() });
    expect(await markCompleted(t.db.pool, id, '"e2"')).toBe(true);
    expect(await getSession(t.db.pool, id)).toMatchObject({ state: 'completed', reservedBytes: 25 });
    // Act: the lifecycle expiry of v1 (seq 4) is indexed before v2's own put event (seq 3).
    await t.run([event('LifecycleExpiration:Delete', 4, 'v1', undefined, undefined, 'data/q/b')]);
    await t.run([event('ObjectCreated:CompleteMultipartUpload', 3, 'v2', 25, 'e2', 'data/q/b')]);
    // Assess: v2 is indexed and its session settled (the put event itself lost the guard).
    expect(await getObject(t.db.pool, '/q/b')).toMatchObject({ state: 'active', etag: 'e2' });
    expect(await getSession(t.db.pool, id)).toMatchObject({ state: 'completed', reservedBytes: 0 });
  });

  it('when those events beat POST /complete, the session stays pending until /complete settles it', async () => {
    // Prepare: as above on /q/c, but the upload's /complete has not updated the session yet.
    t.current.set('data/q/c', { etag: 'e1', size: 20, versionId: 'v1' });
    await t.run([event('ObjectCreated:Put', 2, 'v1', 20, 'e1', 'data/q/c')]);
    const id = await openMultipart(t.db.pool, '/q/c', 25);
    t.current.set('data/q/c', { etag: 'e2', size: 25, versionId: 'v2', lastModified: new Date() });
    // Act 1: the expiry of v1 and v2's own put event are indexed first.
    await t.run([event('LifecycleExpiration:Delete', 4, 'v1', undefined, undefined, 'data/q/c')]);
    await t.run([event('ObjectCreated:CompleteMultipartUpload', 3, 'v2', 25, 'e2', 'data/q/c')]);
    // Assess 1: not completed (a /complete answered from that state would skip S3), still reserved.
    expect(await getObject(t.db.pool, '/q/c')).toMatchObject({ state: 'active', etag: 'e2' });
    expect(await getSession(t.db.pool, id)).toMatchObject({ state: 'pending', reservedBytes: 25 });
    // Act 2: /complete records the ETag S3 returned, which the index has already seen.
    expect(await markCompleted(t.db.pool, id, '"e2"')).toBe(true);
    // Assess 2: settled there.
    expect(await getSession(t.db.pool, id)).toMatchObject({ state: 'completed', reservedBytes: 0 });
  });
});
