/**
 * The PostgreSQL index: the one write path for object changes (used by the indexer for S3 events
 * and by reconcile for drift) and the readers behind resolve / list / by-date / changes / stats.
 * Schema: functions/migrations/0010_index.sql; design: docs/index-design.md.
 */

import type pg from 'pg';
import type { Change, ChangeOp, Entry, ObjectState } from '../../core/api-types.ts';
import { ValidationError } from '../../core/errors.ts';
import {
  decide,
  journalOp,
  type NextObject,
  type ObjectChange,
  RollupDeltas,
  reduceChanges,
  type StoredObject,
} from '../../core/index-apply.ts';
import { joinPath } from '../../core/paths.ts';
import type { Pool, Queryable } from './pool.ts';
import { settleDeletes, settleUploads } from './uploads-store.ts';

export type { ObjectChange, PutChange, RemoveChange } from '../../core/index-apply.ts';

/** Arbitrary constants for advisory locks ("sjrn" / "srol" in ASCII). */
const JOURNAL_LOCK = 0x736a726e;
const COMPACT_LOCK = 0x73726f6c;

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
  /**
   * COMMIT the transaction together with the journal append (one round trip, shortest possible
   * journal-lock hold). The caller must then not COMMIT itself (withTransaction: `commit: false`).
   */
  commit?: boolean;
  /** Reconcile run that observed the drift (source 'drift'). */
  runId?: string;
  now?: Date;
}

/**
 * Applies a batch of object changes inside the caller's transaction — THE write path of the
 * index ("same code path as the indexer"): the indexer passes S3 events with their sequencers
 * (`source: 'event'`), reconcile passes observed drift without sequencers (`source: 'drift'`,
 * `runId`).
 *
 * What it does, in an order that must stay:
 * 1. reduces the batch to one change per path (newest sequencer) sorted by path;
 * 2. inserts placeholder rows for unseen paths (ON CONFLICT DO NOTHING) and locks every row
 *    `FOR UPDATE` in path order — so concurrent batches touching the same paths serialize on
 *    those rows and never deadlock, and the prior state used for rollups is exact;
 * 3. decides per path (sequencer guard: stale or duplicate events change nothing, tombstones
 *    keep the sequencer) and writes the winners with one multi-row UPDATE over unnest arrays;
 * 4. inserts one rollup delta row per touched directory and day (append-only: no hot row);
 * 5. settles upload sessions and quotas (uploads-store.ts): objects that became active complete
 *    their session and count as used bytes; objects that stopped being active give bytes back;
 * 6. appends the journal LAST under a transaction-level advisory lock held until COMMIT, so
 *    sequence numbers become visible in order — the caller must COMMIT right after this returns
 *    and do nothing else in the transaction.
 *
 * Requires an open transaction on `client` (see withTransaction in pool.ts). Safe to retry as a
 * whole: every step is idempotent under the sequencer guard.
 */
