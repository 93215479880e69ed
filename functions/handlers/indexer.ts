/**
 * The indexer: S3 event notifications from the SQS ingest queue → the PostgreSQL index.
 *
 * Design note. A batch (≤ 100 messages, routes.ts) is handled as:
 * 1. parse every message (malformed → that message fails alone; `s3:TestEvent` → ignored);
 *    keys outside the bucket/data prefix are ignored and counted;
 * 2. HeadObject for puts to fetch what events lack (content type, checksum, user metadata) — but
 *    not for puts this environment knows to be stale: those are confirmed against the index (a
 *    peek, no locks) and dropped before any S3 call; HEAD 404 means the object is already gone
 *    (counted, not an error);
 * 3. the whole batch is applied atomically by applyObjectChangesAtomically (index-store.ts): ONE
 *    statement (strata_apply_changes: sequencer guard, multi-row writes, rollup deltas, journal),
 *    or one transaction with upload settlement when an upload session or quota is involved;
 * 4. if that fails, each message is retried alone in its own transaction, so a record
 *    that hits a database error is the only one reported in `batchItemFailures` (Powertools
 *    batch); SQS redelivers it, and after maxReceiveCount it lands in the DLQ;
 * 5. after commit: invalidate both cache levels for changed paths and their ancestors, and fold
 *    rollup deltas (best effort).
 */

import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { HeadObjectCommand, NotFound, type S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import pLimit from 'p-limit';
import {
  applyObjectChangesAtomically,
  compactRollups,
  type ObjectChange,
  peekObjects,
  raiseSequencers,
} from '../adapters/pg/index-store.ts';
import type { Pool } from '../adapters/pg/pool.ts';
import { settleSuperseded } from '../adapters/pg/uploads-store.ts';
import type { RedisGuard } from '../adapters/redis/client.ts';
import type { ServerConfig } from '../config.ts';
import { ValidationError } from '../core/errors.ts';
import { Metric } from '../core/metrics.ts';
import { normalizePrefix, pathForKey } from '../core/paths.ts';
import { parseS3Message, type S3ObjectEvent } from '../core/s3-event.ts';
import { isNewer } from '../core/sequencer.ts';
import { metadataCache } from './http/cache.ts';
import { deps as httpDeps } from './http/deps.ts';
import { getLogger, getMetrics, MetricUnit } from './http/observability.ts';

/** What HeadObject tells us beyond the event. undefined = the object is gone (404). */
export interface HeadInfo {
  etag: string;
  size?: number;
  lastModified?: Date;
  contentType?: string;
  sha256?: string;
  metadata?: Record<string, string>;
  versionId?: string;
}
export type HeadFn = (key: string, versionId?: string) => Promise<HeadInfo | undefined>;

export interface IndexerDeps {
  config: ServerConfig;
  pool: Pool;
  head: HeadFn;
  redis: RedisGuard;
}

/** Parallel HEADs per batch: enough to hide S3 latency for 100 events, gentle on the connection pool. */
const HEAD_CONCURRENCY = 16;

export function s3Head(s3: S3Client, bucket: string): HeadFn {
  return async (key, versionId) => {
    try {
      const r = await s3.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, ChecksumMode: 'ENABLED' }),
      );
      const metadata = r.Metadata && Object.keys(r.Metadata).length > 0 ? r.Metadata : undefined;
      const fromChecksum =
        r.ChecksumSHA256 && !r.ChecksumSHA256.includes('-')
          ? Buffer.from(r.ChecksumSHA256, 'base64').toString('hex')
          : undefined;
      return {
        etag: (r.ETag ?? '').replace(/^"(.*)"$/, '$1'),
        ...(r.ContentLength !== undefined ? { size: r.ContentLength } : {}),
        ...(r.LastModified ? { lastModified: r.LastModified } : {}),
        contentType: r.ContentType,
        sha256: fromChecksum ?? metadata?.sha256,
        metadata,
        versionId: r.VersionId,
      };
    } catch (err) {
      if (err instanceof NotFound) return undefined;
      if (
        err instanceof S3ServiceException &&
        (err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchKey')
      ) {
        return undefined;
      }
      throw err;
    }
  };
}

interface ParsedRecord {
  record: SQSRecord;
  events: S3ObjectEvent[];
  error?: Error;
}

export interface BatchStats {
  events: number;
  ignored: number;
  stale: number;
  gone: number;
  heads: number;
  applied: number;
  failedRecords: number;
  maxLagMs: number;
}

/** Longest key quoted in a log line: S3 keys reach 1,024 bytes and hostile ones could be longer. */
const LOGGED_KEY_CHARS = 256;

