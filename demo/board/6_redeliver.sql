-- Exactly once, twice over: delivery is at least once, handlers are
-- idempotent.  Recreate every subscription from position 0 so the whole
-- history is delivered again, react, and check that nothing new appears.
\set ON_ERROR_STOP on
\pset footer off
\echo
\echo '== Redelivery: every subscription is recreated from position 0 and the contexts react again.'
\echo '   Handlers call mark_processed(consumer, event_id) first: nothing is appended twice.'
SELECT count(*) AS events_before FROM eventstore.events \gset
-- create_subscription runs outside a transaction block: one statement each
\o /dev/null
SELECT eventstore.drop_subscription('vulnerability_mgmt');
SELECT eventstore.drop_subscription('task_mgmt');
SELECT eventstore.drop_subscription('system_mgmt');
SELECT eventstore.create_subscription('vulnerability_mgmt', event_types => '{SystemRegistered,VulnScanInitiated}', from_position => 0);
SELECT eventstore.create_subscription('task_mgmt', event_types => '{VulnScanInitiated,VulnerabilityDetected,VulnScanCompleted}', from_position => 0);
SELECT eventstore.create_subscription('system_mgmt', event_types => '{VulnerabilityDetected}', from_position => 0);
\o
\set redelivery 1
\ir 3_react.sql
\unset redelivery
SELECT :events_before AS events_before, count(*) AS events_after FROM eventstore.events;