export async function applyObjectChanges(
  client: Queryable,
  changes: ObjectChange[],
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const now = opts.now ?? new Date();
  // Nothing to write: with `commit`, the (empty) transaction is still closed here.
  const done = async (r: ApplyResult) => {
    if (opts.commit) await client.query('COMMIT');
    return r;
  };
  const batch = reduceChanges(changes);
  if (batch.length === 0) return done({ applied: [], stale: 0, dirs: [], days: [] });
  const paths = batch.map((c) => c.path);

  // Whether step 5 has anything to settle is asked in the same round trip as the row locks: on
  // the hot ingest path (no upload session open for these keys, no quota defined) the settle
  // statements are skipped and the journal append joins the object/rollup statement.
  let settle: { sessions: boolean; quotas: boolean } | undefined;
  const lockRows = async (ps: string[]) => {
    const wanted = new Set(ps);
    const keys = batch.filter((c) => wanted.has(c.path)).map((c) => c.key);
    const { rows } = await client.query<
      StoredObject & { fresh: boolean; has_sessions: boolean; has_quotas: boolean }
    >(
      `WITH locked AS MATERIALIZED (
         SELECT path, state, size::float8 AS size, etag, sequencer, to_char(day, 'YYYY-MM-DD') AS day,
                (parent = '' AND sequencer IS NULL) AS fresh
           FROM objects WHERE path = ANY($1::text[]) ORDER BY path FOR UPDATE),
       probe AS (
         SELECT EXISTS (SELECT 1 FROM upload_sessions
                         WHERE key = ANY($2::text[]) AND (reserved_bytes > 0 OR state = 'pending')) AS has_sessions,
                EXISTS (SELECT 1 FROM upload_quotas) AS has_quotas)
       SELECT l.*, p.has_sessions, p.has_quotas FROM probe p LEFT JOIN locked l ON true`,
      [ps, keys],
    );
    const first = rows[0];
    if (first) {
      settle = {
        sessions: first.has_sessions || (settle?.sessions ?? false),
        quotas: first.has_quotas || (settle?.quotas ?? false),
      };
    }
    return rows.filter((r) => r.path !== null);
  };
  // Existing rows: locked in path order, so concurrent batches serialize on shared paths.
  const existing = new Set<string>();
  const stored = new Map<string, StoredObject>();
  const remember = (rows: Array<StoredObject & { fresh: boolean }>) => {
    for (const r of rows) {
      existing.add(r.path);
      // A sequencer-less placeholder (left by older versions) has no prior state.
      if (!r.fresh) stored.set(r.path, r);
    }
  };
  remember(await lockRows(paths));

  const rollups = new RollupDeltas();
  const writes: Array<{ next: NextObject; change: ObjectChange }> = [];
  let stale = 0;
  const accept = (change: ObjectChange, before: StoredObject | undefined, next: NextObject) => {
    writes.push({ next, change });
    rollups.add(change.path, before, next, change.kind === 'put' ? change.lastModified : (change.at ?? now));
  };

  // Unseen paths: insert the final row directly (one heap write, not placeholder + update). A path
  // inserted concurrently by another batch conflicts; it is then locked and decided like any row.
  const fresh: Array<{ change: ObjectChange; next: NextObject }> = [];
  for (const change of batch) {
    if (existing.has(change.path)) continue;
    const next = decide(undefined, change);
    if (next) fresh.push({ change, next });
    else stale++;
  }
  const updates: ObjectChange[] = batch.filter((c) => existing.has(c.path));
  if (fresh.length > 0) {
    const f = <T>(g: (n: NextObject) => T) => fresh.map((w) => g(w.next));
    const { rows: inserted } = await client.query<{ path: string }>(
      `INSERT INTO objects (path, parent, name, key, state, size, etag, version_id, sequencer, last_modified,
                           content_type, sha256, metadata, day, source, run_id)
       SELECT u.*, $15, $16
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                     $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::jsonb[], $14::date[])
              AS u(path, parent, name, key, state, size, etag, version_id, sequencer, last_modified, content_type,
                   sha256, metadata, day)
       ON CONFLICT (path) DO NOTHING
       RETURNING path`,
      [
        f((n) => n.path),
        f((n) => n.parent),
        f((n) => n.name),
        f((n) => n.key),
        f((n) => n.state),
        f((n) => n.size),
        f((n) => n.etag),
        f((n) => n.versionId),
        f((n) => n.sequencer),
        f((n) => n.lastModified),
        f((n) => n.contentType),
        f((n) => n.sha256),
        f((n) => (n.metadata ? JSON.stringify(n.metadata) : null)),
        f((n) => n.day),
        opts.source,
        opts.runId ?? null,
      ],
    );
    const done = new Set(inserted.map((r) => r.path));
    const raced: ObjectChange[] = [];
    for (const w of fresh) {
      if (done.has(w.next.path)) accept(w.change, undefined, w.next);
      else raced.push(w.change);
    }
    if (raced.length > 0) {
      remember(await lockRows(raced.map((c) => c.path)));
      updates.push(...raced);
    }
  }

  const updated = new Set<string>();
  for (const change of updates) {
    const before = stored.get(change.path);
    const next = decide(before, change);
    if (!next) {
      stale++;
      continue;
    }
    updated.add(change.path);
    accept(change, before, next);
  }
  if (writes.length === 0) return done({ applied: [], stale, dirs: [], days: [] });

  const col = <T>(f: (n: NextObject) => T) => writes.map((w) => f(w.next));
  const upd = writes.filter((w) => updated.has(w.next.path));
  const u = <T>(f: (n: NextObject) => T) => upd.map((w) => f(w.next));
  const dirs = [...rollups.dirs.values()];
  const days = [...rollups.days.entries()].filter(([, d]) => d.files !== 0 || d.bytes !== 0);
  const created = writes.filter((w) => w.next.state === 'active');
  const removed = writes.filter(
    (w) => w.next.state !== 'active' && stored.get(w.next.path)?.state === 'active',
  );
  // Step 5 is needed only when an upload session may match a created object or a quota exists.
  const settleCreated = created.length > 0 && (settle?.sessions !== false || settle?.quotas !== false);
  const settleRemoved = removed.length > 0 && settle?.quotas !== false;
  const ops = writes.map((w) => journalOp(w.change, opts.source));
  const journalParams = [
    ops,
    col((n) => n.path),
    col((n) => n.state),
    col((n) => n.etag),
    col((n) => n.size),
    opts.runId ?? null,
    JOURNAL_LOCK,
  ];
  // The journal insert. The lock is taken in the same statement, before any row (and so any seq)
  // is produced: every output row joins the one-row `lock` CTE, which must be evaluated first.
  const journalSql = `WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock($7::bigint) AS l),
     jrn AS (
       INSERT INTO changes (op, path, state, etag, size, run_id)
       SELECT u.op, u.path, u.state, u.etag, u.size, $6
         FROM lock, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
              WITH ORDINALITY AS u(op, path, state, etag, size, ord)
        ORDER BY u.ord
       RETURNING seq)
     SELECT seq FROM jrn`;
  // One statement (data-modifying CTEs) for the object rows and both rollup delta inserts: each
  // round trip saved is throughput for the whole batch. The journal is deliberately NOT folded in:
  // its advisory lock serializes every batch from the moment it is taken until COMMIT, so it is
  // taken as late as possible — folded in, this whole statement (the batch's heaviest) would run
  // inside the serialized section; sent last with its COMMIT, the section is server-side work only.
  await client.query(
    `WITH upd AS (
       UPDATE objects AS o SET parent = u.parent, name = u.name, key = u.key, state = u.state, size = u.size,
              etag = u.etag, version_id = u.version_id, sequencer = u.sequencer, last_modified = u.last_modified,
              content_type = u.content_type, sha256 = u.sha256, metadata = u.metadata, day = u.day,
              source = $15, run_id = $16, updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                     $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::jsonb[], $14::date[])
              AS u(path, parent, name, key, state, size, etag, version_id, sequencer, last_modified, content_type,
                   sha256, metadata, day)
        WHERE o.path = u.path
        RETURNING 1),
     dir AS (
       INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
       SELECT * FROM unnest($17::text[], $18::text[], $19::text[], $20::bigint[], $21::bigint[], $22::timestamptz[])
       RETURNING 1),
     dy AS (
       INSERT INTO day_rollups (day, files, bytes)
       SELECT * FROM unnest($23::date[], $24::bigint[], $25::bigint[])
       RETURNING 1)
     SELECT (SELECT count(*) FROM upd) AS objects, (SELECT count(*) FROM dir) AS dirs, (SELECT count(*) FROM dy) AS days`,
    [
      u((n) => n.path),
      u((n) => n.parent),
      u((n) => n.name),
      u((n) => n.key),
      u((n) => n.state),
      u((n) => n.size),
      u((n) => n.etag),
      u((n) => n.versionId),
      u((n) => n.sequencer),
      u((n) => n.lastModified),
      u((n) => n.contentType),
      u((n) => n.sha256),
      u((n) => (n.metadata ? JSON.stringify(n.metadata) : null)),
      u((n) => n.day),
      opts.source,
      opts.runId ?? null,
      dirs.map((d) => d.dir),
      dirs.map((d) => d.parent),
      dirs.map((d) => d.name),
      dirs.map((d) => d.files),
      dirs.map((d) => d.bytes),
      dirs.map((d) => d.mtime),
      days.map(([day]) => day),
      days.map(([, d]) => d.files),
      days.map(([, d]) => d.bytes),
    ],
  );

  if (settleCreated) {
    await settleUploads(
      client,
      created.map((w) => {
        // An overwrite gives the replaced object's bytes back to the quotas (uploads-store settleUploads).
        const before = stored.get(w.next.path);
        const replacedSize = before?.state === 'active' ? before.size : 0;
        return { key: w.next.key, size: w.next.size, etag: w.next.etag ?? '', replacedSize };
      }),
    );
  }
  if (settleRemoved) {
    await settleDeletes(
      client,
      removed.map((w) => ({ key: w.next.key, size: stored.get(w.next.path)?.size ?? 0 })),
    );
  }

  // Journal last: the advisory lock serializes the append-to-COMMIT tail of concurrent batches so
  // that seq order equals commit order (docs/index-design.md, "Change journal").
  let seqs: Array<{ seq: string }>;
  if (opts.commit) {
    // Append and COMMIT in ONE round trip (a simple-protocol query of two statements, values
    // inlined as escaped literals): the lock is then held only for server-side work, never across
    // a client round trip — under load that round trip was most of the serialized section. If the
    // INSERT fails the server skips the COMMIT and the caller rolls back as usual.
    seqs = await journalAndCommit(client, journalParams);
  } else {
    seqs = (await client.query<{ seq: string }>(journalSql, journalParams)).rows;
  }
  const applied: AppliedChange[] = writes.map((w, i) => ({
    seq: Number(seqs[i]?.seq),
    op: ops[i] as ChangeOp,
    path: w.next.path,
    key: w.next.key,
    state: w.next.state,
    etag: w.next.etag ?? undefined,
    size: w.next.state === 'active' ? w.next.size : undefined,
  }));
  return { applied, stale, dirs: dirs.map((d) => d.dir), days: days.map(([d]) => d) };
}

