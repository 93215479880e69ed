/**
 * Settling the sessions of unapplied puts (fc4e791) runs after the batch committed. When it failed
 * (a dropped connection, a statement timeout), the batch was retried message by message — but by
 * then every change was already in the index, so the retry applied nothing and invalidated nothing:
 * the metadata cache kept the pre-batch answer of an overwritten path for its whole TTL. The cache
 * must be invalidated before anything that can still fail. Real PostgreSQL; the failure is one
 * injected error on the settlement's probe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../../functions/adapters/pg/pool.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { metadataCache, resetMetadataCache } from '../../../functions/handlers/http/cache.ts';
import { type HeadFn, type IndexerDeps, indexBatch } from '../../../functions/handlers/indexer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, putEvent, sqsRecord } from '../index/s3-events.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
/** Fails the next settlement probe (settleSuperseded's first query) once. */
let failNextProbe = false;
const head: HeadFn = async () => ({ etag: 'e', contentType: 'text/plain' });

/** The pool, except that the armed settlement probe throws as a dropped connection would. */
function faultyPool(pool: Pool): Pool {
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') {
        return (text: unknown, ...rest: unknown[]) => {
          if (failNextProbe && typeof text === 'string' && /FROM upload_sessions[\s\S]*LIMIT 1/.test(text)) {
            failNextProbe = false;
            return Promise.reject(Object.assign(new Error('Connection terminated unexpectedly'), {}));
          }
          return (target.query as (...a: unknown[]) => unknown)(text, ...rest);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

beforeAll(async () => {
  db = await startTestDb();
  // A long in-process TTL: only an invalidation can drop the entry within the test.
  const config = parseConfig({
    STRATA_BUCKET: BUCKET,
    STRATA_DATA_PREFIX: PREFIX,
    STRATA_CACHE_TTL_MS: '600000',
  });
  deps = { config, pool: faultyPool(db.pool), head, redis: new RedisGuard(undefined) };
}, 60_000);

afterAll(async () => {
  resetMetadataCache();
  await db?.stop();
});

describe('a batch whose upload settlement fails after the index committed', () => {
  it('has invalidated the metadata cache of the paths it changed', async () => {
    // Prepare: /s/a indexed, and its answer in the cache the query Lambda shares with the indexer
    const first = await indexBatch(deps, [sqsRecord(putEvent(`${PREFIX}s/a`, 1, 5, 'etag-1'))]);
    expect(first.failed.size).toBe(0);
    const cache = metadataCache(deps.redis, 600_000, deps.config.cacheNamespace, deps.pool);
    await cache.setResolve('/s/a', { path: '/s/a', etag: 'etag-1' } as never);
    expect((await cache.readResolve('/s/a')).cached?.value).toMatchObject({ etag: 'etag-1' });

    // Act: two overwrites in one batch (the older one is superseded, so its session is settled
    // after the commit), and that settlement's first query fails once
    failNextProbe = true;
    const { failed } = await indexBatch(deps, [
      sqsRecord(putEvent(`${PREFIX}s/a`, 2, 6, 'etag-2')),
      sqsRecord(putEvent(`${PREFIX}s/a`, 3, 7, 'etag-3')),
    ]);

    // Assess: the injected failure happened, the batch still succeeded (its retry settles), the
    // index holds the newest put, and the cache no longer answers with the replaced version
    expect(failNextProbe).toBe(false);
    expect(failed.size).toBe(0);
    const { rows } = await db.pool.query<{ etag: string }>(`SELECT etag FROM objects WHERE path = '/s/a'`);
    expect(rows.map((r) => r.etag)).toEqual(['etag-3']);
    expect((await cache.readResolve('/s/a')).cached).toBeUndefined();
  });
});
