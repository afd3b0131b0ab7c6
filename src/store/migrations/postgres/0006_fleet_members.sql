-- Several servers on one store (issue 16); the same tables as sqlite/0006 (see there),
-- plus a trigger that announces every revision change on the `tabula_revision` channel
-- (delivered at commit), so other servers reload their decision snapshot at once instead
-- of at their next revision poll.
CREATE TABLE servers (
    id           TEXT PRIMARY KEY,
    instance     TEXT NOT NULL,
    version      TEXT NOT NULL,
    serves       TEXT NOT NULL,
    api_url      TEXT,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE leaders (
    role       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE FUNCTION tabula_notify_revision() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tabula_revision', NEW.value::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER revision_notify AFTER UPDATE ON revision
    FOR EACH ROW EXECUTE FUNCTION tabula_notify_revision();
