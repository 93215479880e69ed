-- Reconcile segment claims and shard failures (issue 6, review fixes).
--
-- A segment is claimed before any work: one row per (run, shard, segment) with a lease. A second
-- delivery of the same SQS message (at-least-once delivery, or a duplicate continuation) finds an
-- unexpired lease and acks without work; a crashed worker's lease expires after the worker Lambda's
-- timeout — never later than the queue's visibility timeout (≥ 6× the Lambda timeout), so the
-- redelivered message can always retake it.
CREATE TABLE reconcile_claims (
  run_id     uuid NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
  shard_id   integer NOT NULL,
  segment    integer NOT NULL,
  lease      uuid NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (run_id, shard_id, segment)
);

-- The continuation a segment decided on is recorded with its counts, in the same transaction, and
-- sent after the commit (an outbox): a crash between the commit and the send is repaired by the
-- redelivered message re-sending exactly this continuation, so one shard never forks into two
-- chains with different resume points.
ALTER TABLE reconcile_segments ADD COLUMN next jsonb;

-- Shards whose message failed on its last allowed receive (it goes to the DLQ next). Such a run is
-- marked failed at once, so neither the scheduler nor `strata reconcile --wait` waits on it.
CREATE TABLE reconcile_shard_failures (
  run_id    uuid NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
  shard_id  integer NOT NULL,
  segment   integer NOT NULL,
  attempts  integer NOT NULL,
  error     text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, shard_id)
);
