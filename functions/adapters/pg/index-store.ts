/**
 * The PostgreSQL index: the one write path for object changes (used by the indexer for S3 events
 * and by reconcile for drift) and the readers behind resolve / list / by-date / changes / stats.
 * Schema: functions/migrations/0010_index.sql, 0013_index_write_path.sql, 0040_index_batch_journal.sql,
 * 0041_index_batch_arrays.sql; design: docs/index-design.md.
 */

import type { Change, ChangeOp, Entry, ObjectState } from '../../core/api-types.ts';
import { ValidationError } from '../../core/errors.ts';
import { type ObjectChange, reduceChanges } from '../../core/index-apply.ts';
import { ancestorsOf, baseName, joinPath, parentOf } from '../../core/paths.ts';
import { isTransactionRetryable, type Pool, type Queryable, withTransaction } from './pool.ts';
import { settleDeletes, settleUploads } from './uploads-store.ts';

export type { ObjectChange, PutChange, RemoveChange } from '../../core/index-apply.ts';

/** Arbitrary constant for the compaction advisory lock ("srol" in ASCII). */
const COMPACT_LOCK = 0x73726f6c;
/** SQLSTATE strata_apply_batch raises (before writing) when an upload may need settling. */
const SETTLEMENT_NEEDED = 'SR001';

export interface AppliedChange {
  seq: number;
  op: ChangeOp;
  path: string;
  key: string;
  state: ObjectState;
  etag?: string;
  size?: number;
}

export interface ApplyResult {
  applied: AppliedChange[];
  /** Changes that were older than, or identical to, what the index holds. */
  stale: number;
  /** Directories whose listing or rollup changed (every ancestor of every applied path). */
  dirs: string[];
  days: string[];
}

export interface ApplyOptions {
  source: 'event' | 'drift';
  /** Reconcile run that observed the drift (source 'drift'). */
  runId?: string;
  now?: Date;
}

interface Prepared {
  batch: ObjectChange[];
  /** strata_apply_batch's parameters (migration 0041): 19 array literals, then source, run, now, guard. */
  params: unknown[];
  /** Every ancestor directory per batch position (0-based). */
  ancestors: string[][];
  /** By-date day per batch position (null for removals). */
  day: Array<string | null>;
}

/**
 * The arguments of strata_apply_batch (migration 0041) for a batch: one change per path (newest
 * sequencer), sorted by path, with parent/name/day and the ancestor directories computed here —
 * paths are parsed only by core/paths.ts. Directories are sent once each with an (event →
 * directory) map, so a batch of siblings does not repeat their common ancestors.
 *
 * Arrays travel as literals built here (textArray / numberArray), not as JS arrays for pg to
 * serialise. Timestamps travel as epoch milliseconds: formatting 100 Dates as ISO text cost more
 * than the rest of the batch's parameters together (to_timestamp(ms / 1000) is exact to the µs).
 */
