-- Boot events: the requester's address (`peer`) and the front end that saw the event
-- (`via`: dhcp, tftp or http) become columns. Before, each front end spliced them into
-- the free-form detail JSON under three spellings ("by":"dhcp", "via":"http",
-- "via":"tftp"); the detail is now one typed schema per stage (`boot::EventDetail`).
ALTER TABLE boot_events ADD COLUMN peer TEXT;
ALTER TABLE boot_events ADD COLUMN via TEXT NOT NULL DEFAULT 'http';

-- Old rows: move peer/by/via out of the JSON into the columns. Every front end's events
-- are recognisable by stage, except failures and ignores, which said who they were.
UPDATE boot_events SET
    peer = json_extract(detail, '$.peer'),
    via = CASE
        WHEN stage IN ('dhcp-offer', 'dhcp-ack') THEN 'dhcp'
        WHEN json_extract(detail, '$.by') = 'dhcp' THEN 'dhcp'
        WHEN json_extract(detail, '$.via') IN ('dhcp', 'tftp', 'http')
            THEN json_extract(detail, '$.via')
        WHEN stage = 'loader-sent' THEN 'tftp'
        ELSE 'http'
    END,
    detail = json_remove(detail, '$.peer', '$.by', '$.via')
WHERE json_valid(detail) AND json_type(detail) = 'object';

-- DHCP events said "script" and "loader" as two booleans; now one "boot" field naming
-- the kind of boot file (script, tftp-loader or http-loader; null without a file).
UPDATE boot_events SET
    detail = json_remove(
        json_set(detail, '$.boot', CASE
            WHEN json_extract(detail, '$.script') THEN 'script'
            WHEN json_extract(detail, '$.loader') AND json_extract(detail, '$.file') LIKE 'http%'
                THEN 'http-loader'
            WHEN json_extract(detail, '$.loader') THEN 'tftp-loader'
        END),
        '$.script', '$.loader')
WHERE stage IN ('dhcp-offer', 'dhcp-ack')
    AND json_valid(detail) AND json_type(detail) = 'object';
