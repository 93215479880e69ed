/**
 * Shard planning: split a scope (an S3 key prefix) into contiguous key ranges so several workers
 * reconcile a big bucket in parallel, each within one Lambda's time budget (a worker re-enqueues
 * itself when its budget runs out, so a shard never has to be small — only the run has to be
 * parallel enough).
 *
 * Boundaries come from a delimiter listing of the scope (its "subdirectories"): shard k covers
 * [b_k, b_{k+1}), the first starts at the scope itself (so loose files before the first boundary are
 * covered) and the last is open-ended. Ranges partition the scope exactly: no gap, no overlap.
 *
 * The planner streams common prefixes and keeps at most 2 × maxShards boundaries: when the buffer
 * fills, every other one is dropped (the stride doubles), so memory stays bounded however many
 * top-level directories a bucket has, and shards stay roughly even in directory count.
 */
import { compareKeys } from './key-order.ts';
import type { ShardRange } from './types.ts';

/**
 * Default upper bound on shards per run. 32 keeps the SQS fan-out (and concurrent Lambdas hitting
 * PostgreSQL through RDS Proxy) modest while parallelising a million-object bucket well.
 */
export const DEFAULT_MAX_SHARDS = 32;

export async function planShards(
  scopePrefix: string,
  commonPrefixes: AsyncIterable<string> | Iterable<string>,
  maxShards = DEFAULT_MAX_SHARDS,
): Promise<ShardRange[]> {
  if (maxShards < 1) throw new RangeError('maxShards must be at least 1');
  let stride = 1;
  let seen = 0;
  let boundaries: string[] = [];
  let previous: string | undefined;
  for await (const p of commonPrefixes) {
    if (previous !== undefined && compareKeys(p, previous) <= 0) {
      throw new RangeError(
        `common prefixes out of order: ${JSON.stringify(p)} after ${JSON.stringify(previous)}`,
      );
    }
    previous = p;
    // The first prefix is not a boundary: the first shard starts at the scope itself.
    if (seen++ === 0) continue;
    if ((seen - 1) % stride !== 0) continue;
    boundaries.push(p);
    if (boundaries.length >= 2 * maxShards) {
      boundaries = boundaries.filter((_, i) => i % 2 === 1);
      stride *= 2;
    }
  }
  // Thin to at most maxShards - 1 boundaries: split the n + 1 prefixes (the first is implicit) into
  // maxShards groups of about equal size.
  if (boundaries.length > maxShards - 1) {
    const n = boundaries.length;
    const keep: string[] = [];
    for (let k = 1; k < maxShards; k++) {
      const idx = Math.min(n - 1, Math.max(0, Math.floor((k * (n + 1)) / maxShards) - 1));
      const b = boundaries[idx] as string;
      if (keep[keep.length - 1] !== b) keep.push(b);
    }
    boundaries = keep;
  }
  const shards: ShardRange[] = [];
  let from: string | undefined;
  for (const b of boundaries) {
    shards.push(withBounds(scopePrefix, from, b));
    from = b;
  }
  shards.push(withBounds(scopePrefix, from, undefined));
  return shards;
}

function withBounds(prefix: string, from: string | undefined, to: string | undefined): ShardRange {
  const r: ShardRange = { prefix };
  if (from !== undefined) r.from = from;
  if (to !== undefined) r.to = to;
  return r;
}

/** True when `key` lies in the shard's range (the prefix test is the caller's listing). */
export function inRange(range: ShardRange, key: string): boolean {
  if (!key.startsWith(range.prefix)) return false;
  if (range.from !== undefined && compareKeys(key, range.from) < 0) return false;
  if (range.to !== undefined && compareKeys(key, range.to) >= 0) return false;
  return true;
}
