-- Several servers on one store (issue 16). `servers`: one row per server id, its
-- heartbeat and what it serves, for `tabula server list`. `leaders`: one row per singleton
-- role ('dhcp' allocation authority, 'jobs' background jobs); a server holds a role while
-- `expires_ms` (the database's clock) is in the future, and renews it by a conditional
-- upsert that only succeeds for the holder or once the row has expired.
CREATE TABLE servers (
    id           TEXT PRIMARY KEY,
    instance     TEXT NOT NULL,
    version      TEXT NOT NULL,
    serves       TEXT NOT NULL,
    api_url      TEXT,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
) WITHOUT ROWID;
CREATE TABLE leaders (
    role       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
) WITHOUT ROWID;
