-- An aborted single-PUT session keeps its quota reservation until its presigned URL expires (S3
-- cannot revoke the URL, so the object may still arrive); the cleanup job then releases it.
-- This partial index keeps that scan proportional to such sessions, not to all sessions ever made.
CREATE INDEX IF NOT EXISTS upload_sessions_aborted_reserved
  ON upload_sessions (expires_at) WHERE state = 'aborted' AND reserved_bytes > 0;
