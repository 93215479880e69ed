/**
 * PostgreSQL side of reconciliation: the index reader in key order, heals through the indexer's
 * write path (index-store.ts applyObjectChanges, source 'drift', journalled with the run id), and
 * the run ledger (migration 0030_reconcile.sql).
 *
 * Key order: objects.path is `COLLATE "C"` and a path is the S3 key with the data prefix replaced
 * by `/`, so ORDER BY path is UTF-8 byte order of the keys — the order ListObjectsV2 returns — and
 * every range below is a primary-key range scan.
 */
import { randomUUID } from 'node:crypto';
import type { ObjectState } from '../../core/api-types.ts';
import type { ObjectChange } from '../../core/index-apply.ts';
import { pathForKey } from '../../core/paths.ts';
import { compareKeys, prefixEnd } from '../../core/reconcile/key-order.ts';
import type { RunRecorder } from '../../core/reconcile/plan.ts';
import type { Heal, ReconcileIndex, RunLedger, Sample, SegmentClaim } from '../../core/reconcile/ports.ts';
import {
  COUNT_FIELDS,
  emptyCounts,
  type IndexedObject,
  normalizeEtag,
  type ReconcileCounts,
  type ReconcileRun,
  type ShardMessage,
  type ShardRange,
} from '../../core/reconcile/types.ts';
import { applyObjectChanges, compactRollups } from './index-store.ts';
import { type Pool, readQuery, withTransaction } from './pool.ts';

/**
 * Rows per index read. 1000 matches one S3 page, so a page of drift-free keys costs one listing
 * call and one index query; memory stays at one batch.
 */
export const INDEX_BATCH = 1000;
/**
 * Heals applied per transaction. Below the journal's 4,096 entries per transaction (migration
 * 0013) with room to spare, and the same size as an index read batch, so a chunk's row locks and
 * its transaction stay as short as a normal page's.
 */
export const APPLY_CHUNK = 1000;
/** Samples kept in a run report: enough to see what a dry run would do, bounded in size. */
export const MAX_REPORT_SAMPLES = 100;

const COLUMN: Record<keyof ReconcileCounts, string> = {
  scanned: 'scanned',
  added: 'added',
  missing: 'missing',
  deleted: 'deleted',
  refreshed: 'refreshed',
  unchanged: 'unchanged',
  skippedRecent: 'skipped_recent',
  ignored: 'ignored',
};

export interface ReconcileStoreOptions {
  dataPrefix: string;
  batchSize?: number;
  /**
   * Called after a heal transaction commits with the changed paths and directories — the same
   * post-commit step as the indexer's (metadata cache invalidation), so a healed path is never
   * served stale from Redis.
   */
  onApplied?: (paths: string[], dirs: string[]) => Promise<void>;
}

export class PgReconcileIndex implements ReconcileIndex {
  private readonly dataPrefix: string;
  private readonly batchSize: number;
  private readonly onApplied: ReconcileStoreOptions['onApplied'];
  constructor(
    private readonly pool: Pool,
    options: ReconcileStoreOptions,
  ) {
    this.dataPrefix = options.dataPrefix;
    this.batchSize = options.batchSize ?? INDEX_BATCH;
    this.onApplied = options.onApplied;
  }

  /** A key under the data prefix as the path bound with the same position in byte order. */
  private bound(key: string): string {
    if (!key.startsWith(this.dataPrefix)) {
      throw new RangeError(
        `key ${JSON.stringify(key)} is outside the data prefix ${JSON.stringify(this.dataPrefix)}`,
      );
    }
    return `/${key.slice(this.dataPrefix.length)}`;
  }

  async now(): Promise<Date> {
    // clock_timestamp(), not now(): now() is frozen at the start of a transaction.
    const { rows } = await readQuery<{ now: Date }>(this.pool, 'SELECT clock_timestamp() AS now');
    return (rows[0] as { now: Date }).now;
  }