/** Why a key is not indexable, in words an operator can act on. */
function ignoredReason(cfg: ServerConfig, bucket: string, key: string): string {
  if (bucket !== cfg.bucket || !key.startsWith(normalizePrefix(cfg.dataPrefix)))
    return `outside bucket ${cfg.bucket} / prefix ${cfg.dataPrefix}`;
  if (key.endsWith('/'))
    // The S3 console's "Create folder" and some sync tools write these zero-byte markers.
    return 'a folder marker (the key ends with "/"): directories exist through the files under them, so the marker adds nothing';
  return 'cannot be a Strata path (too long, control characters, not NFC, "."/".." or empty segments)';
}

function toChanges(
  cfg: ServerConfig,
  events: S3ObjectEvent[],
  stats: BatchStats,
  messageId?: string,
): Array<{ ev: S3ObjectEvent; change: ObjectChange }> {
  const out: Array<{ ev: S3ObjectEvent; change: ObjectChange }> = [];
  for (const ev of events) {
    const path = ev.bucket === cfg.bucket ? pathForKey(cfg.dataPrefix, ev.key) : undefined;
    if (!path) {
      stats.ignored++;
      // Not retried (no retry can make such a key indexable), so this line is its only trace: the
      // notification filter sends only the data prefix, so either the bucket/filter is wrong or
      // an object was written out of band under a name that can never be a Strata path.
      getLogger().warn('S3 event ignored: its key is not indexable', {
        messageId,
        bucket: ev.bucket,
        key: ev.key.length > LOGGED_KEY_CHARS ? `${ev.key.slice(0, LOGGED_KEY_CHARS)}…` : ev.key,
        reason: ignoredReason(cfg, ev.bucket, ev.key),
      });
      continue;
    }
    if (ev.kind === 'put') {
      out.push({
        ev,
        change: {
          kind: 'put',
          key: ev.key,
          path,
          size: ev.size ?? 0,
          etag: ev.etag ?? '',
          versionId: ev.versionId,
          sequencer: ev.sequencer,
          lastModified: ev.eventTime,
        },
      });
    } else {
      // A delete marker hides the key; a delete naming a version removes only that version.
      const oneVersion = ev.versionId !== undefined && !ev.eventName.endsWith(':DeleteMarkerCreated');
      out.push({
        ev,
        change: {
          kind: 'delete',
          key: ev.key,
          path,
          sequencer: ev.sequencer,
          at: ev.eventTime,
          ...(oneVersion ? { versionId: ev.versionId } : {}),
        },
      });
    }
  }
  return out;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The newest sequencer this execution environment has indexed (or read from the index) per path.
 * A hint, never the decision (strata_apply_changes guards every write): a put it marks as stale is
 * checked against the index before its HEAD is skipped; every other put is HEADed with no database
 * read first. That trades the peek's round trip on the shared database — paid by every batch — for
 * an extra HEAD on a duplicate or late event this environment has not seen the newer version of
 * (S3 HEADs scale out; the database does not). 100,000 paths ≈ 15 MB, a few minutes of ingest at
 * full speed: duplicates and reorderings arrive within seconds of the original.
 */
const newestSeen = new Map<string, string>();
const NEWEST_SEEN_MAX = 100_000;

/**
 * A Map with first-in-first-out eviction, not an LRU: profiled, lru-cache's get/set bookkeeping
 * cost ~3 µs per event here, and a hint that forgets its oldest paths first loses nothing (the
 * duplicates it catches arrive within seconds of the original).
 */
function boundedSet<V>(m: Map<string, V>, max: number, key: string, value: V): void {
  if (m.size >= max && !m.has(key)) {
    const oldest = m.keys().next().value;
    if (oldest !== undefined) m.delete(oldest);
  }
  m.set(key, value);
}

function remember(path: string, sequencer: string | null | undefined): void {
  if (!sequencer) return;
  const prior = newestSeen.get(path);
  if (prior === undefined || isNewer(sequencer, prior))
    boundedSet(newestSeen, NEWEST_SEEN_MAX, path, sequencer);
}

/**
 * A version deleted for good in a versioned bucket (by `DELETE ?versionId=`, or a lifecycle rule
 * expiring noncurrent versions) leaves the key's current version in place — or, when the current
 * one was deleted, makes the previous version current. Either way the path must not vanish from
 * the index, so S3 is asked for the key's current version: the change becomes a put of it (with
 * the event's sequencer, so older events stay older), or stays a delete when there is none (the
 * last version went, or a delete marker is current).
 */
async function settleVersionDeletes(
  d: IndexerDeps,
  changes: ObjectChange[],
  stats: BatchStats,
): Promise<ObjectChange[]> {
  const oneVersion = changes.filter((c) => c.kind === 'delete' && c.versionId !== undefined);
  if (oneVersion.length === 0) return changes;
  const stored = await peekObjects(
    d.pool,
    oneVersion.map((c) => c.path),
  );
  /** Per path, the newest no-op among this batch's version deletes, and every no-op put. */
  const noop = new Map<string, { path: string; sequencer: string; etag: string; versionId?: string }>();
  const noopPuts = new Set<ObjectChange>();
  // Bounded like enrich's HEADs: a lifecycle rule expiring noncurrent versions delivers whole
  // batches of these at once.
  const limit = pLimit(HEAD_CONCURRENCY);
  const settled = await Promise.all(
    changes.map(async (c): Promise<ObjectChange> => {
      if (c.kind !== 'delete' || c.versionId === undefined) return c;
      return limit(() => settleOne(c));
    }),
  );
  async function settleOne(c: ObjectChange & { kind: 'delete' | 'missing' }): Promise<ObjectChange> {
    stats.heads++;
    const current = await d.head(c.key);
    if (!current) return c;
    const put: ObjectChange = {
      kind: 'put',
      key: c.key,
      path: c.path,
      size: current.size ?? 0,
      etag: current.etag,
      ...(current.versionId ? { versionId: current.versionId } : {}),
      ...(c.sequencer !== undefined ? { sequencer: c.sequencer } : {}),
      lastModified: current.lastModified ?? c.at ?? new Date(),
      restored: true,
    };
    fillFromHead(put, current);
    // Only a noncurrent version went (the bucket's own rule expires them daily): the index
    // already holds the current one, so nothing changes — no write, no journal entry that would
    // make every mount drop its cached entry for the path. Its sequencer is still recorded
    // (raiseSequencers): an older event still in flight — the delete marker an undelete
    // removed — must lose to it, or it would delete a path S3 serves.
    const s = stored.get(c.path);
    if (
      c.sequencer !== undefined &&
      s?.state === 'active' &&
      s.etag === current.etag &&
      (s.versionId ?? undefined) === current.versionId
    ) {
      noopPuts.add(put);
      const seen = noop.get(c.path);
      if (!seen || isNewer(c.sequencer, seen.sequencer))
        noop.set(c.path, {
          path: c.path,
          sequencer: c.sequencer,
          etag: current.etag,
          ...(current.versionId ? { versionId: current.versionId } : {}),
        });
    }
    return put;
  }
  if (noop.size === 0) return settled;
  const raised = await raiseSequencers(d.pool, [...noop.values()]);
  for (const path of raised) remember(path, noop.get(path)?.sequencer);
  // A row that changed meanwhile was not raised: its put goes through the guard like any other.
  return settled.filter((c) => !(noopPuts.has(c) && raised.has(c.path)));
}

/** Copies what only HeadObject knows (type, checksum, user metadata, strata-date) onto a put. */
function fillFromHead(c: ObjectChange & { kind: 'put' }, info: HeadInfo): void {
  c.contentType = info.contentType;
  c.sha256 = info.sha256;
  c.versionId ??= info.versionId;
  if (info.metadata) {
    const { sha256: _s, 'strata-date': date, ...rest } = info.metadata;
    if (Object.keys(rest).length > 0) c.metadata = rest;
    if (date && DATE.test(date)) c.date = date;
  }
}

/** Fills puts that will win with HeadObject data; drops puts whose object is gone. */
async function enrich(d: IndexerDeps, all: ObjectChange[], stats: BatchStats): Promise<ObjectChange[]> {
  const changes = await settleVersionDeletes(d, all, stats);
  const puts = changes.filter((c) => c.kind === 'put');
  if (puts.length === 0) return changes;
  const suspect = puts.filter((c) => {
    const seen = newestSeen.get(c.path);
    return c.sequencer !== undefined && seen !== undefined && !isNewer(c.sequencer, seen);
  });
  const stored =
    suspect.length > 0
      ? await peekObjects(
          d.pool,
          suspect.map((c) => c.path),
        )
      : new Map<string, { sequencer: string | null }>();
  for (const [path, s] of stored) remember(path, s.sequencer);
  const gone = new Set<ObjectChange>();
  const one = async (c: ObjectChange): Promise<void> => {
    // A restored version was built from its own HEAD (settleVersionDeletes): nothing to add.
    if (c.kind !== 'put' || c.restored) return;
    const s = stored.get(c.path);
    // Stale or duplicate: the guard will drop it anyway, so spend no S3 request on it.
    if (c.sequencer && s && !isNewer(c.sequencer, s.sequencer)) return;
    stats.heads++;
    const info = await d.head(c.key, c.versionId);
    if (!info) {
      stats.gone++;
      gone.add(c);
      return;
    }
    // A newer object replaced this one since the event: its metadata is not ours to record.
    if (info.etag !== c.etag) return;
    fillFromHead(c, info);
  };
  // HEAD_CONCURRENCY workers pulling from one cursor: the same bound as p-limit without a
  // closure and a queued promise per put (profiled at ~1 µs per event).
  let next = 0;
  const worker = async () => {
    while (next < puts.length) await one(puts[next++] as ObjectChange);
  };
  await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, puts.length) }, worker));
  return changes.filter((c) => !gone.has(c));
}

