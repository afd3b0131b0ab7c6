-- Boot events: the requester's address (`peer`) and the front end that saw the event
-- (`via`: dhcp, tftp or http) become columns instead of keys inside the detail JSON;
-- the detail is one typed schema per stage (`boot::EventDetail`). Same change as
-- sqlite/0004. No rows to rewrite: PostgreSQL stores arrived with this schema, and the
-- reader stays lenient for any detail that does not fit (EventDetail::Unparsed).
ALTER TABLE boot_events ADD COLUMN peer TEXT;
ALTER TABLE boot_events ADD COLUMN via TEXT NOT NULL DEFAULT 'http';
