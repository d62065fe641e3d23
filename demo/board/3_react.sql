-- The contexts react to each other's events, delivered by subscriptions.
\set ON_ERROR_STOP on
\pset footer off
\if :{?redelivery}
\else
\echo
\echo '== The contexts react: each polls its subscription, handles the events and acks, in one transaction'
\echo '   per batch, round after round until a round delivers nothing.  Shown per context: events'
\echo '   delivered -> events appended in reaction.'
\endif
CALL demo.react();
CALL demo.await_projections();

SELECT l.round,
       max(format('%s -> %s', l.delivered, l.appended) || CASE WHEN l.conflicts > 0 THEN ' (ES001, retried)' ELSE '' END)
           FILTER (WHERE l.context = 'vulnerability-management') AS "Vulnerability Mgmt",
       max(format('%s -> %s', l.delivered, l.appended) || CASE WHEN l.conflicts > 0 THEN ' (ES001, retried)' ELSE '' END)
           FILTER (WHERE l.context = 'task-management') AS "Task Mgmt",
       max(format('%s -> %s', l.delivered, l.appended) || CASE WHEN l.conflicts > 0 THEN ' (ES001, retried)' ELSE '' END)
           FILTER (WHERE l.context = 'system-management') AS "System Mgmt"
  FROM demo.reaction_log AS l
 WHERE l.run = (SELECT max(run) FROM demo.reaction_log)
 GROUP BY l.round
 ORDER BY l.round;
