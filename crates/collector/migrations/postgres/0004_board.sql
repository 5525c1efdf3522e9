-- speediso collector schema, version 4: the fleet board. A run's health
-- verdict (the worst `verdict` of its health/burn-in results) and its
-- reasons (the warn/fail findings), the disk serials of each host's
-- inventory for search, and the indexes the board's filters and search use.
ALTER TABLE runs ADD COLUMN verdict TEXT;
ALTER TABLE runs ADD COLUMN reasons TEXT;
CREATE TABLE host_disks (
    serial   TEXT NOT NULL,
    host_key TEXT NOT NULL,
    PRIMARY KEY (serial, host_key)
);
CREATE INDEX hosts_by_last_seen ON hosts (last_seen, host_key);
CREATE INDEX hosts_by_serial ON hosts (serial);
CREATE INDEX hosts_by_mac ON hosts (lower(boot_mac));
CREATE INDEX hosts_by_hostname ON hosts (hostname);
CREATE INDEX results_by_step ON results (step, run_id);