  async *read(
    range: ShardRange,
    after: string | undefined,
    upTo: string | undefined,
  ): AsyncIterable<IndexedObject[]> {
    const pathPrefix = this.bound(range.prefix);
    // Lower bound: the greatest of the prefix, `from` (inclusive) and `after` (exclusive).
    let lower = pathPrefix;
    let lowerInclusive = true;
    if (range.from !== undefined && compareKeys(this.bound(range.from), lower) > 0)
      lower = this.bound(range.from);
    if (after !== undefined && compareKeys(this.bound(after), lower) >= 0) {
      lower = this.bound(after);
      lowerInclusive = false;
    }
    const ends = [prefixEnd(pathPrefix), range.to === undefined ? undefined : this.bound(range.to)].filter(
      (x): x is string => x !== undefined,
    );
    const upper = ends.sort(compareKeys)[0];
    const upToPath = upTo === undefined ? undefined : this.bound(upTo);
    for (;;) {
      // Keyset pagination: each batch is one primary-key range scan, no cursor held open between
      // batches (a Lambda must not keep a transaction open across S3 calls).
      const { rows } = await readQuery<{
        path: string;
        state: ObjectState;
        size: number;
        etag: string | null;
        version_id: string | null;
        updated_at: Date;
      }>(
        this.pool,
        `SELECT path, state, size::float8 AS size, etag, version_id, updated_at FROM objects
          WHERE (path > $1 OR ($2 AND path = $1))
            AND ($3::text IS NULL OR path < $3) AND ($4::text IS NULL OR path <= $4)
          ORDER BY path LIMIT $5`,
        [lower, lowerInclusive, upper ?? null, upToPath ?? null, this.batchSize],
      );
      const batch: IndexedObject[] = rows.map((r) => {
        const o: IndexedObject = {
          key: this.dataPrefix + r.path.slice(1),
          size: r.size,
          state: r.state,
          changedAt: r.updated_at,
        };
        if (r.etag !== null) o.etag = r.etag;
        if (r.version_id !== null) o.versionId = r.version_id;
        return o;
      });
      if (batch.length > 0) yield batch;
      if (rows.length < this.batchSize) return;
      lower = (rows[rows.length - 1] as { path: string }).path;
      lowerInclusive = false;
    }
  }

  async apply(heals: Heal[], context: { runId: string; cutoff: Date }): Promise<{ skipped: string[] }> {
    const changes: ObjectChange[] = [];
    const keyOf = new Map<string, string>();
    for (const h of heals) {
      const path = pathForKey(this.dataPrefix, h.key);
      if (path === undefined) continue; // the segment filters these; never index an unmappable key
      keyOf.set(path, h.key);
      if (h.op === 'put') {
        const o = h.object;
        const lastModified = o.lastModified ?? new Date();
        changes.push({
          kind: 'put',
          key: h.key,
          path,
          size: o.size,
          etag: normalizeEtag(o.etag) ?? '',
          lastModified,
          ...(o.versionId ? { versionId: o.versionId } : {}),
          ...(o.contentType ? { contentType: o.contentType } : {}),
          ...(o.metadata && Object.keys(o.metadata).length > 0 ? { metadata: o.metadata } : {}),
          ...(o.metadata?.sha256 ? { sha256: o.metadata.sha256 } : {}),
          ...(o.metadata?.['strata-date'] ? { date: o.metadata['strata-date'] } : {}),
        });
      } else {
        changes.push({ kind: h.op === 'mark-missing' ? 'missing' : 'delete', key: h.key, path });
      }
    }
    if (changes.length === 0) return { skipped: [] };
    // One transaction per chunk: the journal gives each transaction at most 4,096 entries
    // (migration 0013), and a page's heals are unbounded — on the last page of a shard every
    // indexed row past the final listed key can be missing from S3 (a deleted tree). Heals are
    // independent per path, so chunks commit separately; a retry re-applies idempotently.
    const recentAll = new Set<string>();
    const appliedPaths: string[] = [];
    const dirsAll = new Set<string>();
    const daysAll = new Set<string>();
    for (let at = 0; at < changes.length; at += APPLY_CHUNK) {
      const chunk = changes.slice(at, at + APPLY_CHUNK);
      const result = await this.applyChunk(chunk, context);
      for (const p of result.recent) recentAll.add(p);
      for (const a of result.applied.applied) appliedPaths.push(a.path);
      for (const d of result.applied.dirs) dirsAll.add(d);
      for (const d of result.applied.days) daysAll.add(d);
    }
    if (appliedPaths.length > 0 && this.onApplied) await this.onApplied(appliedPaths, [...dirsAll]);
    if (dirsAll.size > 0 || daysAll.size > 0) {
      // Same post-commit step as the indexer; best effort (uncompacted deltas still sum right).
      await compactRollups(this.pool, [...dirsAll], [...daysAll]).catch(() => false);
    }
    return { skipped: [...recentAll].map((p) => keyOf.get(p) as string) };
  }

