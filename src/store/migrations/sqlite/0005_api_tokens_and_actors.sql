-- Scoped API tokens (`tabula token create|list|revoke`): only the SHA-256 of the secret
-- is kept, hex. `scope` is read, operate or admin. Times are Unix milliseconds;
-- `expires_ms` NULL = never, `revoked_ms` NULL = live. Revoked rows stay (the name is
-- not reused, so a log line naming a token always means one token).
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT
);

-- Who made each pin and channel change: the API token's name, or NULL for the local
-- CLI (which works on the store directly, as whoever can open it).
ALTER TABLE pin_history ADD COLUMN actor TEXT;
ALTER TABLE channel_history ADD COLUMN actor TEXT;
