-- The index write path as one server-side function, and a change journal sequenced without a
-- global lock (docs/index-design.md, "Write path" and "Change journal").
--
-- Why: the indexer spent its time in round trips (BEGIN, row locks, insert-unseen, object+rollups,
-- journal+COMMIT: 5 per batch besides the peek) and in a global advisory lock that serialized the
-- journal append AND the COMMIT of every batch. strata_apply_changes does the whole batch in one
-- call (one round trip; an autocommit statement needs no BEGIN/COMMIT), with plans cached per
-- session by PL/pgSQL (no parse/plan per batch, and no named prepared statements, which RDS Proxy
-- would pin to a connection).

-- ---------------------------------------------------------------------------------------------
-- Change journal: seq = (transaction id × 4096 + ordinal within the transaction) + offset.
--
-- A reader must never skip an entry: after it has seen seq s it must never later find an entry
-- < s. With a plain sequence, seq order is not commit order (batch A takes 5, batch B takes 6 and
-- commits first; a reader sees 6, moves on, then A commits 5). The old fix held a global lock from
-- the append to COMMIT. Instead, seq is derived from the writer's transaction id (xid8, 64-bit,
-- never wraps), and readers only return entries below a cut-off taken from their snapshot:
-- every transaction whose xid is below the snapshot's xmin has finished, and every future entry
-- comes from a transaction with xid >= xmin, so its seq is >= xmin × 4096 + offset = the cut-off.
-- Entries below the cut-off are therefore complete and final; nothing can appear behind a reader.
-- Cost: an entry becomes readable once every write transaction that started before it (any
-- table) has finished — milliseconds normally, bounded by statement_timeout and the pool's
-- idle_in_transaction_session_timeout otherwise.
--
-- Limits (checked, with a clear error): 4,096 journal entries per transaction (the indexer writes
-- <= 100, a reconcile page <= ~2,000); seq stays an exact JavaScript number (< 2^53) for 2^41
-- transactions (70 years at 1,000 write transactions/s).
ALTER TABLE changes ALTER COLUMN seq DROP IDENTITY IF EXISTS;

-- The offset keeps new sequences above every entry written before this migration.
DO $mig$
DECLARE
  v_offset bigint := greatest(0, (SELECT coalesce(max(seq), 0) FROM changes) + 1
                                 - pg_current_xact_id()::text::bigint * 4096);
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION strata_journal_offset() RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
      AS 'SELECT %s::bigint'$f$, v_offset);
END
$mig$;

-- First seq this transaction may use (ordinal 0).
CREATE FUNCTION strata_journal_base() RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT pg_current_xact_id()::text::bigint * 4096 + strata_journal_offset() $$;

-- Entries with seq below this are final for the calling statement's snapshot (see above).
CREATE FUNCTION strata_journal_cutoff() RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 4096 + strata_journal_offset() $$;

