-- Bench-only fill for benches/collector-pages.sh: :HOSTS hosts, 4 runs
-- each, :EPR events per run (10,000 x 4 x 25 = 1,000,000 events), the
-- derived rows the pages read (results, verdicts, disk serials). Plain SQL
-- that SQLite and PostgreSQL both run (the script substitutes :HOSTS and
-- :EPR); the schema is the collector's own (it migrates on start).
INSERT INTO hosts (host_key, serial, uuid, boot_mac, hostname, cpu_model, first_seen, last_seen)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :HOSTS - 1)
SELECT 'H' || (100000 + i), 'H' || (100000 + i), NULL,
       '52:54:00:' || (10 + i % 90) || ':' || (10 + (i / 90) % 90) || ':' || (10 + i / 8100),
       'node-' || i, 'CPU model ' || (i % 20), '2026-01-01T00:00:00.000Z',
       '2026-04-' || (10 + i % 18) || 'T' || (10 + i % 13) || ':' || (10 + i % 50) || ':00.000Z'
FROM n;

INSERT INTO host_disks (serial, host_key)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2 * :HOSTS - 1)
SELECT 'D' || (200000 + i), 'H' || (100000 + i / 2) FROM n;

INSERT INTO runs (run_id, host_key, task, started, finished, outcome, exit_status, duration_ms,
                  error, events, last_seq, first_ts, token_id, verdict, reasons)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4 * :HOSTS - 1)
SELECT 'R' || (1000000 + i), 'H' || (100000 + i / 4),
       CASE i % 4 WHEN 0 THEN 'inventory' WHEN 1 THEN 'burnin' WHEN 2 THEN 'speedtest' ELSE 'wipe' END,
       '2026-0' || (1 + (i % 4 + i / 4) % 4) || '-15T10:00:00.000Z', '2026-0' || (1 + (i % 4 + i / 4) % 4) || '-15T10:00:59.000Z',
       CASE WHEN i % 17 = 0 THEN 'failed' ELSE 'success' END, CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END,
       59000, NULL, :EPR, :EPR - 1, '2026-0' || (1 + (i % 4 + i / 4) % 4) || '-15T10:00:00.000Z', 'bench',
       CASE WHEN i % 4 <> 1 THEN NULL WHEN i % 7 = 0 THEN 'fail' WHEN i % 5 = 0 THEN 'warn' ELSE 'pass' END,
       CASE WHEN i % 4 = 1 AND i % 7 = 0 THEN 'DIMM_A1: 3 corrected memory errors' END
FROM n;

INSERT INTO events (run_id, seq, ts, type, step, body)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4 * :HOSTS * :EPR - 1),
m(i, r, seq, ts, t) AS (
  SELECT i, i / :EPR, i % :EPR,
         '2026-0' || (1 + ((i / :EPR) % 4 + i / :EPR / 4) % 4) || '-15T10:00:' || (10 + i % :EPR) || '.000Z',
         CASE WHEN i % :EPR = 0 THEN 'run_started' WHEN i % :EPR = 1 THEN 'result'
              WHEN i % :EPR = :EPR - 1 THEN 'run_finished' WHEN i % :EPR = :EPR - 2 THEN 'log'
              ELSE 'progress' END
  FROM n)
SELECT 'R' || (1000000 + r), seq, ts, t, 'bench.disk',
       '{"v":1,"run_id":"R' || (1000000 + r) || '","seq":' || seq || ',"ts":"' || ts
       || '","host":{"serial":"H' || (100000 + r / 4) || '"},"task":"t","step":"bench.disk","type":"' || t || '"'
       || CASE t WHEN 'progress' THEN ',"rate":' || (400000000 + seq * 1000000) || ',"message":"/dev/sda"'
                 WHEN 'log' THEN ',"level":"info","message":"line ' || seq || '"'
                 WHEN 'result' THEN ',"data":{}'
                 WHEN 'run_started' THEN ',"steps":[],"destructive":false,"after":"stay","agent_version":"0"'
                 ELSE ',"outcome":"success","exit_status":0,"duration_ms":59000' END || '}'
FROM m;

INSERT INTO results (run_id, seq, step, data)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4 * :HOSTS - 1)
SELECT 'R' || (1000000 + i), 1,
       CASE i % 4 WHEN 0 THEN 'inventory' WHEN 2 THEN 'bench.cpu' ELSE 'health' END,
       CASE i % 4
         WHEN 0 THEN '{"cpu":{"model":"CPU model ' || ((i / 4) % 20) || '","cores":16},"disks":[{"serial":"D' || (200000 + (i / 4) * 2) || '","model":"SSD"}],"nics":[{"name":"eth0"}]}'
         WHEN 2 THEN '{"events_per_second":{"all":' || (1000 + (i * 37) % 200) || '},"latency_us":' || (10 + i % 7) || '}'
         ELSE '{"verdict":"pass"}' END
FROM n;

-- What ingest keeps on each host (store::sql::REFRESH_HOST_LAST_RUN).
UPDATE hosts SET (last_run_id, last_task, last_outcome, last_verdict) =
    (SELECT run_id, task, coalesce(outcome, 'running'), verdict FROM runs
     WHERE runs.host_key = hosts.host_key ORDER BY first_ts DESC, run_id DESC LIMIT 1);
