-- DHCP leases keyed by address (the allocator keeps at most one record per address; a
-- MAC may have a bound lease plus the record of an address it released earlier).
-- The PostgreSQL DDL of sqlite/0002_dhcp_leases.sql (which replaces 0001's table the
-- same way, so both backends walk the same numbered steps).
DROP TABLE leases;
CREATE TABLE leases (
    address    TEXT PRIMARY KEY,
    mac        TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX leases_mac ON leases (mac);
