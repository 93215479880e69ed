-- Mount-client peer registry, used when Redis is not configured (with Redis, peers live there
-- under a TTL). Rows expire by last_seen; readers filter, and heartbeats prune old rows.
CREATE TABLE peers (
  id        text PRIMARY KEY,
  address   text NOT NULL,
  last_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX peers_last_seen ON peers (last_seen);