-- ---------------------------------------------------------------------------------------------
-- Rollup delta rows carry one index each. Every batch inserts about two dir_rollups rows per event
-- (a file's directory and its parent are rarely shared within a batch), and each row paid for a
-- surrogate key (a sequence call and a primary-key index) and a second index on `dir`; measured,
-- that was the most expensive part of a batch. Deltas are only ever summed or folded by
-- directory, so the surrogate key goes, and readers and compaction find a directory's rows
-- through the (parent, name) index listings already need (the root: parent IS NULL).
ALTER TABLE dir_rollups DROP COLUMN id;
DROP INDEX dir_rollups_dir;
ALTER TABLE day_rollups DROP COLUMN id;

-- ---------------------------------------------------------------------------------------------
-- One applied change, as returned to the caller.
CREATE TYPE strata_applied AS (
  ord       integer,  -- 1-based position in the input arrays
  seq       bigint,   -- journal sequence
  old_state text,     -- prior state (NULL: unseen path)
  old_size  bigint,
  old_day   text      -- yyyy-mm-dd the prior active object counted under
);

-- Applies a batch of object changes: sequencer guard, object rows, rollup deltas, journal.
-- The caller (functions/adapters/pg/index-store.ts applyObjectChanges) reduces the batch to one
-- change per path sorted by path and computes parent/name/day and each path's ancestors
-- (functions/core/paths.ts is the one place paths are parsed). Decision rules are those of
-- functions/core/index-apply.ts `decide` (the property test checks this function against a model):
-- * sequenced (S3 event): applies when strictly newer than the stored sequencer (tombstones keep it);
--   on a row reconcile healed (no sequencer), not when it names another version and happened
--   before the healed object's LastModified;
-- * unsequenced drift: a put applies unless the active row has the same etag and size; `missing`
--   applies to active/inconsistent rows; `delete` to any row not already deleted. The stored
--   sequencer is kept so later events still order correctly.
-- Concurrency: puts are first inserted ON CONFLICT DO NOTHING in path order (an unseen path needs
-- no read); the other paths' rows are then locked FOR UPDATE in path order (concurrent batches
-- serialize on shared paths; the deadlock detector and the caller's retry cover the rest). A path
-- another batch inserted after this statement's snapshot ("raced": it conflicted but is not in the
-- snapshot) is decided again by a next statement of the loop, which sees and locks it.
-- p_guard: when true (autocommit call), raise SQLSTATE 'SR001' before writing anything if an
-- upload session or quota may need settling — the caller then retries inside a transaction and
-- settles (uploads-store.ts) atomically with the batch.
CREATE FUNCTION strata_apply_changes(
  p_path text[], p_parent text[], p_name text[], p_key text[], p_kind text[], p_seq text[],
  p_size bigint[], p_etag text[], p_version text[], p_mtime timestamptz[], p_ctype text[],
  p_sha text[], p_meta jsonb[], p_day date[],
  p_anc_ev integer[], p_anc_dir integer[], p_dir text[], p_dir_parent text[], p_dir_name text[],
  p_source text, p_run text, p_now timestamptz, p_guard boolean
) RETURNS SETOF strata_applied LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_only integer[];          -- NULL: every input row; else the raced ordinals to decide again
  v_base bigint;
  v_next bigint;
  v_rows strata_applied[];
  v_raced integer[];
  v_newer boolean;
  v_rounds integer := 0;
