-- Images replicated by digest between servers (issue 16); the same tables as
-- sqlite/0010 (see there).
CREATE TABLE blob_sources (
    server     TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE blob_replicas (
    server     TEXT NOT NULL,
    digest     TEXT NOT NULL,
    state      TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    error      TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (server, digest)
);
CREATE INDEX blob_replicas_digest ON blob_replicas (digest);
CREATE TABLE fleet_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