function prepare(changes: ObjectChange[], opts: ApplyOptions, guard: boolean): Prepared {
  const batch = reduceChanges(changes);
  const n = batch.length;
  const path: string[] = new Array(n);
  const parent: string[] = new Array(n);
  const name: string[] = new Array(n);
  const key: string[] = new Array(n);
  const kind: string[] = new Array(n);
  const seq: Array<string | null> = new Array(n);
  const size: number[] = new Array(n);
  const etag: Array<string | null> = new Array(n);
  const version: Array<string | null> = new Array(n);
  const mtime: Array<number | null> = new Array(n);
  const ctype: Array<string | null> = new Array(n);
  const sha: Array<string | null> = new Array(n);
  const meta: Array<Record<string, string> | null> = new Array(n);
  const day: Array<string | null> = new Array(n);
  const ancEv: number[] = [];
  const ancDir: number[] = [];
  const dirIndex = new Map<string, number>();
  const dir: string[] = [];
  const dirParent: Array<string | null> = [];
  const dirName: string[] = [];
  const ancestors: string[][] = new Array(n);
  for (let i = 0; i < n; i++) {
    const c = batch[i] as ObjectChange;
    path[i] = c.path;
    parent[i] = parentOf(c.path);
    name[i] = baseName(c.path);
    key[i] = c.key;
    kind[i] = c.kind;
    seq[i] = c.sequencer ?? null;
    if (c.kind === 'put') {
      size[i] = c.size;
      etag[i] = c.etag;
      version[i] = c.versionId ?? null;
      mtime[i] = c.lastModified.getTime();
      ctype[i] = c.contentType ?? null;
      sha[i] = c.sha256 ?? null;
      meta[i] = c.metadata ?? null;
      day[i] = c.date ?? utcDay(mtime[i] as number);
    } else {
      size[i] = 0;
      etag[i] = version[i] = ctype[i] = sha[i] = meta[i] = day[i] = null;
      mtime[i] = c.at ? c.at.getTime() : null;
    }
    const anc = ancestorsOf(c.path);
    ancestors[i] = anc;
    for (const a of anc) {
      let di = dirIndex.get(a);
      if (di === undefined) {
        di = dir.length + 1; // SQL arrays are 1-based
        dirIndex.set(a, di);
        dir.push(a);
        dirParent.push(a === '/' ? null : parentOf(a));
        dirName.push(baseName(a));
      }
      ancEv.push(i + 1);
      ancDir.push(di);
    }
  }
  const params = [
    textArray(path),
    textArray(parent),
    textArray(name),
    textArray(key),
    textArray(kind),
    textArray(seq),
    numberArray(size),
    textArray(etag),
    textArray(version),
    numberArray(mtime),
    textArray(ctype),
    textArray(sha),
    textArray(meta.map((m) => (m ? JSON.stringify(m) : null))),
    textArray(day),
    numberArray(ancEv),
    numberArray(ancDir),
    textArray(dir),
    textArray(dirParent),
    textArray(dirName),
    opts.source,
    opts.runId ?? null,
    opts.now ?? new Date(),
    guard,
  ];
  return { batch, params, ancestors, day };
}

const MS_PER_DAY = 86_400_000;
/** Recent `yyyy-mm-dd` strings by UTC day number: a batch's events share a handful of days. */
const dayNames = new Map<number, string>();

/** The UTC date of an epoch-milliseconds time (= toISOString().slice(0, 10), without formatting a Date per event). */
function utcDay(ms: number): string {
  const d = Math.floor(ms / MS_PER_DAY);
  let s = dayNames.get(d);
  if (s === undefined) {
    s = new Date(d * MS_PER_DAY).toISOString().slice(0, 10);
    if (dayNames.size >= 1024) dayNames.clear();
    dayNames.set(d, s);
  }
  return s;
}

