/**
 * How one object change moves the index (pure): which change wins per path, whether it beats
 * what is stored, and the rollup deltas (files/bytes per ancestor directory and per day) it
 * causes. functions/adapters/pg/index-store.ts runs these decisions inside the batch transaction.
 *
 * Rules that must stay true:
 * - With a sequencer (S3 events), a change applies only when strictly newer than the stored
 *   sequencer; duplicates and older events change nothing. Tombstones keep their sequencer.
 * - Without a sequencer (reconcile drift), a change applies when it changes what is observable
 *   (state, etag or size); the stored sequencer is kept so later events still order correctly.
 * - A row reconcile healed has no sequencer to compare (S3 listings carry none). An event for it
 *   that names another version and happened before the healed object's S3 LastModified is older
 *   than what reconcile saw and changes nothing; an event for the healed version itself applies
 *   and so gives the row its sequencer (and the HEAD metadata the listing lacked).
 * - functions/migrations/0013_index_write_path.sql, 0040 and 0041 (strata_apply_batch) implement these rules
 *   in SQL for the database write path; this module is their reference (unit-tested here, and the
 *   indexer's property test checks the SQL against a model of them).
 * - Only `active` objects count in rollups and appear in listings.
 */
import type { ChangeOp, ObjectState } from './api-types.ts';
import { ancestorsOf, baseName, parentOf } from './paths.ts';
import { isNewer } from './sequencer.ts';

export interface PutChange {
  kind: 'put';
  key: string;
  path: string;
  size: number;
  etag: string;
  versionId?: string;
  /** Normalized (padded) S3 sequencer; absent for reconcile drift. */
  sequencer?: string;
  lastModified: Date;
  contentType?: string;
  sha256?: string;
  metadata?: Record<string, string>;
  /** `yyyy-mm-dd` for /v1/by-date; defaults to lastModified's UTC date. */
  date?: string;
  /**
   * The key's current version as HEAD found it after a versioned delete (of the current version,
   * a delete marker or a noncurrent one; indexer.ts settleVersionDeletes) — usually an older
   * version made current again, which no upload created: it settles only upload sessions opened
   * before its S3 LastModified (uploads-store settleUploads); its bytes count against quotas.
   */
  restored?: true;
}

export interface RemoveChange {
  /** `delete`: the object was removed (event or drift). `missing`: the index has it, S3 does not. */
  kind: 'delete' | 'missing';
  key: string;
  path: string;
  sequencer?: string;
  at?: Date;
  /**
   * Set when one version was deleted for good (a versioned bucket's `ObjectRemoved:Delete` or
   * `LifecycleExpiration:Delete` naming a versionId): the key may still have a current version,
   * so the indexer asks S3 which one before deciding (indexer.ts, settleVersionDeletes).
   */
  versionId?: string;
}

export type ObjectChange = PutChange | RemoveChange;

export interface StoredObject {
  path: string;
  state: ObjectState;
  size: number;
  etag: string | null;
  sequencer: string | null;
  day: string | null;
  /** Who wrote the row last ('drift' = reconcile) and the object's S3 LastModified. */
  source?: 'event' | 'drift';
  lastModified?: Date | null;
}

/** True when a sequenced event is older than the (unsequenced) version reconcile healed in. */
export function olderThanHealed(stored: StoredObject | undefined, change: ObjectChange): boolean {
  if (!stored || stored.sequencer !== null || stored.source !== 'drift' || !stored.lastModified) return false;
  const etag = change.kind === 'put' ? change.etag : null;
  const when = change.kind === 'put' ? change.lastModified : change.at;
  return etag !== stored.etag && when !== undefined && when < stored.lastModified;
}

/** The row an applied change writes. */
export interface NextObject {
  path: string;
  parent: string;
  name: string;
  key: string;
  state: ObjectState;
  size: number;
  etag: string | null;
  versionId: string | null;
  sequencer: string | null;
  lastModified: Date | null;
  contentType: string | null;
  sha256: string | null;
  metadata: Record<string, string> | null;
  day: string | null;
}

