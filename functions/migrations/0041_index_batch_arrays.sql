-- The batch's arguments as array literals again, built by index-store.ts (docs/index-design.md,
-- "Write path"). Measured with auto_explain inside the function (bench/index/profile.ts
-- --explain): json_to_record took ~0.6 ms of a batch's ~3 ms — it parses each array of the json
-- twice and runs every element through its input function from JSON text — while array_in reads
-- a text[] literal in one pass. Node builds the literals itself (a quote per element, escaping
-- only the rare element with `"` or `\`), which costs about what JSON.stringify did and far
-- less than pg's generic array serialiser (a regex replace per element), the reason 0040 moved
-- to JSON. Same rules, locks, journal and result as 0040's strata_apply_batch(json, ...).
DROP FUNCTION strata_apply_batch(json, text, text, timestamptz, boolean);

CREATE FUNCTION strata_apply_batch(
  p_path text[], p_parent text[], p_name text[], p_key text[], p_kind text[], p_seq text[],
  p_size bigint[], p_etag text[], p_version text[], p_mtime float8[], p_ctype text[],
  p_sha text[], p_meta jsonb[], p_day date[],
  p_anc_ev integer[], p_anc_dir integer[], p_dir text[], p_dir_parent text[], p_dir_name text[],
  p_source text, p_run text, p_now timestamptz, p_guard boolean
) RETURNS SETOF json LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_only integer[];          -- NULL: every input row; else the raced ordinals to decide again
  v_base bigint;
  v_next bigint;
  v_out json;
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
    -- Next free ordinal of this transaction's journal range (an earlier call or round in the same
    -- transaction may have used some).
    v_base := strata_journal_base();
    SELECT coalesce(max(b.seq + b.n) - v_base, 0) INTO v_next
      FROM change_batches b WHERE b.seq >= v_base AND b.seq < v_base + 4096;
    IF v_next + cardinality(p_path) > 4096 THEN
      RAISE EXCEPTION 'a transaction may journal at most 4096 changes (this one needs %)',
        v_next + cardinality(p_path)
        USING ERRCODE = '54000', HINT = 'apply changes in smaller batches (one transaction each)';
    END IF;

    WITH c AS (
      SELECT u.path, u.parent, u.name, u.key, u.kind, u.sequencer, u.size, u.etag, u.version_id,
             to_timestamp(u.mtime / 1000) AS mtime, u.content_type, u.sha256, u.metadata, u.day, u.ord
        FROM unnest(p_path, p_parent, p_name, p_key, p_kind, p_seq, p_size, p_etag, p_version,
                             p_mtime, p_ctype, p_sha, p_meta, p_day)
             WITH ORDINALITY AS u(path, parent, name, key, kind, sequencer, size, etag, version_id, mtime,
                                  content_type, sha256, metadata, day, ord)
       WHERE v_only IS NULL OR u.ord = ANY(v_only)),
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
    locked AS MATERIALIZED (
      SELECT o.path, o.state, o.size, o.etag, o.sequencer, o.day, o.source, o.last_modified,
             (o.parent = '' AND o.sequencer IS NULL) AS fresh,  -- placeholder: no prior state
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
    w0 AS MATERIALIZED (
      SELECT d.*,
             CASE WHEN d.sequencer IS NOT NULL THEN
                    (d.s_seq IS NULL OR d.sequencer COLLATE "C" > d.s_seq)
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
             coalesce(w0.mtime, p_now) AS at,
             CASE WHEN p_source = 'drift' THEN 'drift' WHEN w0.kind = 'put' THEN 'put' ELSE 'delete' END AS op
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
    -- The round's journal row: entries in input order, the k-th at seq v_base + v_next + k - 1.
    jrn AS (
      INSERT INTO change_batches (seq, n, op, path, state, etag, size, run_id)
      SELECT v_base + v_next, count(*), array_agg(w.op ORDER BY w.ord), array_agg(w.path ORDER BY w.ord),
             array_agg(w.n_state ORDER BY w.ord),
             array_agg(CASE WHEN w.n_state = 'active' THEN w.etag END ORDER BY w.ord),
             array_agg(CASE WHEN w.n_state = 'active' THEN w.size ELSE 0 END ORDER BY w.ord), p_run
        FROM w HAVING count(*) > 0)
    SELECT (SELECT json_build_object('seq', v_base + v_next, 'ord', array_agg(w.ord ORDER BY w.ord),
                                     'old_state', array_agg(w.s_state ORDER BY w.ord),
                                     'old_size', array_agg(w.s_size ORDER BY w.ord),
                                     'old_day', array_agg(w.s_day ORDER BY w.ord))
              FROM w HAVING count(*) > 0),
           (SELECT array_agg(w0.ord) FROM w0 WHERE w0.win AND NOT w0.present AND NOT w0.inserted),
           (SELECT bool_or(w0.s_newer) FROM w0 WHERE w0.win AND w0.present)
      INTO v_out, v_raced, v_newer;

    -- Per-path journal order must be apply order (see 0013): fail as a serialization failure so
    -- the caller retries the batch in a new transaction, whose xid (and seq) is above that writer's.
    IF v_newer THEN
      RAISE EXCEPTION 'strata_apply_batch: a row was changed by a newer transaction while this one waited'
        USING ERRCODE = '40001';
    END IF;

    IF v_out IS NOT NULL THEN
      RETURN NEXT v_out;
    END IF;
    EXIT WHEN v_raced IS NULL;
    v_rounds := v_rounds + 1;
    IF v_rounds > 16 THEN
      RAISE EXCEPTION 'strata_apply_batch: % paths still racing after % rounds', cardinality(v_raced), v_rounds
        USING ERRCODE = '40001';  -- serialization failure: the caller retries the whole batch
    END IF;
    v_only := v_raced;
  END LOOP;
END
$fn$;