/** A SQL literal for a journal value: escaped text, an integer, or NULL. */
function literal(client: Queryable, v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ValidationError(`journal value ${v} is not an integer`);
    return String(v);
  }
  return (client as pg.ClientBase).escapeLiteral(String(v));
}

function arrayLiteral(client: Queryable, values: unknown[], type: string): string {
  return `ARRAY[${values.map((v) => literal(client, v)).join(',')}]::${type}[]`;
}

/** The journal append of applyObjectChanges followed by COMMIT, in one simple-protocol round trip. */
async function journalAndCommit(client: Queryable, params: unknown[]): Promise<Array<{ seq: string }>> {
  const [ops, paths, states, etags, sizes, runId, lock] = params as [
    unknown[],
    unknown[],
    unknown[],
    unknown[],
    unknown[],
    unknown,
    number,
  ];
  const sql = `WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(${literal(client, lock)}::bigint) AS l),
     jrn AS (
       INSERT INTO changes (op, path, state, etag, size, run_id)
       SELECT u.op, u.path, u.state, u.etag, u.size, ${literal(client, runId)}
         FROM lock, unnest(${arrayLiteral(client, ops, 'text')}, ${arrayLiteral(client, paths, 'text')},
                           ${arrayLiteral(client, states, 'text')}, ${arrayLiteral(client, etags, 'text')},
                           ${arrayLiteral(client, sizes, 'bigint')})
              WITH ORDINALITY AS u(op, path, state, etag, size, ord)
        ORDER BY u.ord
       RETURNING seq)
     SELECT seq FROM jrn; COMMIT`;
  const results = (await client.query(sql)) as unknown as Array<pg.QueryResult<{ seq: string }>>;
  const first = Array.isArray(results) ? results[0] : (results as pg.QueryResult<{ seq: string }>);
  return first?.rows ?? [];
}

