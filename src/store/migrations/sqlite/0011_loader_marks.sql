-- The loader ledger shared by every server on one store (issue 16): per MAC, when a DHCP
-- reply last named it a loader (`named_ms`) and when its "loader delivered" window
-- started (`since_ms`, NULL while only named), in Unix milliseconds of the writing
-- server's clock. A server that did not hand the loader out reads this before handing it
-- again, so a client whose loader came from one server and whose next DHCP exchange
-- reaches another gets its script, not the loader (no chainload loop across servers).
CREATE TABLE loader_marks (
    mac      TEXT PRIMARY KEY,
    named_ms BIGINT NOT NULL,
    since_ms BIGINT
);
CREATE INDEX loader_marks_named ON loader_marks (named_ms);
-- Boot events spooled to a server's local disk while the store was unreachable are
-- replayed in batches; each batch's transaction also records here how many of the spool's
-- events are stored, so a replay cut short (kill -9) resumes after them: none doubled.
CREATE TABLE event_spools (
    spool    TEXT PRIMARY KEY,
    replayed BIGINT NOT NULL
);