/** A character that must be escaped inside a quoted element of an array literal. */
const ARRAY_SPECIAL = /["\\]/;
const ARRAY_SPECIAL_ALL = /["\\]/g;
/** Characters JSON.stringify escapes differently from an array literal (`\n` would read as `n`). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f]/;

/**
 * A PostgreSQL text[] literal: every element double-quoted (so empty strings, spaces, commas and
 * braces need nothing more), `"` and `\` backslash-escaped, null as unquoted NULL. Passed as a
 * plain string, pg sends it untouched; its own serialiser for JS arrays runs two regex replaces
 * per element, which profiled as the largest single item of the indexer's Node CPU.
 *
 * Fast path: JSON.stringify (native) writes exactly this literal between its brackets — it quotes
 * strings, escapes only `"` and `\` the same way, and writes null as `null`, which array_in
 * reads as NULL — unless an element holds a control character or a lone surrogate (JSON escapes
 * those as `\n` / `\uXXXX`, which an array literal would not decode). Those take the slow path.
 */
export function textArray(values: ReadonlyArray<string | null>): string {
  const all = values.join('');
  if (!CONTROL.test(all) && all.isWellFormed()) return `{${JSON.stringify(values).slice(1, -1)}}`;
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else out += `"${ARRAY_SPECIAL.test(v) ? v.replace(ARRAY_SPECIAL_ALL, '\\$&') : v}"`;
  }
  return `${out}}`;
}

/** A numeric array literal (integers, or epoch milliseconds); null as NULL. JSON writes exactly that. */
function numberArray(values: ReadonlyArray<number | null>): string {
  return `{${JSON.stringify(values).slice(1, -1)}}`;
}

/** One json per round of strata_apply_batch (migration 0041); pg parses json results with JSON.parse. */
const APPLY_SQL = `SELECT r FROM strata_apply_batch(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[],
  $10::float8[], $11::text[], $12::text[], $13::jsonb[], $14::date[], $15::int[], $16::int[], $17::text[],
  $18::text[], $19::text[], $20, $21, $22::timestamptz, $23) AS r`;

/** What one round applied: the k-th entry of `ord` (1-based input positions) has seq `seq + k`. */
interface AppliedRound {
  seq: number;
  ord: number[];
  old_state: Array<ObjectState | null>;
  old_size: Array<number | null>;
  old_day: Array<string | null>;
}

/** Builds the caller's view of what strata_apply_batch wrote; `created`/`removed` feed upload settlement. */
function summarize(p: Prepared, rounds: Array<{ r: AppliedRound }>, opts: ApplyOptions) {
  const dirs = new Set<string>();
  const days = new Set<string>();
  const created: Array<{ key: string; size: number; etag: string; replacedSize: number; restoredAt?: Date }> =
    [];
  const removed: Array<{ key: string; size: number }> = [];
  const applied: AppliedChange[] = [];
  // Rounds come in seq order (later rounds of the race loop take later ordinals).
  for (const { r } of rounds) {
    for (let k = 0; k < r.ord.length; k++) {
      const ord = r.ord[k] as number;
      const oldState = r.old_state[k] ?? null;
      const oldSize = r.old_size[k] ?? 0;
      const c = p.batch[ord - 1] as ObjectChange;
      for (const d of p.ancestors[ord - 1] ?? []) dirs.add(d);
      const oldDay = r.old_day[k];
      if (oldState === 'active' && oldDay) days.add(oldDay);
      if (c.kind === 'put') {
        days.add(p.day[ord - 1] as string);
        // An overwrite gives the replaced object's bytes back to the quotas (uploads-store settleUploads).
        created.push({
          key: c.key,
          size: c.size,
          etag: c.etag,
          replacedSize: oldState === 'active' ? oldSize : 0,
          ...(c.restored ? { restoredAt: c.lastModified } : {}),
        });
      } else if (oldState === 'active') {
        removed.push({ key: c.key, size: oldSize });
      }
      applied.push({
        seq: r.seq + k,
        op: opts.source === 'drift' ? 'drift' : c.kind === 'put' ? 'put' : 'delete',
        path: c.path,
        key: c.key,
        state: c.kind === 'put' ? 'active' : c.kind === 'missing' ? 'missing' : 'deleted',
        etag: c.kind === 'put' ? c.etag : undefined,
        size: c.kind === 'put' ? c.size : undefined,
      });
    }
  }
  const result: ApplyResult = {
    applied,
    stale: p.batch.length - applied.length,
    dirs: [...dirs],
    days: [...days],
  };
  return { result, created, removed };
}

/**
 * Applies a batch of object changes inside the caller's transaction — THE write path of the
 * index ("same code path as the indexer"): the indexer passes S3 events with their sequencers
 * (`source: 'event'`), reconcile passes observed drift without sequencers (`source: 'drift'`,
 * `runId`). The work is one call of strata_apply_batch (migrations 0013, 0040, 0041): sequencer guard,
 * object rows, rollup deltas aggregated per batch (append-only rows, no hot row), journal —
 * then upload settlement (uploads-store.ts) when an upload session or quota may be affected.
 *
 * Requires an open transaction on `client` (see withTransaction in pool.ts). Safe to retry as a
 * whole: every step is idempotent under the sequencer guard. The indexer's hot path is
 * applyObjectChangesAtomically, which needs no transaction round trips when nothing is to settle.
 */
export async function applyObjectChanges(
  client: Queryable,
  changes: ObjectChange[],
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const p = prepare(changes, opts, false);
  if (p.batch.length === 0) return { applied: [], stale: 0, dirs: [], days: [] };
  const { rows } = await client.query<{ r: AppliedRound }>(APPLY_SQL, p.params);
  const { result, created, removed } = summarize(p, rows, opts);
  if (created.length > 0 || removed.length > 0) {
    // Settlement costs several statements; most batches have no open session and no quota.
    const { rows: probe } = await client.query<{ sessions: boolean; quotas: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM upload_sessions WHERE key = ANY($1::text[])
                        AND (reserved_bytes > 0 OR state = 'pending')) AS sessions,
              EXISTS (SELECT 1 FROM upload_quotas) AS quotas`,
      [created.map((c) => c.key)],
    );
    const { sessions, quotas } = probe[0] ?? { sessions: true, quotas: true };
    if (created.length > 0 && (sessions || quotas)) await settleUploads(client, created);
    if (removed.length > 0 && quotas) await settleDeletes(client, removed);
  }
  return result;
}

/**
 * applyObjectChanges as its own atomic unit, on the pool: the indexer's hot path. The batch is
 * ONE autocommit statement (a single statement is atomic; no BEGIN/COMMIT round trips). When an
 * upload session or a quota may need settling, the function refuses before writing anything and
 * the batch is applied again inside a transaction together with the settlement. Deadlocks and
 * serialization failures (the server rolled the statement back) are retried like withTransaction.
 */
export async function applyObjectChangesAtomically(
  pool: Pool,
  changes: ObjectChange[],
  opts: ApplyOptions,
  retries = 3,
): Promise<ApplyResult> {
  const p = prepare(changes, opts, true);
  if (p.batch.length === 0) return { applied: [], stale: 0, dirs: [], days: [] };
  for (let attempt = 0; ; attempt++) {
    try {
      const { rows } = await pool.query<{ r: AppliedRound }>(APPLY_SQL, p.params);
      return summarize(p, rows, opts).result;
    } catch (err) {
      if ((err as { code?: string }).code === SETTLEMENT_NEEDED) {
        return withTransaction(pool, (c) => applyObjectChanges(c, changes, opts), { retries });
      }
      if (attempt >= retries || !isTransactionRetryable(err)) throw err;
      // Full jitter, 20 ms doubling: contention on shared paths clears in milliseconds.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * 2 ** attempt));
    }
  }
}

/**
 * Records the sequencer of an event that leaves a path's indexed object as it is (the indexer's
 * noncurrent-version delete, whose HEAD shows the indexed version is still current): only the
 * stored sequencer rises — no object fields, rollups or journal entry, so mounts keep their
 * cached entries — and an older event arriving later (S3 events are unordered) loses the guard,
 * as it would have against the applied change. A row that no longer holds that object (changed
 * concurrently), or already holds a newer sequencer, is not touched: the caller applies the
 * change through strata_apply_batch's guard instead. Returns the paths raised.
 */
export async function raiseSequencers(
  db: Queryable,
  items: Array<{ path: string; sequencer: string; etag: string; versionId?: string }>,
): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await db.query<{ path: string }>(
    `UPDATE objects o SET sequencer = i.seq, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS i(path, seq, etag, version_id)
      WHERE o.path = i.path AND o.parent <> '' AND o.state = 'active' AND o.etag = i.etag
        AND o.version_id IS NOT DISTINCT FROM i.version_id
        AND (o.sequencer IS NULL OR o.sequencer COLLATE "C" < i.seq COLLATE "C")
      RETURNING o.path`,
    [
      items.map((i) => i.path),
      items.map((i) => i.sequencer),
      items.map((i) => i.etag),
      items.map((i) => i.versionId ?? null),
    ],
  );
  return new Set(rows.map((r) => r.path));
}

/**
 * Stored sequencers and etags of some paths, read without locks: the indexer uses them to skip
 * HeadObject for events that will lose anyway. Never used for the decision itself.
 */
export async function peekObjects(
  db: Queryable,
  paths: string[],
): Promise<
  Map<string, { sequencer: string | null; etag: string | null; versionId: string | null; state: ObjectState }>
> {
  const { rows } = await db.query<{
    path: string;
    sequencer: string | null;
    etag: string | null;
    versionId: string | null;
    state: ObjectState;
  }>(
    'SELECT path, sequencer, etag, version_id AS "versionId", state FROM objects WHERE path = ANY($1::text[])',
    [paths],
  );
  return new Map(rows.map((r) => [r.path, r]));
}

/**
 * Folds the rollup delta rows of the given directories/days into one row each, when they have
 * accumulated more than `threshold` rows. Runs in its own short transaction AFTER a batch commits;
 * a transaction-level try-lock lets one compactor run at a time while others skip (work is never
 * lost: uncompacted deltas still sum correctly). Inserting batches never conflict with it: the
 * DELETE removes only rows its snapshot sees, and the INSERT writes their exact sum.
 */
export async function compactRollups(
  pool: Pool,
  dirs: string[],
  days: string[],
  threshold = 8,
): Promise<boolean> {
  if (dirs.length === 0 && days.length === 0) return true;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_xact_lock($1) AS locked',
      [COMPACT_LOCK],
    );
    if (!rows[0]?.locked) {
      await client.query('ROLLBACK');
      return false;
    }
    // A directory's rows are found through dir_rollups_children (parent, name); the root's by
    // parent IS NULL (migration 0013 dropped the index on `dir`).
    const keyed = dirs.filter((d) => d !== '/');
    await client.query(
      `WITH k AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(parent, name)),
            heavy AS (SELECT r.parent, r.name FROM dir_rollups r JOIN k ON r.parent = k.parent AND r.name = k.name
                       GROUP BY r.parent, r.name HAVING count(*) > $3),
            gone AS (DELETE FROM dir_rollups r USING heavy h WHERE r.parent = h.parent AND r.name = h.name
                     RETURNING r.dir, r.parent, r.name, r.files, r.bytes, r.mtime)
       INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
       SELECT dir, min(parent), min(name), sum(files), sum(bytes), max(mtime) FROM gone GROUP BY dir
       HAVING sum(files) <> 0 OR sum(bytes) <> 0`,
      [keyed.map((d) => parentOf(d)), keyed.map((d) => baseName(d)), threshold],
    );
    if (keyed.length < dirs.length) {
      await client.query(
        `WITH gone AS (DELETE FROM dir_rollups WHERE parent IS NULL
                         AND (SELECT count(*) FROM dir_rollups WHERE parent IS NULL) > $1
                       RETURNING files, bytes, mtime)
         INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
         SELECT '/', NULL, '', sum(files), sum(bytes), max(mtime) FROM gone HAVING count(*) > 0`,
        [threshold],
      );
    }
    await client.query(
      `WITH heavy AS (SELECT day FROM day_rollups WHERE day = ANY($1::date[]) GROUP BY day HAVING count(*) > $2),
            gone AS (DELETE FROM day_rollups WHERE day IN (SELECT day FROM heavy) RETURNING day, files, bytes)
       INSERT INTO day_rollups (day, files, bytes)
       SELECT day, sum(files), sum(bytes) FROM gone GROUP BY day HAVING sum(files) <> 0 OR sum(bytes) <> 0`,
      [days, threshold],
    );
    await client.query('COMMIT');
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Readers

export interface ObjectRecord {
  path: string;
  key: string;
  state: ObjectState;
  size: number;
  etag: string | null;
  versionId: string | null;
  lastModified: Date | null;
  contentType: string | null;
  sha256: string | null;
  metadata: Record<string, string> | null;
  day: string | null;
}

const OBJECT_COLUMNS = `SELECT path, key, state, size::float8 AS size, etag, version_id, last_modified, content_type,
            sha256, metadata, to_char(day, 'YYYY-MM-DD') AS day`;

/** getObjectForResolve's statement ($1 path, $2 its parent, $3 its name); bench/index/explain.ts shows its plan. */
export const RESOLVE_SQL = `${OBJECT_COLUMNS},
            CASE WHEN state IN ('active', 'inconsistent') THEN
              coalesce((SELECT sum(files) FROM dir_rollups r WHERE r.parent = $2 AND r.name = $3), 0) > 0
            END AS also_directory
       FROM objects WHERE path = $1 AND parent <> ''`;

interface ObjectRow {
  path: string;
  key: string;
  state: ObjectState;
  size: number;
  etag: string | null;
  version_id: string | null;
  last_modified: Date | null;
  content_type: string | null;
  sha256: string | null;
  metadata: Record<string, string> | null;
  day: string | null;
}

/** One primary-key probe. Returns tombstones too; callers decide what is visible. */
export async function getObject(db: Queryable, path: string): Promise<ObjectRecord | undefined> {
  const { rows } = await db.query<ObjectRow>(
    `${OBJECT_COLUMNS} FROM objects WHERE path = $1 AND parent <> ''`,
    [path],
  );
  return rows[0] ? objectRecord(rows[0]) : undefined;
}

/**
 * getObject for resolve, in the same one statement: whether the path is also a directory. S3 can
 * hold a key `a` and keys under `a/` at once (written straight to the bucket; uploads refuse it
 * with 409 path_conflict), and listings then show the directory only (as Mountpoint does), so a
 * mount must answer a lookup of `a` the same way even where it has no listing to look in. The
 * second probe is one dir_rollups index lookup, run only for a file that is visible.
 */
export async function getObjectForResolve(
  db: Queryable,
  path: string,
): Promise<(ObjectRecord & { alsoDirectory: boolean }) | undefined> {
  const { rows } = await db.query<ObjectRow & { also_directory: boolean | null }>(RESOLVE_SQL, [
    path,
    parentOf(path),
    baseName(path),
  ]);
  return rows[0] ? { ...objectRecord(rows[0]), alsoDirectory: rows[0].also_directory === true } : undefined;
}

function objectRecord(r: ObjectRow): ObjectRecord {
  return {
    path: r.path,
    key: r.key,
    state: r.state,
    size: r.size,
    etag: r.etag,
    versionId: r.version_id,
    lastModified: r.last_modified,
    contentType: r.content_type,
    sha256: r.sha256,
    metadata: r.metadata,
    day: r.day,
  };
}

export interface DirRecord {
  path: string;
  files: number;
  bytes: number;
  mtime: Date;
}

/** A directory exists while files exist beneath it (sum of its rollup deltas > 0). */
export async function getDir(db: Queryable, dir: string): Promise<DirRecord | undefined> {
  // Through dir_rollups_children (parent, name); the root's rows have no parent.
  const root = dir === '/';
  const { rows } = await db.query<{ files: number; bytes: number; mtime: Date }>(
    `SELECT sum(files)::float8 AS files, sum(bytes)::float8 AS bytes, max(mtime) AS mtime
       FROM dir_rollups WHERE ${root ? 'parent IS NULL' : 'parent = $1 AND name = $2'} HAVING sum(files) > 0`,
    root ? [] : [parentOf(dir), baseName(dir)],
  );
  const r = rows[0];
  return r ? { path: dir, files: r.files, bytes: r.bytes, mtime: r.mtime } : undefined;
}

/** Keyset position: the last entry's name and type (a name may be both a file and a directory). */
export interface ListCursor {
  name: string;
  type: 'dir' | 'file';
}

export function encodeCursor(c: ListCursor): string {
  return Buffer.from(JSON.stringify([c.name, c.type === 'dir' ? 'd' : 'f'])).toString('base64url');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const CURSOR_NAME_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/]/;

export function decodeCursor(raw: string): ListCursor {
  try {
    const [name, t] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [unknown, unknown];
    // The name goes to PostgreSQL as a parameter: NUL (which text cannot hold) or a "/" would be
    // a 500 or a cursor into another directory; a real cursor only ever holds one path segment.
    if (typeof name === 'string' && (t === 'd' || t === 'f') && !CURSOR_NAME_FORBIDDEN.test(name))
      return { name, type: t === 'd' ? 'dir' : 'file' };
  } catch {
    // fall through
  }
  throw new ValidationError('invalid cursor: pass back the nextCursor of the previous page unchanged');
}

/** Byte order of UTF-8, the order PostgreSQL's COLLATE "C" uses. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * SQL for a timestamptz as `Date#toISOString()` would print it (UTC, milliseconds, `Z`); NULL as
 * the epoch, like the readers' `new Date(0)` fallback.
 */
export const ISO = (expr: string) =>
  `to_char(COALESCE(${expr}, 'epoch'::timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * One page of a directory: live files and non-empty subdirectories merged in byte order of their
 * names (a directory sorts before a file of the same name). Two keyset range scans, each LIMIT n+1.
 */
export async function listDir(
  db: Queryable,
  dir: string,
  limit: number,
  cursor?: ListCursor,
): Promise<{ entries: Entry[]; next?: ListCursor }> {
  const after = cursor?.name ?? '';
  const includeSameNameFile = cursor?.type === 'dir';
  // Timestamps come back as ISO 8601 text made by PostgreSQL: parsing 1,000 timestamptz values into
  // Dates and formatting them again with toISOString was most of a page's per-row CPU.
  const [files, dirs] = await Promise.all([
    db.query<{ name: string; size: number; etag: string; sha256: string | null; mtime: string }>(
      `SELECT name, size::float8 AS size, etag, sha256, ${ISO('last_modified')} AS mtime FROM objects
        WHERE parent = $1 AND state = 'active' AND (name > $2 OR (name = $2 AND $3))
        ORDER BY name LIMIT $4`,
      [dir, after, includeSameNameFile, limit + 1],
    ),
    db.query<{ name: string; files: number; bytes: number; mtime: string }>(
      `SELECT name, sum(files)::float8 AS files, sum(bytes)::float8 AS bytes, ${ISO('max(mtime)')} AS mtime
         FROM dir_rollups
        WHERE parent = $1 AND name > $2
        GROUP BY name HAVING sum(files) > 0 ORDER BY name LIMIT $3`,
      [dir, after, limit + 1],
    ),
  ]);
  const merged: Entry[] = [];
  let i = 0;
  let j = 0;
  while (merged.length < limit + 1 && (i < files.rows.length || j < dirs.rows.length)) {
    const f = files.rows[i];
    const d = dirs.rows[j];
    if (d && (!f || compareBytes(d.name, f.name) <= 0)) {
      merged.push({
        path: joinPath(dir, d.name),
        name: d.name,
        type: 'dir',
        size: d.bytes,
        files: d.files,
        mtime: d.mtime,
      });
      j++;
    } else if (f) {
      merged.push({
        path: joinPath(dir, f.name),
        name: f.name,
        type: 'file',
        size: f.size,
        etag: f.etag,
        // Lets `strata sync` decide "unchanged" from the listing alone (no resolve per file).
        ...(f.sha256 ? { sha256: f.sha256 } : {}),
        mtime: f.mtime,
      });
      i++;
    }
  }
  if (merged.length <= limit) return { entries: merged };
  const entries = merged.slice(0, limit);
  const last = entries[entries.length - 1] as Entry;
  return { entries, next: { name: last.name, type: last.type } };
}

export async function listDates(
  db: Queryable,
): Promise<Array<{ date: string; files: number; bytes: number }>> {
  const { rows } = await db.query<{ date: string; files: number; bytes: number }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS date, sum(files)::float8 AS files, sum(bytes)::float8 AS bytes
       FROM day_rollups GROUP BY day HAVING sum(files) > 0 ORDER BY day`,
  );
  return rows;
}

