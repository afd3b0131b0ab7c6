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
