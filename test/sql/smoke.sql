\unset ECHO
\i test/pgtap_setup.psql
BEGIN;
SELECT plan(2);
SELECT is((SELECT stream_version FROM eventstore.append_event('smoke-1', 'Happened')), 1::bigint, 'first event is version 1');
SELECT is(eventstore.stream_version('smoke-1'), 1::bigint, 'stream_version sees it');
SELECT * FROM finish();
ROLLBACK;
