-- Images replicated by digest between servers (issue 16). `blob_sources`: each server's
-- data-plane URL (`http.public_url`), where peers fetch `GET /blobs/sha256/<hex>` from.
-- `blob_replicas`: per server and blob, whether it is `present`, being fetched
-- (`fetching`, `bytes` of `size` so far), `failed` (the last attempt's `error`) or was
-- found `corrupt` on disk. `fleet_secrets`: values every server must share, written once
-- by the first server (the report key, hex).
CREATE TABLE blob_sources (
    server     TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
) WITHOUT ROWID;
CREATE TABLE blob_replicas (
    server     TEXT NOT NULL,
    digest     TEXT NOT NULL,
    state      TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    error      TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (server, digest)
) WITHOUT ROWID;
CREATE INDEX blob_replicas_digest ON blob_replicas (digest);
CREATE TABLE fleet_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
