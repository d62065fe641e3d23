-- The global feed: every event in global position order (read_all).
\set ON_ERROR_STOP on
\pset footer off
\echo
\echo '== The global feed: eventstore.read_all(after_position => 0)'
SELECT a.global_position AS pos, a.stream, a.stream_version AS v, a.event_type,
       left(a.metadata ->> 'correlation_id', 8) AS correlation,
       coalesce((SELECT c.event_type || '#' || c.global_position FROM eventstore.events AS c
                  WHERE c.event_id::text = a.metadata ->> 'causation_id'), 'command') AS caused_by
  FROM eventstore.read_all(after_position => 0, max_count => 1000) AS a
 ORDER BY a.global_position;
SELECT eventstore.head_position() AS head_position;
