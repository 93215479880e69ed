-- Each registered peer id is bound to the token that registered it (while the registration lives),
-- so one token cannot overwrite another node's address. expires_at is the registration's own TTL.
ALTER TABLE peers ADD COLUMN token_id text;
ALTER TABLE peers ADD COLUMN expires_at timestamptz;
