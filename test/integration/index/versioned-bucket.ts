/**
 * A versioned bucket as the indexer sees it, for tests of version deletes and lifecycle
 * expirations: S3's current version per key (what HEAD without a versionId answers; undefined =
 * none left or a delete marker is current), a HEAD that answers from it and counts its calls, and
 * S3 event messages that name a version.
 */
import { afterAll, beforeAll } from 'vitest';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { type HeadFn, type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { buildS3EventRecord, type S3EventName, s3EventMessage } from '../../../local/s3-events.ts';
import { startTestDb, type TestDb } from './db.ts';
import { BUCKET, PREFIX, seq, sqsRecord } from './s3-events.ts';

export interface CurrentVersion {
  etag: string;
  size: number;
  versionId: string;
  lastModified?: Date;
}

export function versionedBucket(): {
  current: Map<string, CurrentVersion | undefined>;
  heads: string[];
  head: HeadFn;
} {
  const current = new Map<string, CurrentVersion | undefined>();
  const heads: string[] = [];
  const head: HeadFn = async (key, versionId) => {
    heads.push(key);
    const c = current.get(key);
    if (!c || (versionId !== undefined && versionId !== c.versionId)) return undefined;
    return { lastModified: new Date('2024-03-01T00:00:00Z'), ...c, contentType: 'text/plain' };
  };
  return { current, heads, head };
}

/** One S3 event message; creates carry `size`/`eTag` (default 20 / e2). */
export function versionEvent(
  eventName: S3EventName,
  key: string,
  sequencer: number,
  o: { versionId?: string; size?: number; eTag?: string } = {},
): string {
  const created = eventName.startsWith('ObjectCreated:');
  return s3EventMessage([
    buildS3EventRecord({
      eventName,
      bucket: BUCKET,
      key,
      sequencer: seq(sequencer),
      ...(o.versionId ? { versionId: o.versionId } : {}),
      ...(created || o.size !== undefined ? { size: o.size ?? 20, eTag: o.eTag ?? 'e2' } : {}),
    }),
  ]);
}

/**
 * A test database and an indexer reading a versioned bucket (versionedBucket), started in
 * beforeAll and stopped in afterAll; call at the top level of a test file.
 */
export function useVersionedIndexer(): ReturnType<typeof versionedBucket> & {
  readonly db: TestDb;
  readonly deps: IndexerDeps;
  run(bodies: string[]): ReturnType<typeof indexBatch>;
} {
  const bucket = versionedBucket();
  let db: TestDb | undefined;
  let deps: IndexerDeps | undefined;
  beforeAll(async () => {
    db = await startTestDb();
    deps = {
      config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
      pool: db.pool,
      redis: new RedisGuard(undefined),
      head: bucket.head,
    };
  });
  afterAll(async () => {
    await db?.stop();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the test database is used before beforeAll started it');
    return v;
  };
  return {
    ...bucket,
    get db() {
      return started(db);
    },
    get deps() {
      return started(deps);
    },
    run: (bodies) =>
      indexBatch(
        started(deps),
        bodies.map((b) => sqsRecord(b)),
      ),
  };
}