/**
 * `received` is every change of the batch before enrich (which drops puts whose object is gone):
 * the puts among them that the index did not apply (superseded, or gone) settle their upload
 * sessions here, since settleUploads only sees applied ones (uploads-store settleSuperseded).
 */
async function applyAndInvalidate(
  d: IndexerDeps,
  changes: ObjectChange[],
  stats: BatchStats,
  received: ObjectChange[],
): Promise<void> {
  const result =
    changes.length === 0
      ? { applied: [], stale: 0, dirs: [], days: [] }
      : // One autocommit statement per batch (a transaction only when an upload must be settled).
        await applyObjectChangesAtomically(d.pool, changes, { source: 'event' });
  // Every sequenced change is now at or below what the index holds for its path.
  for (const c of changes) remember(c.path, c.sequencer);
  stats.applied += result.applied.length;
  stats.stale += result.stale;
  // Invalidation first: once the batch committed, nothing that can still fail may come before it.
  // A failure below fails the batch, and its retry finds every change already applied (stale), so
  // it invalidates nothing: the cache would keep the replaced answers for their whole TTL.
  if (result.applied.length > 0) {
    const cache = metadataCache(d.redis, d.config.env.STRATA_CACHE_TTL_MS, d.config.cacheNamespace, d.pool);
    await cache.invalidate(
      result.applied.map((a) => a.path),
      result.dirs,
    );
    const pending = pendingCompaction.dirs;
    for (const dir of result.dirs) boundedSet(pending, PENDING_DIRS_MAX, dir, (pending.get(dir) ?? 0) + 1);
    for (const day of result.days) pendingCompaction.days.add(day);
    await maybeCompact(d.pool);
  }
  const applied = new Set(result.applied.map((a) => `${a.path}\0${a.etag ?? ''}`));
  const unapplied = received.filter(
    (c): c is ObjectChange & { kind: 'put' } =>
      c.kind === 'put' && !c.restored && !applied.has(`${c.path}\0${c.etag}`),
  );
  if (unapplied.length > 0) {
    await settleSuperseded(
      d.pool,
      unapplied.map((c) => ({ key: c.key, size: c.size, etag: c.etag, writtenAt: c.lastModified })),
    );
  }
}

