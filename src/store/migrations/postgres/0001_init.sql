-- tabula state store, initial schema: the PostgreSQL DDL of sqlite/0001_init.sql.
-- Same tables, columns and meaning; only what PostgreSQL spells differently differs
-- (identity columns for the append-only ids). Queries are shared by both backends.

-- Bumped by every write that can change a boot decision; a daemon polls it to reload.
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE machines (
    name       TEXT PRIMARY KEY,
    uuid       TEXT UNIQUE,
    hostname   TEXT,
    address    TEXT UNIQUE,
    created_ms BIGINT NOT NULL
);

CREATE TABLE machine_macs (
    mac     TEXT PRIMARY KEY,
    machine TEXT NOT NULL REFERENCES machines (name) ON DELETE CASCADE
);

CREATE TABLE machine_labels (
    machine TEXT NOT NULL REFERENCES machines (name) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (machine, key)
);

CREATE TABLE image_versions (
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    manifest   TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE channels (
    name       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    version    TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (name, channel),
    FOREIGN KEY (name, version) REFERENCES image_versions (name, version)
);

-- Append-only: every move of a channel (version NULL = channel removed).
CREATE TABLE channel_history (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    TEXT NOT NULL,
    channel TEXT NOT NULL,
    version TEXT,
    at_ms   BIGINT NOT NULL
);

-- target: "mac:<mac>", "machine:<name>", "label:<k=v,...>" or "default".
CREATE TABLE pins (
    target     TEXT PRIMARY KEY,
    reference  TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Append-only: every pin change (reference NULL = pin removed).
CREATE TABLE pin_history (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target    TEXT NOT NULL,
    reference TEXT,
    at_ms     BIGINT NOT NULL
);

CREATE TABLE leases (
    mac        TEXT PRIMARY KEY,
    address    TEXT NOT NULL UNIQUE,
    state      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    hostname   TEXT,
    client_id  TEXT,
    updated_ms BIGINT NOT NULL
);

-- Append-only boot history. Ids are handed out under a transaction-scoped advisory
-- lock (see store/events.rs), so they become visible in id order and a reader paging
-- with `WHERE id > cursor ORDER BY id` never skips a row that commits late.
CREATE TABLE boot_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms    BIGINT NOT NULL,
    mac      TEXT NOT NULL,
    stage    TEXT NOT NULL,
    manifest TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX boot_events_by_mac ON boot_events (mac, id);