/**
 * Stored sequencers and etags of some paths, read without locks: the indexer uses them to skip
 * HeadObject for events that will lose anyway. Never used for the decision itself.
 */
export async function peekObjects(
  db: Queryable,
  paths: string[],
): Promise<Map<string, { sequencer: string | null; etag: string | null; state: ObjectState }>> {
  const { rows } = await db.query<{
    path: string;
    sequencer: string | null;
    etag: string | null;
    state: ObjectState;
  }>('SELECT path, sequencer, etag, state FROM objects WHERE path = ANY($1::text[])', [paths]);
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
    await client.query(
      `WITH heavy AS (SELECT dir FROM dir_rollups WHERE dir = ANY($1::text[]) GROUP BY dir HAVING count(*) > $2),
            gone AS (DELETE FROM dir_rollups WHERE dir IN (SELECT dir FROM heavy) RETURNING dir, parent, name, files, bytes, mtime)
       INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
       SELECT dir, min(parent), min(name), sum(files), sum(bytes), max(mtime) FROM gone GROUP BY dir
       HAVING sum(files) <> 0 OR sum(bytes) <> 0`,
      [dirs, threshold],
    );
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

/** One primary-key probe. Returns tombstones too; callers decide what is visible. */
export async function getObject(db: Queryable, path: string): Promise<ObjectRecord | undefined> {
  const { rows } = await db.query(
    `SELECT path, key, state, size::float8 AS size, etag, version_id, last_modified, content_type, sha256, metadata,
            to_char(day, 'YYYY-MM-DD') AS day
       FROM objects WHERE path = $1 AND parent <> ''`,
    [path],
  );
  const r = rows[0];
  if (!r) return undefined;
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
  const { rows } = await db.query<{ files: number; bytes: number; mtime: Date }>(
    `SELECT sum(files)::float8 AS files, sum(bytes)::float8 AS bytes, max(mtime) AS mtime
       FROM dir_rollups WHERE dir = $1 HAVING sum(files) > 0`,
    [dir],
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

export function decodeCursor(raw: string): ListCursor {
  try {
    const [name, t] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof name === 'string' && (t === 'd' || t === 'f'))
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
 * One page of a directory: live files and non-empty subdirectories merged in byte order of their
 * names (a directory sorts before a file of the same name). Two keyset range scans, each LIMIT n+1.
 */
/**
 * SQL for a timestamptz as `Date#toISOString()` would print it (UTC, milliseconds, `Z`); NULL as
 * the epoch, like the readers' `new Date(0)` fallback.
 */
const ISO = (expr: string) =>
  `to_char(COALESCE(${expr}, 'epoch'::timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

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

export async function changesSince(
  db: Queryable,
  since: number,
  limit: number,
): Promise<{ changes: Change[]; latest: number }> {
  const [page, latest] = await Promise.all([
    db.query<{
      seq: string;
      op: ChangeOp;
      path: string;
      etag: string | null;
      size: number | null;
      at: Date;
      run_id: string | null;
    }>(
      `SELECT seq, op, path, etag, size::float8 AS size, at, run_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [since, limit],
    ),
    db.query<{ latest: string | null }>('SELECT max(seq) AS latest FROM changes'),
  ]);
  return {
    changes: page.rows.map((r) => ({
      seq: Number(r.seq),
      op: r.op,
      path: r.path,
      ...(r.etag ? { etag: r.etag } : {}),
      ...(r.size !== null ? { size: r.size } : {}),
      at: r.at.toISOString(),
      ...(r.run_id ? { runId: r.run_id } : {}),
    })),
    latest: Number(latest.rows[0]?.latest ?? 0),
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