/**
 * Rollup compaction runs at most once per COMPACT_INTERVAL_MS per execution environment, and only
 * over directories this environment has added at least COMPACT_AFTER delta rows to since they
 * were last folded: a busy indexer pays one short extra transaction per interval instead of one
 * per batch, and spends it on the directories that need it. Profiled, folding every directory
 * touched in the interval was ~a quarter of the indexer's database time when ingest is spread
 * over many directories (most are touched once or twice; folding those saves readers nothing).
 * A directory's rows stay bounded by about COMPACT_AFTER per environment writing to it.
 */
const COMPACT_INTERVAL_MS = 2000;
/** Matches compactRollups' default threshold (it folds a directory only above 8 rows). */
const COMPACT_AFTER = 8;
/** Directories tracked for compaction (~10 MB); the oldest is forgotten first (boundedSet). */
const PENDING_DIRS_MAX = 100_000;
const pendingCompaction = {
  // Delta rows added per directory since its last fold; an evicted count only delays a fold.
  dirs: new Map<string, number>(),
  days: new Set<string>(),
  last: 0,
};

async function maybeCompact(pool: Pool, force = false): Promise<void> {
  const now = Date.now();
  if (!force && now - pendingCompaction.last < COMPACT_INTERVAL_MS) return;
  pendingCompaction.last = now;
  const dirs: string[] = [];
  for (const [dir, rows] of pendingCompaction.dirs.entries()) {
    if (force || rows >= COMPACT_AFTER) dirs.push(dir);
  }
  for (const dir of dirs) pendingCompaction.dirs.delete(dir);
  const days = [...pendingCompaction.days];
  pendingCompaction.days.clear();
  try {
    await compactRollups(pool, dirs, days, force ? 1 : COMPACT_AFTER);
  } catch (err) {
    // Deltas still sum correctly without compaction; these directories are compacted next time they change.
    getLogger().warn('rollup compaction failed', { error: (err as Error).message });
  }
}

