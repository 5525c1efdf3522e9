-- speediso collector schema, version 4: the fleet board. A run's health
-- verdict (the worst `verdict` of its health/burn-in results) and its
-- reasons (the warn/fail findings); each host's latest run (by first_ts,
-- then run_id) and that run's task, outcome ('running' until it finishes)
-- and verdict, kept on the host at ingest so the board filters hosts
-- without a join per host; the disk serials of each host's inventory for
-- search; the indexes the board's order and search use.
ALTER TABLE runs ADD COLUMN verdict TEXT;
ALTER TABLE runs ADD COLUMN reasons TEXT;
ALTER TABLE hosts ADD COLUMN last_run_id TEXT;
ALTER TABLE hosts ADD COLUMN last_task TEXT;
ALTER TABLE hosts ADD COLUMN last_outcome TEXT;
ALTER TABLE hosts ADD COLUMN last_verdict TEXT;
UPDATE hosts SET (last_run_id, last_task, last_outcome, last_verdict) =
    (SELECT run_id, task, coalesce(outcome, 'running'), verdict FROM runs
     WHERE runs.host_key = hosts.host_key ORDER BY first_ts DESC, run_id DESC LIMIT 1);
CREATE TABLE host_disks (
    serial   TEXT NOT NULL,
    host_key TEXT NOT NULL,
    PRIMARY KEY (serial, host_key)
);
CREATE INDEX hosts_by_last_seen ON hosts (last_seen, host_key);
CREATE INDEX hosts_by_serial ON hosts (serial);
CREATE INDEX hosts_by_mac ON hosts (lower(boot_mac));
CREATE INDEX hosts_by_hostname ON hosts (hostname);
CREATE INDEX hosts_by_cpu ON hosts (cpu_model);
CREATE INDEX results_by_step ON results (step, run_id);
