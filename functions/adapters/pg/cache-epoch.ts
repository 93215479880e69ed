/**
 * The Redis cache epoch in PostgreSQL (migration 0014).
 *
 * Design note. Redis invalidations are best effort: with Redis down or unreachable the indexer's
 * DEL never arrives, and an entry written before the outage (a Redis that persists, as Upstash
 * does) would be served again once Redis is back, for up to its TTL. The writer that failed to
 * invalidate advances this epoch instead; readers stamp entries with the epoch they saw and ignore
 * other epochs. Readers re-read the epoch at most every EPOCH_REFRESH_MS, which bounds how long
 * such an entry can still be served, as the in-process level's TTL bounds it for delivered ones.
 */
import { isConnectionError, isConnectTimeout, type Queryable } from './pool.ts';

/**
 * How long a reader trusts the epoch it read: 1 s matches the in-process cache's default TTL (the
 * staleness bound across Lambdas already documented), at one small query per second per
 * execution environment.
 */
export const EPOCH_REFRESH_MS = 1000;

/**
 * Retries of a bump whose connection was lost. It runs after the index committed: if it fails, the
 * batch fails and its retry finds every change applied (stale), so nothing invalidates again and
 * the pre-outage entries stay servable for their TTL. A dead pooled connection (PostgreSQL
 * restarted or failed over since the connection was opened) must not decide that; advancing twice
 * is harmless (one extra cache miss), so retrying is safe. 3 retries, as readQuery's budget plus
 * one: the batch is already committed, so this is the last chance.
 */
const BUMP_RETRIES = 3;

/** Advances the epoch: every Redis entry written before this call is ignored from now on. */
export async function bumpCacheEpoch(db: Queryable): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await db.query(`SELECT nextval('cache_epoch')`);
      return;
    } catch (err) {
      if (attempt >= BUMP_RETRIES || !isConnectionError(err)) throw err;
      // 50, 100, 200 ms: a fresh connection needs a moment after a failover, and the batch waits.
      await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }
}

async function readEpoch(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ epoch: string }>(
    `SELECT (CASE WHEN is_called THEN last_value ELSE 0 END)::text AS epoch FROM cache_epoch`,
  );
  return rows[0]?.epoch ?? '0';
}

/**
 * A memoised epoch reader: at most one query per `refreshMs`, shared by concurrent callers.
 * Resolves undefined when the epoch cannot be read: the caller must then neither read nor write
 * Redis (an entry it cannot check is not safe to serve). Rejects when no connection could be made
 * within the connect timeout: the caller's own read would wait that timeout again, and the two
 * together outlast the query Lambda's 10 s (a Lambda timeout instead of a 503).
 */
export function cacheEpochReader(
  db: Queryable,
  refreshMs = EPOCH_REFRESH_MS,
): () => Promise<string | undefined> {
  let value: string | undefined;
  let readAt = Number.NEGATIVE_INFINITY;
  let inflight: Promise<string | undefined> | undefined;
  return () => {
    if (value !== undefined && Date.now() - readAt < refreshMs) return Promise.resolve(value);
    inflight ??= (async () => {
      const started = Date.now();
      try {
        value = await readEpoch(db);
        readAt = started;
        return value;
      } catch (err) {
        value = undefined;
        if (isConnectTimeout(err)) throw err;
        return undefined;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
}