/** Live files of one day in byte order of path; keyset cursor = last path. */
export async function listByDay(
  db: Queryable,
  day: string,
  limit: number,
  afterPath = '',
): Promise<{ entries: Entry[]; next?: string }> {
  const { rows } = await db.query<DayRow>(
    `SELECT path, name, size::float8 AS size, etag, last_modified FROM objects
      WHERE day = $1 AND state = 'active' AND path > $2 ORDER BY path LIMIT $3`,
    [day, afterPath, limit + 1],
  );
  return dayPage(rows, limit);
}

/** A row of a by-day listing query (selected `limit + 1` rows deep to learn whether more follow). */
export interface DayRow {
  path: string;
  name: string;
  size: number;
  etag: string;
  last_modified: Date;
}

/** Entries of a by-day page and the keyset cursor (last path) when another page follows. */
export function dayPage(rows: DayRow[], limit: number): { entries: Entry[]; next?: string } {
  const entries: Entry[] = rows.slice(0, limit).map((r) => ({
    path: r.path,
    name: r.name,
    type: 'file',
    size: r.size,
    etag: r.etag,
    mtime: (r.last_modified ?? new Date(0)).toISOString(),
  }));
  return rows.length > limit ? { entries, next: entries[entries.length - 1]?.path } : { entries };
}