  /** One chunk of heals (<= APPLY_CHUNK) in its own transaction. */
  private applyChunk(changes: ObjectChange[], context: { runId: string; cutoff: Date }) {
    return withTransaction(this.pool, async (client) => {
      // The in-flight guard, re-checked under row locks: a row an event changed after the cutoff
      // (possibly between our read and now) is left to the indexer. Placeholders for unseen paths
      // are inserted first, exactly as applyObjectChanges does, so a brand-new path is locked too;
      // locks are taken in path order, the order applyObjectChanges uses, so the two never deadlock.
      const paths = changes.map((c) => c.path);
      await client.query(
        `INSERT INTO objects (path, parent, name, key, state)
         SELECT u.path, '', '', u.key, 'deleted' FROM unnest($1::text[], $2::text[]) AS u(path, key)
         ON CONFLICT (path) DO NOTHING`,
        [paths, changes.map((c) => c.key)],
      );
      const { rows } = await client.query<{ path: string; recent: boolean }>(
        `SELECT path, (updated_at > $2 AND NOT (parent = '' AND sequencer IS NULL)) AS recent
           FROM objects WHERE path = ANY($1::text[]) ORDER BY path FOR UPDATE`,
        [paths, context.cutoff],
      );
      const recent = new Set(rows.filter((r) => r.recent).map((r) => r.path));
      const kept = changes.filter((c) => !recent.has(c.path));
      const applied = await applyObjectChanges(client, kept, { source: 'drift', runId: context.runId });
      return { recent, applied };
    });
  }
}

interface RunRow {
  id: string;
  scope: string;
  dry_run: boolean;
  grace_seconds: number;
  trigger: ReconcileRun['trigger'];
  status: ReconcileRun['status'];
  shard_count: number | null;
  shards_done: number;
  error: string | null;
  started_at: Date;
  finished_at: Date | null;
}

export class PgRunLedger implements RunLedger, RunRecorder {
  constructor(
    private readonly pool: Pool,
    private readonly dataPrefix: string,
  ) {}

  async create(run: {
    scope: string;
    dryRun: boolean;
    graceSeconds: number;
    trigger: ReconcileRun['trigger'];
  }): Promise<string> {
    const id = randomUUID();
    await this.pool.query(
      'INSERT INTO reconcile_runs (id, scope, dry_run, grace_seconds, trigger) VALUES ($1, $2, $3, $4, $5)',
      [id, run.scope, run.dryRun, run.graceSeconds, run.trigger],
    );
    return id;
  }

  async setShards(runId: string, total: number): Promise<void> {
    await this.pool.query('UPDATE reconcile_runs SET shard_count = $2 WHERE id = $1', [runId, total]);
  }

