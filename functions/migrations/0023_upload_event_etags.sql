-- ETags of put events indexed (or superseded) while a multipart session of the same key and size
-- was still pending, newest last. An event settles a multipart session only once that session's
-- /complete recorded the event's ETag; when the event comes first (it can beat /complete's own
-- update, or be superseded before it), /complete finds its ETag here and settles then. Matching a
-- pending multipart session by key and size instead let an upload's event settle an older
-- abandoned session of the same path, which was then never expired nor aborted in S3.
ALTER TABLE upload_sessions ADD COLUMN IF NOT EXISTS event_etags text[] NOT NULL DEFAULT ARRAY[]::text[];