/** Compacts whatever is pending now (tests and benchmarks). */
export function flushCompaction(pool: Pool): Promise<void> {
  return maybeCompact(pool, true);
}

/** Processes one SQS batch; returns the ids of messages that must be retried. */
export async function indexBatch(
  d: IndexerDeps,
  records: SQSRecord[],
  now = Date.now(),
): Promise<{ failed: Set<string>; stats: BatchStats }> {
  const log = getLogger();
  const stats: BatchStats = {
    events: 0,
    ignored: 0,
    stale: 0,
    gone: 0,
    heads: 0,
    applied: 0,
    failedRecords: 0,
    maxLagMs: 0,
  };
  const failed = new Set<string>();
  const parsed: ParsedRecord[] = records.map((record) => {
    try {
      const msg = parseS3Message(record.body);
      if (msg.type === 'test') {
        stats.ignored++;
        return { record, events: [] };
      }
      return { record, events: msg.events };
    } catch (err) {
      log.error('malformed message; it will be retried and then moved to the DLQ', {
        messageId: record.messageId,
        error: (err as Error).message,
      });
      failed.add(record.messageId);
      return { record, events: [], error: err as Error };
    }
  });

  const perRecord = new Map<ParsedRecord, ObjectChange[]>();
  for (const p of parsed) {
    if (p.error) continue;
    stats.events += p.events.length;
    for (const ev of p.events) stats.maxLagMs = Math.max(stats.maxLagMs, now - ev.eventTime.getTime());
    perRecord.set(
      p,
      toChanges(d.config, p.events, stats, p.record.messageId).map((x) => x.change),
    );
  }

  try {
    const all = [...perRecord.values()].flat();
    await applyAndInvalidate(d, await enrich(d, all, stats), stats, all);
  } catch (batchErr) {
    log.warn('batch transaction failed; retrying each message alone to isolate the failure', {
      error: (batchErr as Error).message,
    });
    for (const [p, changes] of perRecord) {
      try {
        await applyAndInvalidate(d, await enrich(d, changes, stats), stats, changes);
      } catch (err) {
        log.error('message failed; SQS will redeliver it', {
          messageId: p.record.messageId,
          error: (err as Error).message,
        });
        failed.add(p.record.messageId);
      }
    }
  }
  stats.failedRecords = failed.size;
  return { failed, stats };
}

export function createIndexer(getDeps: () => IndexerDeps) {
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const d = getDeps();
    const metrics = getMetrics();
    const { failed, stats } = await indexBatch(d, event.Records);
    metrics.addMetric(Metric.IndexerEvents, MetricUnit.Count, stats.events);
    metrics.addMetric(Metric.IndexerUpserts, MetricUnit.Count, stats.applied);
    metrics.addMetric(Metric.IndexerIgnored, MetricUnit.Count, stats.ignored);
    metrics.addMetric(Metric.IndexerStale, MetricUnit.Count, stats.stale);
    metrics.addMetric(Metric.IndexerGone, MetricUnit.Count, stats.gone);
    metrics.addMetric(Metric.IndexerHeads, MetricUnit.Count, stats.heads);
    metrics.addMetric(Metric.IndexerFailures, MetricUnit.Count, stats.failedRecords);
    metrics.addMetric(Metric.IndexLagMs, MetricUnit.Milliseconds, stats.maxLagMs);
    metrics.publishStoredMetrics();
    if (stats.events > 0 || failed.size > 0) getLogger().info('batch indexed', { ...stats });
    // Powertools builds the ReportBatchItemFailures response from the per-message outcome.
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(
      event,
      async (record: SQSRecord) => {
        if (failed.has(record.messageId)) {
          throw new ValidationError(`message ${record.messageId} was not indexed`);
        }
      },
      processor,
      { throwOnFullBatchFailure: false },
    );
  };
}

let cold: IndexerDeps | undefined;
export function defaultIndexerDeps(): IndexerDeps {
  if (!cold) {
    const d = httpDeps();
    cold = { config: d.config, pool: d.pool, redis: d.redis, head: s3Head(d.s3, d.config.bucket) };
  }
  return cold;
}

export const handler = createIndexer(defaultIndexerDeps);
