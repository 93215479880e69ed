/**
 * Starting a reconcile run: validate the scope, record the run, split the scope into shards and
 * enqueue one message per shard. Used by the scheduled planner Lambda and by POST /v1/reconcile.
 */
import { ValidationError } from '../errors.ts';
import { normalizePath, normalizePrefix } from '../paths.ts';
import type { ReconcileListing, ShardQueue } from './ports.ts';
import { DEFAULT_MAX_SHARDS, planShards } from './shards.ts';
import type { ReconcileRun, ShardMessage, ShardRange } from './types.ts';

/**
 * Default grace: 15 minutes. S3 event delivery through SQS is normally seconds, but a backed-up
 * ingest queue (retries, a DLQ redrive) can hold an event for minutes; a row touched this recently
 * is left to the indexer. Import of a bucket nobody writes to can use 0.
 */
export const DEFAULT_GRACE_SECONDS = 900;
/** A day: a longer grace would let drift linger for more than one daily run. */
export const MAX_GRACE_SECONDS = 86_400;

export interface RunRequest {
  /** Strata directory path; `/` is the whole data prefix. */
  scope?: string;
  dryRun?: boolean;
  graceSeconds?: number;
  trigger: ReconcileRun['trigger'];
}

export interface RunRecorder {
  create(run: {
    scope: string;
    dryRun: boolean;
    graceSeconds: number;
    trigger: ReconcileRun['trigger'];
  }): Promise<string>;
  setShards(runId: string, total: number): Promise<void>;
  fail(runId: string, error: string): Promise<void>;
  get(runId: string): Promise<ReconcileRun | undefined>;
}

export interface PlanDeps {
  listing: ReconcileListing;
  runs: RunRecorder;
  queue: ShardQueue;
}

export function normalizeRunRequest(request: RunRequest): Required<Omit<RunRequest, 'trigger'>> {
  const scope = normalizePath(request.scope ?? '/', { directory: true });
  const graceSeconds = request.graceSeconds ?? DEFAULT_GRACE_SECONDS;
  if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
    throw new ValidationError(
      `graceSeconds must be a whole number from 0 to ${MAX_GRACE_SECONDS}; got ${JSON.stringify(request.graceSeconds)}`,
    );
  }
  return { scope, dryRun: request.dryRun ?? false, graceSeconds };
}

/** The S3 key prefix a scope covers: `data/` for `/`, `data/a/b/` for `/a/b`. */
export function scopeKeyPrefix(dataPrefix: string, scope: string): string {
  const p = normalizePrefix(dataPrefix);
  return scope === '/' ? p : `${p}${scope.slice(1)}/`;
}

/**
 * Levels the planner descends at most to find enough boundaries. Real buckets nest by tenant /
 * dataset / date; three levels finds parallelism in all of those without a planner listing that
 * itself takes long.
 */
export const MAX_PLAN_DEPTH = 3;

/**
 * Shards for a scope. One delimiter level often has too few subdirectories to parallelise (a
 * bucket with everything under `archive/`), so the planner descends while a level has fewer than
 * maxShards prefixes. Sub-prefixes listed in order of their sorted parents are themselves sorted,
 * and any sorted set of cut points partitions the scope, so descending never loses a key. The
 * level that reaches maxShards is streamed into planShards (bounded memory), not held.
 */
export async function planScope(
  listing: ReconcileListing,
  prefix: string,
  maxShards: number,
): Promise<ShardRange[]> {
  let level: string[] = [prefix];
  let cuts: string[] = [];
  for (let depth = 0; depth < MAX_PLAN_DEPTH; depth++) {
    const next: string[] = [];
    let enough = false;
    outer: for (const p of level) {
      for await (const cp of listing.commonPrefixes(p)) {
        next.push(cp);
        if (next.length >= maxShards) {
          enough = true;
          break outer;
        }
      }
    }
    if (enough) {
      const parents = level;
      async function* all(): AsyncGenerator<string> {
        for (const p of parents) yield* listing.commonPrefixes(p);
      }
      return planShards(prefix, all(), maxShards);
    }
    if (next.length === 0) break;
    level = next;
    cuts = next;
  }
  return planShards(prefix, cuts, maxShards);
}

export async function startRun(
  request: RunRequest,
  deps: PlanDeps,
  options: { dataPrefix: string; maxShards?: number },
): Promise<{ runId: string; shards: ShardRange[] }> {
  const { scope, dryRun, graceSeconds } = normalizeRunRequest(request);
  const prefix = scopeKeyPrefix(options.dataPrefix, scope);
  const runId = await deps.runs.create({ scope, dryRun, graceSeconds, trigger: request.trigger });
  try {
    const shards = await planScope(deps.listing, prefix, options.maxShards ?? DEFAULT_MAX_SHARDS);
    // The total is recorded before any message is sent, so a fast worker cannot finish the run early.
    await deps.runs.setShards(runId, shards.length);
    const messages: ShardMessage[] = shards.map((range, shardId) => ({
      v: 1,
      runId,
      shardId,
      segment: 0,
      range,
      dryRun,
      graceSeconds,
    }));
    await deps.queue.send(messages);
    return { runId, shards };
  } catch (err) {
    await deps.runs.fail(runId, `planning failed: ${(err as Error).message}`);
    throw err;
  }
}
