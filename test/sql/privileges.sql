\unset ECHO
\i test/pgtap_setup.psql
-- Privileges: nothing is granted to PUBLIC; a role needs USAGE on the schema
-- and EXECUTE on the functions, and then appends and reads through them
-- without any privilege on the table or the sequence.
BEGIN;
-- every function, relation and schema of the extension is listed below
SELECT count(*) AS n_functions FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('eventstore', 'eventstore_internal') \gset
SELECT count(*) AS n_relations FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('eventstore', 'eventstore_internal') AND c.relkind IN ('r', 'v', 'S', 'm', 'f', 'p') \gset
SELECT plan(30 + 4 + :n_functions + :n_relations);

-- What PUBLIC gets, object by object (README, Privileges): EXECUTE on
-- category(), consumer_group_member() and worker_serves(), nothing else.
SELECT function_privs_are(n.nspname, p.proname, string_to_array(oidvectortypes(p.proargtypes), ', '), 'public',
                          CASE WHEN (n.nspname, p.proname) IN (('eventstore', 'category'), ('eventstore', 'consumer_group_member'), ('eventstore', 'worker_serves'))
                               THEN ARRAY['EXECUTE'] ELSE ARRAY[]::text[] END,
                          format('PUBLIC privileges on %s', p.oid::regprocedure))
  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('eventstore', 'eventstore_internal')
 ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT CASE c.relkind WHEN 'S' THEN sequence_privs_are(n.nspname, c.relname, 'public', ARRAY[]::text[],
                                                       format('PUBLIC has no privilege on sequence %s', c.oid::regclass))
                      ELSE table_privs_are(n.nspname, c.relname, 'public', ARRAY[]::text[],
                                           format('PUBLIC has no privilege on %s', c.oid::regclass)) END
  FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('eventstore', 'eventstore_internal') AND c.relkind IN ('r', 'v', 'S', 'm', 'f', 'p')
 ORDER BY c.oid::regclass::text COLLATE "C";