/** SQL predicate: `col` lies within one of the prefixes in `$n::text[]` (see prefixParam). */
export function withinSql(col: string, n: number): string {
  return `EXISTS (SELECT 1 FROM unnest($${n}::text[]) p WHERE ${col} = p OR (${col} >= p || '/' AND ${col} < p || '/' || chr(1114111)))`;
}

/** Prefixes as withinSql expects them: normalized directory paths without a trailing slash. */
export function prefixParam(prefixes: string[]): string[] {
  return prefixes.map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));
}

/**
 * The statement behind changesSince ($1 since, $2 limit, $3 prefixes when scoped); exported so
 * bench/index/explain.ts shows the plan of exactly this text.
 */
export function changesSql(scoped: boolean): string {
  const filter = scoped ? ` AND ${withinSql('u.path', 3)}` : '';
  // Rows that can hold entries after $1: a row holds at most 4,096 entries, and rows whose last
  // entry is <= $1 are skipped before their arrays are read.
  const rowsAfter = 'b.seq > $1::bigint - 4096 AND b.seq < strata_journal_cutoff() AND b.seq + b.n - 1 > $1';
  // strata_journal_cutoff() is STABLE: evaluated once per statement, and usable as an index bound.
  return `WITH page AS (
       SELECT b.seq + u.i - 1 AS seq, u.op, u.path, u.etag, u.size::float8 AS size, b.at, b.run_id
         FROM change_batches b
        CROSS JOIN LATERAL unnest(b.op, b.path, b.etag, b.size) WITH ORDINALITY AS u(op, path, etag, size, i)
        WHERE ${rowsAfter} AND b.seq + u.i - 1 > $1${filter}
        ORDER BY b.seq, u.i LIMIT $2)
     SELECT l.latest, page.* FROM
       (${
         scoped
           ? `SELECT max(b.seq + u.i - 1) AS latest FROM change_batches b
                CROSS JOIN LATERAL unnest(b.path) WITH ORDINALITY AS u(path, i)
               WHERE ${rowsAfter} AND b.seq + u.i - 1 > $1${filter}`
           : `SELECT (SELECT b.seq + b.n - 1 FROM change_batches b WHERE b.seq < strata_journal_cutoff()
                       ORDER BY b.seq DESC LIMIT 1) AS latest`
       }) l
       LEFT JOIN page ON true
     ORDER BY page.seq`;
}

