-- The Strata index (docs/index-design.md). Paths and names sort in byte order (COLLATE "C") so
-- keyset pagination is stable and independent of the server's locale.

-- One row per path ever seen: the current object, or a tombstone that keeps the sequencer so an
-- older event delivered late changes nothing.
CREATE TABLE objects (
  path          text COLLATE "C" PRIMARY KEY,        -- resolve = one probe of this index
  parent        text COLLATE "C" NOT NULL,
  name          text COLLATE "C" NOT NULL,
  key           text NOT NULL,
  state         text NOT NULL CHECK (state IN ('active', 'deleted', 'missing', 'inconsistent')),
  size          bigint NOT NULL DEFAULT 0,
  etag          text,
  version_id    text,
  -- S3 sequencer, left-padded to a fixed width so text comparison orders events of one key.
  sequencer     text COLLATE "C",
  last_modified timestamptz,
  content_type  text,
  sha256        text,
  metadata      jsonb,
  -- The day the file is listed under in /v1/by-date.
  day           date,
  source        text NOT NULL DEFAULT 'event' CHECK (source IN ('event', 'drift')),
  run_id        text,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Directory listing: keyset over (parent, name) of live files; INCLUDE keeps it index-only for
-- the common columns of a listing entry.
CREATE INDEX objects_list ON objects (parent, name) INCLUDE (size, etag, last_modified)
  WHERE state = 'active';
-- By-date listing: keyset over (day, path).
CREATE INDEX objects_by_day ON objects (day, path) WHERE state = 'active';
-- Non-active objects are rare; stats by state and reconcile scans find them here.
CREATE INDEX objects_not_active ON objects (path, state) WHERE state <> 'active';

-- Directory rollups as append-only deltas: each indexer batch INSERTs one row per touched
-- directory (files/bytes added or removed beneath it, and the newest mtime). No batch ever
-- updates a shared row, so there is no hot row (not even `/`). A directory exists while the sum
-- of its files is > 0 (directories are implicit). Compaction folds a directory's rows into one
-- (see index-store.ts), so readers sum a handful of rows.
CREATE TABLE dir_rollups (
  id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dir    text COLLATE "C" NOT NULL,
  parent text COLLATE "C",                            -- NULL for the root
  name   text COLLATE "C" NOT NULL,
  files  bigint NOT NULL,
  bytes  bigint NOT NULL,
  mtime  timestamptz NOT NULL
);
CREATE INDEX dir_rollups_children ON dir_rollups (parent, name) INCLUDE (files, bytes, mtime);
CREATE INDEX dir_rollups_dir ON dir_rollups (dir) INCLUDE (files, bytes, mtime);

-- Per-day rollups for /v1/dates, same delta scheme.
CREATE TABLE day_rollups (
  id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  day   date NOT NULL,
  files bigint NOT NULL,
  bytes bigint NOT NULL
);
CREATE INDEX day_rollups_day ON day_rollups (day) INCLUDE (files, bytes);

-- Append-only change journal. seq is assigned under a transaction-level advisory lock held from
-- the append to COMMIT, so sequence numbers become visible in order and a poller reading
-- `seq > since` never skips an entry (docs/index-design.md, "Change journal").
CREATE TABLE changes (
  seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  op     text NOT NULL CHECK (op IN ('put', 'delete', 'drift')),
  path   text COLLATE "C" NOT NULL,
  state  text NOT NULL,
  etag   text,
  size   bigint,
  at     timestamptz NOT NULL DEFAULT now(),
  run_id text
);
