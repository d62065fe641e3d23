-- The read models: projections into ordinary tables.
\set ON_ERROR_STOP on
\pset footer off
\echo
\echo '== Read model: the systems board (async projection "systems_board", run by the background worker)'
SELECT s.system_id AS system, s.classification, s.scan_priority AS scan, s.scan_status AS status,
       s.vulnerabilities AS vulns, s.max_cvss, s.alerts,
       (SELECT count(*) FROM board.tasks AS t WHERE t.system_id = s.system_id AND t.status = 'open') AS open_tasks
  FROM board.systems AS s
 ORDER BY s.max_cvss DESC NULLS LAST, s.system_id;

\echo '== Read model: open tasks by priority (inline projection "tasks")'
SELECT priority, due, kind, title FROM board.open_tasks;

\echo '== Read model: vulnerabilities by system (inline projection "vulnerabilities")'
SELECT v.system_id AS system, v.cve_id, v.package, v.version, v.fixed, v.cvss, v.severity
  FROM board.vulnerabilities AS v
 ORDER BY v.system_id, v.cvss DESC, v.cve_id;

\echo '== Where the consumers are: eventstore.subscriptions and eventstore.projections'
SELECT name, event_types, checkpoint_position, wal_status FROM eventstore.subscriptions ORDER BY name;
SELECT name, mode, coalesce(array_to_string(event_types, ','), stream_prefix, '(all)') AS filter,
       checkpoint, coalesce(last_error, '-') AS last_error
  FROM eventstore.projections ORDER BY name;
