-- Who changed what (issue 13: every write records its actor): the history of each
-- machine and of each image's versions, beside the pin and channel histories (0005).
-- `actor` is the API token's name, NULL for the local CLI (as in pin_history). Rows
-- stay when the machine or version is removed: the removal is the last entry.

-- kind: add | update (the API's PATCH: the whole machine replaced) | label | rm.
-- detail: what the change set, as JSON (the machine after an add or update, the label
-- edits of a label), NULL for rm.
CREATE TABLE machine_history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    machine TEXT NOT NULL,
    kind    TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    actor   TEXT,
    detail  TEXT
);
CREATE INDEX machine_history_by_machine ON machine_history (machine, id);

-- kind: publish | rm; manifest: the version's manifest digest.
CREATE TABLE version_history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL,
    version  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    manifest TEXT,
    at_ms    BIGINT NOT NULL,
    actor    TEXT
);
CREATE INDEX version_history_by_name ON version_history (name, id);
