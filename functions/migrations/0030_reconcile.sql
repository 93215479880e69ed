-- Reconcile runs (issue 6). A run is planned into shards; each shard is worked in one or more
-- segments (a worker re-enqueues itself when its Lambda budget runs out). Counts are stored per
-- segment, keyed by (run, shard, segment), so a redelivered SQS message can never count twice;
-- the run's totals are the sum of its segments.
CREATE TABLE reconcile_runs (
  id            uuid PRIMARY KEY,
  scope         text NOT NULL,
  dry_run       boolean NOT NULL,
  grace_seconds integer NOT NULL CHECK (grace_seconds >= 0),
  trigger       text NOT NULL CHECK (trigger IN ('schedule', 'api')),
  status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  -- NULL until the planner has enqueued the shards; a run never finishes before that.
  shard_count   integer,
  shards_done   integer NOT NULL DEFAULT 0,
  error         text,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz
);
-- "The latest runs" for operators, and the partial index keeps "is one running?" cheap.
CREATE INDEX reconcile_runs_started_idx ON reconcile_runs (started_at DESC);
CREATE INDEX reconcile_runs_running_idx ON reconcile_runs (started_at) WHERE status = 'running';

CREATE TABLE reconcile_segments (
  run_id      uuid NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
  shard_id    integer NOT NULL,
  segment     integer NOT NULL,
  final       boolean NOT NULL,
  scanned     bigint NOT NULL DEFAULT 0,
  added       bigint NOT NULL DEFAULT 0,
  missing     bigint NOT NULL DEFAULT 0,
  deleted     bigint NOT NULL DEFAULT 0,
  refreshed   bigint NOT NULL DEFAULT 0,
  unchanged   bigint NOT NULL DEFAULT 0,
  skipped_recent bigint NOT NULL DEFAULT 0,
  ignored     bigint NOT NULL DEFAULT 0,
  -- A bounded sample of what changed: [{kind, key}], for the run report and dry runs.
  samples     jsonb NOT NULL DEFAULT '[]',
  finished_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, shard_id, segment)
);
