-- The causation chain of the registration that found a critical CVE.
\set ON_ERROR_STOP on
\pset footer off
SELECT r.metadata ->> 'correlation_id' AS critical_correlation, v.system_id AS critical_system,
       format('== Causation chain of %s''s registration: correlation_id %s', v.system_id,
              r.metadata ->> 'correlation_id') AS header
  FROM board.vulnerabilities AS v
  JOIN eventstore.read_stream('system-' || v.system_id, 1, 1) AS r ON true
 WHERE v.severity = 'critical'
 ORDER BY v.cvss DESC LIMIT 1 \gset
\echo
\echo :header
\echo '   (the system with a critical CVE; metadata causation_id -> event_id as a recursive CTE, demo.causation_tree)'
\pset format unaligned
\pset tuples_only on
SELECT line FROM demo.causation_tree(:'critical_correlation');
\pset tuples_only off
\pset format aligned
\echo

\echo '== Every reaction (every event but SystemRegistered) names as its cause an event of its own correlation:'
SELECT count(*) AS reactions,
       count(cause.event_id) AS cause_found,
       count(*) FILTER (WHERE e.metadata ->> 'correlation_id' IS NULL) AS without_correlation
  FROM eventstore.events AS e
  LEFT JOIN eventstore.events AS cause
    ON cause.event_id::text = e.metadata ->> 'causation_id'
   AND cause.metadata ->> 'correlation_id' = e.metadata ->> 'correlation_id'
 WHERE e.event_type <> 'SystemRegistered';
