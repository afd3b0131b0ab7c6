-- Closing the loop (issue 14): boot attempts, holds (automatic rollback to the last known
-- good manifest), staged rollouts, boot-once, and the fleet outbox webhooks read.
-- Times are Unix milliseconds; deadlines are compared with the store's own clock.

-- One row per boot attempt: one served script for one manifest.
CREATE TABLE boots (
    id           TEXT PRIMARY KEY,       -- the boot id (16 hex digits, the token's first part)
    machine      TEXT NOT NULL,          -- inventory name, or the MAC of an unknown machine
    mac          TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    image        TEXT NOT NULL,
    version      TEXT NOT NULL,
    source       TEXT NOT NULL,          -- pin:<target> | channel:<image>:<ch> | rollout:<name>/<step> | hold:<machine> | boot-once:<id>
    attempt      BIGINT NOT NULL,        -- n-th consecutive try of this machine on this manifest
    state        TEXT NOT NULL,          -- pending | loading | booted | failed | superseded | timed_out
    token_sha256 TEXT NOT NULL,          -- sha256 of the per-boot report token (never the token)
    started_ms   BIGINT NOT NULL,
    loaded_ms    BIGINT,
    ended_ms     BIGINT,
    deadline_ms  BIGINT NOT NULL,
    reason       TEXT
);
CREATE INDEX boots_by_machine ON boots (machine, started_ms);
CREATE INDEX boots_by_state ON boots (state, deadline_ms);

-- A machine held on its last known good manifest (NULL: none known, quarantined).
CREATE TABLE holds (
    machine      TEXT PRIMARY KEY,
    manifest     TEXT,
    image        TEXT,
    version      TEXT,
    bad_manifest TEXT NOT NULL,
    bad_image    TEXT NOT NULL,
    bad_version  TEXT NOT NULL,
    tries        BIGINT NOT NULL,
    rollout      TEXT,
    since_ms     BIGINT NOT NULL
);

-- Append-only: every hold and release.
CREATE TABLE hold_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    machine      TEXT NOT NULL,
    kind         TEXT NOT NULL,          -- hold | release
    manifest     TEXT,
    bad_manifest TEXT,
    detail       TEXT NOT NULL,
    at_ms        BIGINT NOT NULL
);

-- Fleet events (boot.booted, boot.failed, machine.rolled_back, rollout.*, boot_once.*):
-- the outbox webhooks deliver from.
CREATE TABLE fleet_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    data    TEXT NOT NULL
);

CREATE TABLE rollouts (
    name            TEXT PRIMARY KEY,
    selector        TEXT NOT NULL,
    image           TEXT NOT NULL,
    version         TEXT NOT NULL,
    manifest        TEXT NOT NULL,
    steps           TEXT NOT NULL,       -- e.g. 1,10%,50%,100%
    step            BIGINT NOT NULL,     -- current step, from 0
    state           TEXT NOT NULL,       -- draft | running | paused | completed | rolling_back | aborted
    paused          TEXT NOT NULL,       -- reasons, comma-separated (manual, budget)
    max_in_flight   BIGINT NOT NULL,
    budget          TEXT NOT NULL,       -- N or P%
    bake_ms         BIGINT NOT NULL,
    deadline_ms     BIGINT NOT NULL,
    on_budget       TEXT NOT NULL,       -- pause | rollback
    reboot          TEXT NOT NULL,       -- passive | webhook
    step_done_ms    BIGINT,              -- when the current step's last member succeeded
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE rollout_members (
    rollout     TEXT NOT NULL REFERENCES rollouts (name) ON DELETE CASCADE,
    machine     TEXT NOT NULL,
    rank        TEXT NOT NULL,           -- stable hash of (rollout, machine): the cohort order
    step        BIGINT NOT NULL,         -- the step that admits it
    state       TEXT NOT NULL,           -- waiting | admitted | succeeded | failed | skipped_pinned
    reason      TEXT,
    admitted_ms BIGINT,
    done_ms     BIGINT,
    PRIMARY KEY (rollout, machine)
);

-- Boot-once: the machine's next boot uses this reference, then it goes back.
CREATE TABLE boot_once (
    id          TEXT PRIMARY KEY,
    machine     TEXT NOT NULL,
    reference   TEXT NOT NULL,
    then_do     TEXT NOT NULL,           -- revert | local
    state       TEXT NOT NULL,           -- pending | booting | booted | failed | expired
    boot_id     TEXT,
    expires_ms  BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    ended_ms    BIGINT
);
CREATE INDEX boot_once_by_machine ON boot_once (machine, state);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,            -- patterns, comma-separated: booted,failed,machine.*,rollout.*
    secret     TEXT NOT NULL,            -- whsec_<base64>
    created_ms BIGINT NOT NULL
);

-- The delivery log and its outbox: one row per (webhook, event), retried with backoff.
CREATE TABLE webhook_deliveries (
    webhook    TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event      BIGINT NOT NULL,
    state      TEXT NOT NULL,            -- pending | delivered | failed
    attempts   BIGINT NOT NULL,
    next_ms    BIGINT NOT NULL,
    last_code  BIGINT,
    last_error TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (webhook, event)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_ms);

-- Where the webhook dispatcher has read the fleet events up to.
CREATE TABLE webhook_cursor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    event BIGINT NOT NULL
);
INSERT INTO webhook_cursor (id, event) VALUES (1, 0);
