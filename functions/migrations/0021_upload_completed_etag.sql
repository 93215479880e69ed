-- The ETag S3 returned when a multipart session completed (unquoted, as the index stores ETags).
-- settleUploads copies what the session declared (sha256, content type, metadata) onto the indexed
-- object only when the object's ETag equals this one: a same-size object written by someone else
-- must never inherit a digest it was not checked against.
ALTER TABLE upload_sessions ADD COLUMN IF NOT EXISTS completed_etag text;