  async fail(runId: string, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE reconcile_runs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1 AND status = 'running'`,
      [runId, error.slice(0, 2000)],
    );
  }

  /** A scheduled run still in progress (started within `withinSeconds`), if any. */
  async running(withinSeconds: number): Promise<string | undefined> {
    const { rows } = await readQuery<{ id: string }>(
      this.pool,
      `SELECT id FROM reconcile_runs WHERE status = 'running' AND started_at > now() - make_interval(secs => $1)
        ORDER BY started_at DESC LIMIT 1`,
      [withinSeconds],
    );
    return rows[0]?.id;
  }

  async claimSegment(m: ShardMessage, leaseMs: number): Promise<SegmentClaim> {
    // Done when: the run was failed/finished/removed, this very segment was recorded (a
    // redelivery), or the shard already finished at an earlier segment (a duplicate chain).
    const { rows } = await this.pool.query<{
      running: boolean;
      recorded: boolean;
      next: ShardMessage | null;
      finished_earlier: boolean;
      next_taken: boolean;
    }>(
      `SELECT EXISTS (SELECT 1 FROM reconcile_runs WHERE id = $1 AND status = 'running') AS running,
              EXISTS (SELECT 1 FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2 AND segment = $3) AS recorded,
              (SELECT next FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2 AND segment = $3) AS next,
              EXISTS (SELECT 1 FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2
                        AND final AND segment < $3) AS finished_earlier,
              EXISTS (SELECT 1 FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2 AND segment = $3 + 1)
                OR EXISTS (SELECT 1 FROM reconcile_claims WHERE run_id = $1 AND shard_id = $2 AND segment = $3 + 1)
                AS next_taken`,
      [m.runId, m.shardId, m.segment],
    );
    const r = rows[0];
    if (!r?.running || r.finished_earlier) return { status: 'done' };
    if (r.recorded) return r.next && !r.next_taken ? { status: 'done', resend: r.next } : { status: 'done' };
    // The claim itself is one atomic statement: a new row, or taking over an expired lease. Two
    // concurrent deliveries serialize on the primary key; exactly one gets a row back.
    const { rows: claimed } = await this.pool.query<{ lease: string }>(
      `INSERT INTO reconcile_claims (run_id, shard_id, segment, lease, expires_at)
       VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))
       ON CONFLICT (run_id, shard_id, segment) DO UPDATE
         SET lease = EXCLUDED.lease, expires_at = EXCLUDED.expires_at
         WHERE reconcile_claims.expires_at < clock_timestamp()
       RETURNING lease`,
      [m.runId, m.shardId, m.segment, randomUUID(), leaseMs / 1000],
    );
    const lease = claimed[0]?.lease;
    if (lease === undefined) return { status: 'busy' };
    // The holder may have recorded the segment between our check and its lease expiring.
    const { rows: late } = await this.pool.query(
      'SELECT 1 FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2 AND segment = $3',
      [m.runId, m.shardId, m.segment],
    );
    return late.length > 0 ? { status: 'done' } : { status: 'claimed', lease };
  }

  async releaseSegment(m: ShardMessage, lease: string): Promise<void> {
    await this.pool.query(
      'DELETE FROM reconcile_claims WHERE run_id = $1 AND shard_id = $2 AND segment = $3 AND lease = $4',
      [m.runId, m.shardId, m.segment, lease],
    );
  }

  async failShard(m: ShardMessage, failure: { attempts: number; error: string }): Promise<void> {
    const error = failure.error.slice(0, 2000);
    await withTransaction(this.pool, async (client) => {
      await client.query(
        `INSERT INTO reconcile_shard_failures (run_id, shard_id, segment, attempts, error)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, shard_id) DO NOTHING`,
        [m.runId, m.shardId, m.segment, failure.attempts, error],
      );
      await client.query(
        `UPDATE reconcile_runs SET status = 'failed', finished_at = now(), error = $2
          WHERE id = $1 AND status = 'running'`,
        [
          m.runId,
          `shard ${m.shardId} failed at segment ${m.segment} after ${failure.attempts} attempts (its message goes to the reconcile DLQ): ${error}`.slice(
            0,
            2000,
          ),
        ],
      );
    });
  }

  async completeSegment(
    m: ShardMessage,
    result: { counts: ReconcileCounts; samples: Sample[]; final: boolean; next?: ShardMessage },
  ): Promise<boolean> {
    const samples = result.samples.map((s) => ({ kind: s.kind, key: s.key }));
    return withTransaction(this.pool, async (client) => {
      // The run row lock serializes segment completions of one run: shard and run completion
      // are decided on an exact view.
      const { rows: run } = await client.query<{ shard_count: number | null }>(
        'SELECT shard_count FROM reconcile_runs WHERE id = $1 FOR UPDATE',
        [m.runId],
      );
      if (!run[0]) return false;
      const cols = COUNT_FIELDS.map((f) => COLUMN[f]);
      const inserted = await client.query(
        `INSERT INTO reconcile_segments (run_id, shard_id, segment, final, samples, next, ${cols.join(', ')})
         VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, ${cols.map((_, i) => `$${i + 7}`).join(', ')})
         ON CONFLICT (run_id, shard_id, segment) DO NOTHING`,
        [
          m.runId,
          m.shardId,
          m.segment,
          result.final,
          JSON.stringify(samples),
          result.next === undefined ? null : JSON.stringify(result.next),
          ...COUNT_FIELDS.map((f) => result.counts[f]),
        ],
      );
      if (inserted.rowCount === 0) return false;
      if (!result.final) return true;
      const { rows: finals } = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM reconcile_segments WHERE run_id = $1 AND shard_id = $2 AND final',
        [m.runId, m.shardId],
      );
      if ((finals[0]?.n ?? 0) !== 1) return true; // this shard was already finished by a duplicate chain
      await client.query(
        `UPDATE reconcile_runs SET shards_done = shards_done + 1,
                status = CASE WHEN shards_done + 1 >= shard_count THEN 'succeeded' ELSE status END,
                finished_at = CASE WHEN shards_done + 1 >= shard_count THEN now() ELSE finished_at END
          WHERE id = $1 AND status = 'running'`,
        [m.runId],
      );
      return true;
    });
  }

  async get(runId: string): Promise<ReconcileRun | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(runId)) return undefined;
    const { rows } = await readQuery<RunRow>(this.pool, 'SELECT * FROM reconcile_runs WHERE id = $1', [
      runId,
    ]);
    const r = rows[0];
    if (!r) return undefined;
    const sums = COUNT_FIELDS.map((f) => `coalesce(sum(${COLUMN[f]}), 0)::float8 AS ${COLUMN[f]}`).join(', ');
    const { rows: totals } = await readQuery<Record<string, number>>(
      this.pool,
      `SELECT ${sums} FROM reconcile_segments WHERE run_id = $1`,
      [runId],
    );
    const counts = emptyCounts();
    for (const f of COUNT_FIELDS) counts[f] = Number(totals[0]?.[COLUMN[f]] ?? 0);
    const { rows: sampleRows } = await readQuery<{ kind: string; key: string }>(
      this.pool,
      `SELECT s->>'kind' AS kind, s->>'key' AS key
         FROM reconcile_segments, jsonb_array_elements(samples) AS s
        WHERE run_id = $1 ORDER BY shard_id, segment LIMIT $2`,
      [runId, MAX_REPORT_SAMPLES],
    );
    const run: ReconcileRun = {
      id: r.id,
      scope: r.scope,
      dryRun: r.dry_run,
      graceSeconds: r.grace_seconds,
      trigger: r.trigger,
      status: r.status,
      startedAt: r.started_at.toISOString(),
      shards: { total: r.shard_count ?? 0, done: r.shards_done },
      counts,
      samples: sampleRows.map((s) => ({ kind: s.kind, path: pathForKey(this.dataPrefix, s.key) ?? s.key })),
    };
    const { rows: failed } = await readQuery<{
      shard_id: number;
      segment: number;
      attempts: number;
      error: string;
    }>(
      this.pool,
      'SELECT shard_id, segment, attempts, error FROM reconcile_shard_failures WHERE run_id = $1 ORDER BY shard_id',
      [runId],
    );
    if (failed.length > 0) {
      run.failedShards = failed.map((f) => ({
        shardId: f.shard_id,
        segment: f.segment,
        attempts: f.attempts,
        error: f.error,
      }));
    }
    if (r.finished_at) run.finishedAt = r.finished_at.toISOString();
    if (r.error) run.error = r.error;
    return run;
  }
}