BEGIN
  IF p_guard AND (EXISTS (SELECT 1 FROM upload_quotas)
      OR EXISTS (SELECT 1 FROM upload_sessions s
                  WHERE s.key = ANY(p_key) AND (s.reserved_bytes > 0 OR s.state = 'pending'))) THEN
    RAISE EXCEPTION 'upload settlement needed: apply this batch inside a transaction'
      USING ERRCODE = 'SR001';
  END IF;
  LOOP
    -- Next free ordinal of this transaction's journal range (an earlier call in the same
    -- transaction may have used some).
    v_base := strata_journal_base();
    SELECT coalesce(max(c.seq) + 1 - v_base, 0) INTO v_next
      FROM changes c WHERE c.seq >= v_base AND c.seq < v_base + 4096;
    IF v_next + cardinality(p_path) > 4096 THEN
      RAISE EXCEPTION 'a transaction may journal at most 4096 changes (this one needs %)',
        v_next + cardinality(p_path)
        USING ERRCODE = '54000', HINT = 'apply changes in smaller batches (one transaction each)';
    END IF;

    WITH c AS (
      SELECT u.* FROM unnest(p_path, p_parent, p_name, p_key, p_kind, p_seq, p_size, p_etag, p_version,
                             p_mtime, p_ctype, p_sha, p_meta, p_day)
             WITH ORDINALITY AS u(path, parent, name, key, kind, sequencer, size, etag, version_id, mtime,
                                  content_type, sha256, metadata, day, ord)
       WHERE v_only IS NULL OR u.ord = ANY(v_only)),
    -- On a path the index has never seen, a put always wins and so does a sequenced removal (its
    -- tombstone keeps the sequencer): decide(undefined, change). Insert those directly — one probe
    -- of the primary key, no read and lock first. Paths that exist conflict and are decided below.
    -- (The caller sends size 0 and NULL object fields for removals.)
    ins AS (
      INSERT INTO objects (path, parent, name, key, state, size, etag, version_id, sequencer, last_modified,
                           content_type, sha256, metadata, day, source, run_id)
      SELECT c.path, c.parent, c.name, c.key,
             CASE c.kind WHEN 'put' THEN 'active' WHEN 'missing' THEN 'missing' ELSE 'deleted' END,
             c.size, c.etag, c.version_id, c.sequencer, c.mtime, c.content_type, c.sha256, c.metadata, c.day,
             p_source, p_run
        FROM c WHERE c.kind = 'put' OR c.sequencer IS NOT NULL ORDER BY c.path
      ON CONFLICT (path) DO NOTHING
      RETURNING objects.path),
    -- Every other path: its row as this statement's snapshot sees it, locked in path order.
    locked AS MATERIALIZED (
      SELECT o.path, o.state, o.size, o.etag, o.sequencer, o.day, o.source, o.last_modified,
             (o.parent = '' AND o.sequencer IS NULL) AS fresh,  -- placeholder: no prior state
             -- last written by a transaction that started after ours (see v_newer below)
             (age(o.xmin) < 0) AS newer
        FROM objects o
       WHERE o.path = ANY (ARRAY(SELECT c.path FROM c WHERE c.path NOT IN (SELECT i.path FROM ins i)))
       ORDER BY o.path FOR UPDATE),
    d AS MATERIALIZED (
      SELECT c.*, (i.path IS NOT NULL) AS inserted, (l.path IS NOT NULL) AS present,
             CASE WHEN l.fresh THEN NULL ELSE l.state END AS s_state,
             CASE WHEN l.fresh THEN NULL ELSE l.size END AS s_size,
             CASE WHEN l.fresh THEN NULL ELSE l.etag END AS s_etag,
             CASE WHEN l.fresh THEN NULL ELSE l.sequencer END AS s_seq,
             CASE WHEN l.fresh THEN NULL ELSE l.day END AS s_day,
             CASE WHEN l.fresh THEN NULL ELSE l.source END AS s_source,
             CASE WHEN l.fresh THEN NULL ELSE l.last_modified END AS s_lm,
             coalesce(l.newer, false) AS s_newer
        FROM c LEFT JOIN ins i ON i.path = c.path LEFT JOIN locked l ON l.path = c.path),
    -- The decision (index-apply.ts decide); inserted rows have no prior state, so they win.
    w0 AS MATERIALIZED (
      SELECT d.*,
             CASE WHEN d.sequencer IS NOT NULL THEN
                    (d.s_seq IS NULL OR d.sequencer COLLATE "C" > d.s_seq)
                    -- a row reconcile healed (no sequencer): an event for another version that
                    -- happened before the healed object's LastModified is older (olderThanHealed)
                    AND NOT coalesce(d.s_seq IS NULL AND d.s_source = 'drift' AND d.etag IS DISTINCT FROM d.s_etag
                                     AND d.mtime < d.s_lm, false)
                  WHEN d.kind = 'put' THEN NOT coalesce(d.s_state = 'active' AND d.s_etag = d.etag
                                                        AND d.s_size = d.size, false)
                  WHEN d.kind = 'missing' THEN coalesce(d.s_state IN ('active', 'inconsistent'), false)
                  ELSE coalesce(d.s_state <> 'deleted', false) END AS win,
             CASE d.kind WHEN 'put' THEN 'active' WHEN 'missing' THEN 'missing' ELSE 'deleted' END AS n_state,
             coalesce(d.sequencer, d.s_seq) AS n_seq
        FROM d),
    upd AS (
      UPDATE objects AS o SET parent = w0.parent, name = w0.name, key = w0.key, state = w0.n_state,
             size = w0.size, etag = w0.etag, version_id = w0.version_id, sequencer = w0.n_seq,
             last_modified = w0.mtime, content_type = w0.content_type, sha256 = w0.sha256,
             metadata = w0.metadata, day = w0.day, source = p_source, run_id = p_run, updated_at = now()
        FROM w0 WHERE w0.win AND w0.present AND o.path = w0.path
      RETURNING o.path),
    w AS MATERIALIZED (
      SELECT w0.*,
             (CASE WHEN w0.n_state = 'active' THEN 1 ELSE 0 END
               - CASE WHEN w0.s_state = 'active' THEN 1 ELSE 0 END) AS df,
             (CASE WHEN w0.n_state = 'active' THEN w0.size ELSE 0 END
               - CASE WHEN w0.s_state = 'active' THEN w0.s_size ELSE 0 END) AS db,
             coalesce(w0.mtime, p_now) AS at
        FROM w0 WHERE w0.inserted OR w0.path IN (SELECT u.path FROM upd u)),
    dir AS (
      INSERT INTO dir_rollups (dir, parent, name, files, bytes, mtime)
      SELECT p_dir[a.di], p_dir_parent[a.di], p_dir_name[a.di], sum(w.df), sum(w.db), max(w.at)
        FROM w JOIN unnest(p_anc_ev, p_anc_dir) AS a(ev, di) ON a.ev = w.ord
       GROUP BY a.di),
    dy AS (
      INSERT INTO day_rollups (day, files, bytes)
      SELECT x.day, sum(x.f), sum(x.b) FROM (
          SELECT w.s_day AS day, -1 AS f, -w.s_size AS b FROM w WHERE w.s_state = 'active' AND w.s_day IS NOT NULL
          UNION ALL
          SELECT w.day, 1, w.size FROM w WHERE w.n_state = 'active' AND w.day IS NOT NULL) x
       GROUP BY x.day HAVING sum(x.f) <> 0 OR sum(x.b) <> 0),
    -- seq = this transaction's base + next free ordinal + input position: unique and increasing in
    -- input order without a window sort (gaps are allowed; readers only need order).
    jrn AS (
      INSERT INTO changes (seq, op, path, state, etag, size, run_id)
      SELECT v_base + v_next + w.ord - 1,
             CASE WHEN p_source = 'drift' THEN 'drift' WHEN w.kind = 'put' THEN 'put' ELSE 'delete' END,
             w.path, w.n_state, CASE WHEN w.n_state = 'active' THEN w.etag END,
             CASE WHEN w.n_state = 'active' THEN w.size ELSE 0 END, p_run
        FROM w)
    SELECT (SELECT array_agg(ROW(w.ord, v_base + v_next + w.ord - 1, w.s_state, w.s_size,
                                 to_char(w.s_day, 'YYYY-MM-DD'))::strata_applied) FROM w),
           -- Raced: a path another batch inserted after this statement's snapshot was taken.
           (SELECT array_agg(w0.ord) FROM w0 WHERE w0.win AND NOT w0.present AND NOT w0.inserted),
           (SELECT bool_or(w0.s_newer) FROM w0 WHERE w0.win AND w0.present)
      INTO v_rows, v_raced, v_newer;

    -- Per-path journal order must be apply order. Our seq comes from our xid, taken before the row
    -- locks; a transaction with a NEWER xid may have updated a row and committed while we waited
    -- for it, so our later change of that row would sort BEFORE its entry (a replaying reader ends
    -- on the stale version). Rare; fail as a serialization failure so the caller retries the batch
    -- in a new transaction, whose xid (and seq) is then above that writer's.
    IF v_newer THEN
      RAISE EXCEPTION 'strata_apply_changes: a row was changed by a newer transaction while this one waited'
        USING ERRCODE = '40001';
    END IF;

    IF v_rows IS NOT NULL THEN
      RETURN QUERY SELECT * FROM unnest(v_rows);
    END IF;
    EXIT WHEN v_raced IS NULL;
    -- Each round only retries paths that were committed by others meanwhile, which the next
    -- snapshot sees; a path that keeps racing means something else is wrong — fail loudly.
    v_rounds := v_rounds + 1;
    IF v_rounds > 16 THEN
      RAISE EXCEPTION 'strata_apply_changes: % paths still racing after % rounds', cardinality(v_raced), v_rounds
        USING ERRCODE = '40001';  -- serialization failure: the caller retries the whole batch
    END IF;
    -- The raced paths exist now (their inserter committed): decide them again against those rows.
    v_only := v_raced;
  END LOOP;
END
$fn$;
