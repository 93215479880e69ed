-- Upload sessions (presigned single and multipart uploads) and per-prefix byte quotas.
-- A session holds a quota reservation (reserved_bytes) from presign until the indexer settles the
-- written object (settleUploads), or until abort/expiry releases it.
CREATE TABLE IF NOT EXISTS upload_sessions (
  id               text PRIMARY KEY,
  path             text NOT NULL,
  key              text NOT NULL,
  size             bigint NOT NULL CHECK (size > 0),
  sha256           text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  content_type     text NOT NULL,
  date             date,
  metadata         jsonb,
  mode             text NOT NULL CHECK (mode IN ('single', 'multipart')),
  s3_upload_id     text,
  part_size        bigint,
  part_count       integer,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'completed', 'aborted', 'expired')),
  token_id         text,
  idempotency_key  text,
  body_hash        text,
  -- Quota rows (by prefix) this session reserved bytes in, and how many bytes it still holds.
  quota_prefixes   text[] NOT NULL DEFAULT ARRAY[]::text[],
  reserved_bytes   bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  completed_at     timestamptz,
  settled_at       timestamptz,
  CHECK (mode = 'single' OR (s3_upload_id IS NOT NULL AND part_size > 0 AND part_count > 0))
);

-- Idempotency-Key is scoped to the token that sent it.
CREATE UNIQUE INDEX IF NOT EXISTS upload_sessions_idempotency
  ON upload_sessions (token_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- settleUploads finds the open session of a written key.
CREATE INDEX IF NOT EXISTS upload_sessions_open_by_key
  ON upload_sessions (key, created_at) WHERE reserved_bytes > 0 OR state = 'pending';
-- The cleanup job scans pending sessions by expiry.
CREATE INDEX IF NOT EXISTS upload_sessions_pending_expiry
  ON upload_sessions (expires_at) WHERE state = 'pending';

-- Byte quota per path prefix. key_prefix is the S3 key prefix of `prefix` (data prefix + path + '/'),
-- stored so settlement can match keys without knowing the deployment's data prefix.
CREATE TABLE IF NOT EXISTS upload_quotas (
  prefix          text PRIMARY KEY,
  key_prefix      text NOT NULL UNIQUE,
  limit_bytes     bigint NOT NULL CHECK (limit_bytes >= 0),
  reserved_bytes  bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
  used_bytes      bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