SELECT schema_privs_are('eventstore', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on schema eventstore');
SELECT schema_privs_are('eventstore_internal', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on schema eventstore_internal');
SELECT is((SELECT count(*) FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
            WHERE n.nspname = 'eventstore' AND p.proname LIKE '\_%'), 0::bigint,
          'no internal (_-prefixed) function is left in schema eventstore');
SELECT is((SELECT count(*) FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
            WHERE n.nspname = 'eventstore' AND p.prosecdef
              AND NOT EXISTS (SELECT FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')), 0::bigint,
          'every SECURITY DEFINER function pins its search_path');

SELECT function_privs_are('eventstore', 'append', ARRAY['text', 'jsonb', 'bigint'], 'public', ARRAY[]::name[],
    'PUBLIC cannot execute append');
SELECT function_privs_are('eventstore', 'append_event', ARRAY['text', 'text', 'jsonb', 'jsonb', 'bigint', 'uuid'],
    'public', ARRAY[]::name[], 'PUBLIC cannot execute append_event');
SELECT function_privs_are('eventstore', 'read_stream', ARRAY['text', 'bigint', 'integer', 'boolean'],
    'public', ARRAY[]::name[], 'PUBLIC cannot execute read_stream');
SELECT function_privs_are('eventstore', 'stream_version', ARRAY['text'], 'public', ARRAY[]::name[],
    'PUBLIC cannot execute stream_version');
SELECT ok(NOT has_table_privilege('public', 'eventstore.events', 'INSERT,UPDATE,DELETE,TRUNCATE,SELECT'),
    'PUBLIC has no privilege on eventstore.events');

SELECT lives_ok($$SELECT eventstore.append('priv-1', '[{"type": "ByOwner"}]')$$, 'setup: priv-1 at version 1');
SELECT pg_temp.store_state() AS s0 \gset

-- A role without grants.
CREATE ROLE regress_es_app;
SET LOCAL ROLE regress_es_app;
SELECT throws_ok($$SELECT * FROM eventstore.append('priv-1', '[{"type": "X"}]')$$,
    '42501', 'permission denied for schema eventstore', 'no grants: append refused');
SELECT throws_ok($$SELECT * FROM eventstore.append_event('priv-1', 'X')$$,
    '42501', 'permission denied for schema eventstore', 'no grants: append_event refused');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('priv-1')$$,
    '42501', 'permission denied for schema eventstore', 'no grants: read_stream refused');
RESET ROLE;
SELECT is(pg_temp.store_state(), :'s0', '  nothing was written');

-- USAGE on the schema alone is not enough.
GRANT USAGE ON SCHEMA eventstore TO regress_es_app;
SET LOCAL ROLE regress_es_app;
SELECT throws_ok($$SELECT * FROM eventstore.append('priv-1', '[{"type": "X"}]')$$,
    '42501', 'permission denied for function append', 'USAGE only: append refused');
SELECT throws_ok($$SELECT * FROM eventstore.append_event('priv-1', 'X')$$,
    '42501', 'permission denied for function append_event', 'USAGE only: append_event refused');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('priv-1')$$,
    '42501', 'permission denied for function read_stream', 'USAGE only: read_stream refused');
SELECT throws_ok($$SELECT eventstore.stream_version('priv-1')$$,
    '42501', 'permission denied for function stream_version', 'USAGE only: stream_version refused');
RESET ROLE;
SELECT is(pg_temp.store_state(), :'s0', '  nothing was written');

-- With EXECUTE, the role appends and reads.
GRANT EXECUTE ON FUNCTION eventstore.append(text, jsonb, bigint),
                          eventstore.append_event(text, text, jsonb, jsonb, bigint, uuid),
                          eventstore.read_stream(text, bigint, integer, boolean),
                          eventstore.stream_version(text)
   TO regress_es_app;
SET LOCAL ROLE regress_es_app;
SELECT is(current_user::text, 'regress_es_app', 'running as regress_es_app');
SELECT results_eq($$SELECT stream_version FROM eventstore.append('priv-1', '[{"type": "ByApp"}]', 1)$$,
    ARRAY[2::bigint], 'with EXECUTE: append works');
SELECT results_eq($$SELECT stream_version FROM eventstore.append_event('priv-1', 'ByApp', expected_version => 2)$$,
    ARRAY[3::bigint], 'with EXECUTE: append_event works');
SELECT throws_ok($$SELECT * FROM eventstore.append('priv-1', '[{"type": "ByApp"}]', 1)$$,
    'ES001', NULL, 'with EXECUTE: the expectation is still enforced');
SELECT results_eq($$SELECT stream_version, event_type COLLATE "default" FROM eventstore.read_stream('priv-1')$$,
    $$VALUES (1::bigint, 'ByOwner'::text), (2, 'ByApp'), (3, 'ByApp')$$,
    'with EXECUTE: read_stream works');
SELECT is(eventstore.stream_version('priv-1'), 3::bigint, 'with EXECUTE: stream_version works');

-- ... but still cannot touch the table or the position sequence directly.
SELECT throws_ok($$INSERT INTO eventstore.events VALUES (1000000, 'priv-1', 4, gen_random_uuid(), 'Forged', '{}', '{}', now())$$,
    '42501', 'permission denied for table events', 'the role cannot INSERT into the table');
SELECT throws_ok($$UPDATE eventstore.events SET data = '{}'$$,
    '42501', 'permission denied for table events', 'the role cannot UPDATE the table');
SELECT throws_ok($$DELETE FROM eventstore.events$$,
    '42501', 'permission denied for table events', 'the role cannot DELETE from the table');
SELECT throws_ok($$TRUNCATE eventstore.events$$,
    '42501', 'permission denied for table events', 'the role cannot TRUNCATE the table');
SELECT throws_ok($$SELECT count(*) FROM eventstore.events$$,
    '42501', 'permission denied for table events', 'the role cannot SELECT from the table');
SELECT throws_ok($$SELECT nextval('eventstore.global_position_seq')$$,
    '42501', 'permission denied for sequence global_position_seq', 'the role cannot take positions');
SELECT throws_ok($$SELECT setval('eventstore.global_position_seq', 1)$$,
    '42501', 'permission denied for sequence global_position_seq', 'the role cannot reset positions');
RESET ROLE;
SELECT results_eq($$SELECT stream_version, event_type COLLATE "default" FROM eventstore.events WHERE stream = 'priv-1' ORDER BY stream_version$$,
    $$VALUES (1::bigint, 'ByOwner'::text), (2, 'ByApp'), (3, 'ByApp')$$,
    'the table holds exactly the events appended through the functions');

-- Revoking EXECUTE takes the access away again.
REVOKE EXECUTE ON FUNCTION eventstore.append(text, jsonb, bigint) FROM regress_es_app;
SET LOCAL ROLE regress_es_app;
SELECT throws_ok($$SELECT * FROM eventstore.append('priv-1', '[{"type": "X"}]')$$,
    '42501', 'permission denied for function append', 'after REVOKE: append refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