/**
 * One page of the change journal after `since`, and `latest`, from ONE statement (one snapshot):
 * both stop at strata_journal_cutoff() (migration 0013), below which no entry can still appear —
 * so a poller that moves `since` to the last entry, or jumps to `latest`, never skips one.
 * With `prefixes` (a prefix-limited token) only entries within them are returned and `latest` is
 * the highest such entry after `since`, so the token learns nothing about writes elsewhere.
 *
 * Storage (migration 0040): one change_batches row per applied batch, entry i at seq + i - 1. A
 * row holds at most 4,096 entries, so rows with entries after `since` start above since - 4096:
 * the page is an ordered range scan of the primary key from there, each row unnested in entry
 * order (Incremental Sort on the row's seq, then the ordinal), stopping at LIMIT; rows already
 * consumed (seq + n - 1 <= since) are skipped before their arrays are read. All entries of a row
 * come from one transaction, so a row is wholly below or wholly above the cut-off.
 */
export async function changesSince(
  db: Queryable,
  since: number,
  limit: number,
  prefixes?: string[],
): Promise<{ changes: Change[]; latest: number }> {
  const scoped = prefixes !== undefined;
  const { rows } = await db.query<{
    latest: string | null;
    seq: string | null;
    op: ChangeOp;
    path: string;
    etag: string | null;
    size: number | null;
    at: Date;
    run_id: string | null;
  }>(changesSql(scoped), scoped ? [since, limit, prefixParam(prefixes)] : [since, limit]);
  const latest = Number(rows[0]?.latest ?? 0);
  return {
    changes: rows
      .filter((r) => r.seq !== null)
      .map((r) => ({
        seq: Number(r.seq),
        op: r.op,
        path: r.path,
        ...(r.etag ? { etag: r.etag } : {}),
        ...(r.size !== null ? { size: r.size } : {}),
        at: r.at.toISOString(),
        ...(r.run_id ? { runId: r.run_id } : {}),
      })),
    latest: scoped ? Math.max(since, latest) : latest,
  };
}

/** Counts of non-active objects beneath a directory (the partial index keeps this small). */
export async function countInactive(
  db: Queryable,
  dir: string,
): Promise<Partial<Record<ObjectState, number>>> {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  const { rows } = await db.query<{ state: ObjectState; n: number }>(
    `SELECT state, count(*)::float8 AS n FROM objects
      WHERE state <> 'active' AND state <> 'deleted' AND parent <> '' AND path >= $1 AND path < $1 || chr(1114111)
      GROUP BY state`,
    [prefix],
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/** /v1/dates for a token limited to prefixes: computed from its own files (rollups are global). */
export async function listDatesWithin(
  db: Queryable,
  prefixes: string[],
): Promise<Array<{ date: string; files: number; bytes: number }>> {
  const { rows } = await db.query<{ date: string; files: number; bytes: number }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS date, count(*)::float8 AS files, sum(size)::float8 AS bytes
       FROM objects o
      WHERE state = 'active' AND EXISTS (
              SELECT 1 FROM unnest($1::text[]) p WHERE o.path >= p || '/' AND o.path < p || '/' || chr(1114111))
      GROUP BY day ORDER BY day`,
    [prefixes.map((p) => (p === '/' ? '' : p))],
  );
  return rows;
}
