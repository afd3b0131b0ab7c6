-- Boot events link to their boot attempt (issue 14): `attempt` is the id of the attempt
-- (`boots.id`) the event belongs to, when the front end knew it (the served script, a
-- report with its per-boot token, an attributed download). NULL for events of no attempt
-- (DHCP, TFTP loaders) and for every event stored before this migration: readers fall
-- back to the attempt's MAC and time window for those.
ALTER TABLE boot_events ADD COLUMN attempt TEXT;
CREATE INDEX boot_events_by_attempt ON boot_events (attempt, id);
