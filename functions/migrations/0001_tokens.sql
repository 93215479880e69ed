-- API tokens. The secret is shown once at creation and stored only as a SHA-256 hash.
CREATE TABLE IF NOT EXISTS tokens (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  secret_hash bytea NOT NULL,
  scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read','write','admin']::text[] AND cardinality(scopes) > 0),
  -- Path prefixes the token is limited to ('/' = everything). A token never sees outside them.
  prefixes    text[] NOT NULL DEFAULT ARRAY['/']::text[],
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz,
  last_used_at timestamptz
);
