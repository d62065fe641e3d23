\unset ECHO
\i test/pgtap_setup.psql
-- Immutability: UPDATE, DELETE, TRUNCATE (and MERGE) of eventstore.events
-- are refused with 42501 for every role: the superuser, the superuser with
-- session_replication_role = replica, and a role granted those privileges.
BEGIN;
SELECT plan(25);

SELECT lives_ok($$SELECT eventstore.append('imm-1', '[{"type": "A", "data": {"v": 1}}, {"type": "B"}]')$$,
    'setup: imm-1 with two events');
SELECT lives_ok($$SELECT eventstore.append('imm-2', '[{"type": "C"}]')$$, 'setup: imm-2 with one event');
SELECT pg_temp.store_state() AS s0 \gset
SELECT ok((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), 'these tests run as a superuser');

-- The superuser.
SELECT throws_ok($$UPDATE eventstore.events SET data = '{"v": 2}' WHERE stream = 'imm-1'$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'superuser: UPDATE refused');
SELECT throws_ok($$UPDATE eventstore.events SET event_type = 'Z' WHERE false$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'superuser: UPDATE of no rows refused');
SELECT throws_ok($$DELETE FROM eventstore.events WHERE stream = 'imm-1' AND stream_version = 2$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'superuser: DELETE refused');
SELECT throws_ok($$DELETE FROM eventstore.events$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'superuser: DELETE of every row refused');
SELECT throws_ok($$TRUNCATE eventstore.events$$,
    '42501', 'events are immutable: TRUNCATE on events is not allowed', 'superuser: TRUNCATE refused');
SELECT throws_ok($$TRUNCATE eventstore.events RESTART IDENTITY CASCADE$$,
    '42501', 'events are immutable: TRUNCATE on events is not allowed', 'superuser: TRUNCATE CASCADE refused');
SELECT throws_ok($$MERGE INTO eventstore.events e USING (VALUES ('imm-1')) s(stream) ON e.stream = s.stream
                    WHEN MATCHED THEN UPDATE SET data = '{}'$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'superuser: MERGE ... UPDATE refused');
SELECT throws_ok($$MERGE INTO eventstore.events e USING (VALUES ('imm-1')) s(stream) ON e.stream = s.stream
                    WHEN MATCHED THEN DELETE$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'superuser: MERGE ... DELETE refused');
SELECT throws_ok($$INSERT INTO eventstore.events SELECT * FROM eventstore.events WHERE stream = 'imm-1'
                    ON CONFLICT (global_position) DO UPDATE SET data = '{"v": 2}'$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'superuser: INSERT ... ON CONFLICT DO UPDATE refused');
SELECT throws_ok($$WITH gone AS (DELETE FROM eventstore.events RETURNING 1) SELECT count(*) FROM gone$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'superuser: DELETE in a CTE refused');
SELECT is(pg_temp.store_state(), :'s0', 'the events are unchanged');

-- The superuser with session_replication_role = replica (which skips ordinary triggers).
SET LOCAL session_replication_role = replica;
SELECT is(current_setting('session_replication_role'), 'replica', 'session_replication_role is replica');
SELECT throws_ok($$UPDATE eventstore.events SET data = '{"v": 2}'$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'replica: UPDATE refused');
SELECT throws_ok($$DELETE FROM eventstore.events$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'replica: DELETE refused');
SELECT throws_ok($$TRUNCATE eventstore.events$$,
    '42501', 'events are immutable: TRUNCATE on events is not allowed', 'replica: TRUNCATE refused');
SET LOCAL session_replication_role = origin;
SELECT is(pg_temp.store_state(), :'s0', 'the events are unchanged');

-- A role granted UPDATE, DELETE and TRUNCATE on the table is still refused.
CREATE ROLE regress_es_mutator;
GRANT USAGE ON SCHEMA eventstore TO regress_es_mutator;
GRANT SELECT, UPDATE, DELETE, TRUNCATE ON eventstore.events TO regress_es_mutator;
SET LOCAL ROLE regress_es_mutator;
SELECT throws_ok($$UPDATE eventstore.events SET data = '{}'$$,
    '42501', 'events are immutable: UPDATE on events is not allowed', 'a role granted UPDATE: UPDATE refused');
SELECT throws_ok($$DELETE FROM eventstore.events$$,
    '42501', 'events are immutable: DELETE on events is not allowed', 'a role granted DELETE: DELETE refused');
SELECT throws_ok($$TRUNCATE eventstore.events$$,
    '42501', 'events are immutable: TRUNCATE on events is not allowed', 'a role granted TRUNCATE: TRUNCATE refused');
RESET ROLE;
SELECT is(pg_temp.store_state(), :'s0', 'the events are unchanged');

-- Appending still works: immutability does not stop inserts through append.
SELECT results_eq($$SELECT stream_version FROM eventstore.append('imm-1', '[{"type": "C"}]', 2)$$,
    ARRAY[3::bigint], 'append still works');
SELECT results_eq($$SELECT event_type COLLATE "default", data FROM eventstore.read_stream('imm-1')$$,
    $$VALUES ('A'::text, '{"v": 1}'::jsonb), ('B', '{}'), ('C', '{}')$$,
    'imm-1 holds the original events and the new one');

SELECT * FROM finish();
ROLLBACK;
