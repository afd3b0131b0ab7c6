-- DHCP leases keyed by address (the allocator keeps at most one record per address; a
-- MAC may have a bound lease plus the record of an address it released earlier).
-- 0001's `leases` table (keyed by MAC) was never written by any release; replace it.
DROP TABLE leases;
CREATE TABLE leases (
    address    TEXT PRIMARY KEY,
    mac        TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX leases_mac ON leases (mac);