export function dayOf(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/**
 * One change per path: the newest by sequencer; among unsequenced changes the last given wins,
 * and a sequenced change beats an unsequenced one in the same batch (events are authoritative).
 * Output is sorted by path so every transaction locks rows in the same order (no deadlocks).
 */
export function reduceChanges(changes: ObjectChange[]): ObjectChange[] {
  const byPath = new Map<string, ObjectChange>();
  for (const c of changes) {
    const prior = byPath.get(c.path);
    if (!prior) byPath.set(c.path, c);
    else if (c.sequencer !== undefined) {
      if (prior.sequencer === undefined || c.sequencer > prior.sequencer) byPath.set(c.path, c);
    } else if (prior.sequencer === undefined) byPath.set(c.path, c);
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The row to write, or undefined when the change is stale or changes nothing. */
export function decide(stored: StoredObject | undefined, change: ObjectChange): NextObject | undefined {
  if (change.sequencer !== undefined) {
    if (!isNewer(change.sequencer, stored?.sequencer) || olderThanHealed(stored, change)) return undefined;
  } else if (change.kind === 'put') {
    if (stored?.state === 'active' && stored.etag === change.etag && stored.size === change.size)
      return undefined;
  } else if (change.kind === 'missing') {
    if (stored?.state !== 'active' && stored?.state !== 'inconsistent') return undefined;
  } else if (!stored || stored.state === 'deleted') return undefined;

  const sequencer = change.sequencer ?? stored?.sequencer ?? null;
  const base = {
    path: change.path,
    parent: parentOf(change.path),
    name: baseName(change.path),
    key: change.key,
  };
  if (change.kind === 'put') {
    return {
      ...base,
      state: 'active',
      size: change.size,
      etag: change.etag,
      versionId: change.versionId ?? null,
      sequencer,
      lastModified: change.lastModified,
      contentType: change.contentType ?? null,
      sha256: change.sha256 ?? null,
      metadata: change.metadata ?? null,
      day: change.date ?? dayOf(change.lastModified),
    };
  }
  return {
    ...base,
    state: change.kind === 'missing' ? 'missing' : 'deleted',
    size: 0,
    etag: null,
    versionId: null,
    sequencer,
    lastModified: change.at ?? null,
    contentType: null,
    sha256: null,
    metadata: null,
    day: null,
  };
}

export function journalOp(change: ObjectChange, source: 'event' | 'drift'): ChangeOp {
  if (source === 'drift') return 'drift';
  return change.kind === 'put' ? 'put' : 'delete';
}

export interface DirDelta {
  dir: string;
  parent: string | null;
  name: string;
  files: number;
  bytes: number;
  mtime: Date;
}

/** Aggregates rollup deltas of a whole batch: one row per touched directory and per day. */
export class RollupDeltas {
  readonly dirs = new Map<string, DirDelta>();
  readonly days = new Map<string, { files: number; bytes: number }>();

  /** Records the move from `before` to `after` of one path (either side may be absent/inactive). */
  add(path: string, before: StoredObject | undefined, after: NextObject, at: Date): void {
    const wasActive = before?.state === 'active';
    const isActive = after.state === 'active';
    const files = (isActive ? 1 : 0) - (wasActive ? 1 : 0);
    const bytes = (isActive ? after.size : 0) - (wasActive ? (before?.size ?? 0) : 0);
    for (const dir of ancestorsOf(path)) {
      const d = this.dirs.get(dir);
      if (d) {
        d.files += files;
        d.bytes += bytes;
        if (at > d.mtime) d.mtime = at;
      } else {
        this.dirs.set(dir, {
          dir,
          parent: dir === '/' ? null : parentOf(dir),
          name: baseName(dir),
          files,
          bytes,
          mtime: at,
        });
      }
    }
    if (wasActive && before?.day) this.addDay(before.day, -1, -(before.size ?? 0));
    if (isActive && after.day) this.addDay(after.day, 1, after.size);
  }

  private addDay(day: string, files: number, bytes: number): void {
    const d = this.days.get(day) ?? { files: 0, bytes: 0 };
    d.files += files;
    d.bytes += bytes;
    this.days.set(day, d);
  }
}
