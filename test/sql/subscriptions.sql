\unset ECHO
\i test/pgtap_setup.psql
-- Subscriptions on logical decoding (DESIGN.md section 5): create, poll,
-- ack, drop, the subscriptions view and create_publication; errors with
-- their SQLSTATE; exactly-once basics of poll + ack in one transaction;
-- from_position NULL / 0 / n; filters.
--
-- Not one transaction: create_subscription refuses to run inside a
-- transaction block (or a subtransaction, so not inside throws_ok
-- either).  Creates and drops run as top-level statements here; their
-- errors are checked with psql's SQLSTATE variable.  Every subscription is
-- dropped at the end.  Concurrency (the seam under load, commit order
-- differing from position order) is in test/t/020 and 021.
SET synchronous_commit = on;
SELECT plan(180);

SELECT count(*) AS slots0 FROM pg_replication_slots \gset
SELECT oid AS dboid FROM pg_database WHERE datname = current_database() \gset

-- The events of a subscription's poll as comparable rows.
CREATE FUNCTION pg_temp.evs(sub text, n int DEFAULT 1000)
RETURNS TABLE (stream text, stream_version bigint, event_type text) LANGUAGE sql AS $$
    SELECT p.stream, p.stream_version, p.event_type FROM eventstore.poll(sub, n) AS p
$$;

-- 1. The contract's signatures.
SELECT is(pg_get_function_arguments('eventstore.create_subscription(text,text,text[],bigint)'::regprocedure),
          'name text, stream_prefix text DEFAULT NULL::text, event_types text[] DEFAULT NULL::text[], from_position bigint DEFAULT NULL::bigint',
          'create_subscription(name, stream_prefix DEFAULT NULL, event_types DEFAULT NULL, from_position DEFAULT NULL)');
SELECT is(pg_get_function_arguments('eventstore.poll(text,integer)'::regprocedure),
          'name text, max_count integer DEFAULT 1000', 'poll(name, max_count DEFAULT 1000)');
SELECT is(pg_get_function_result('eventstore.poll(text,integer)'::regprocedure),
          'TABLE(global_position bigint, stream text, stream_version bigint, event_id uuid, event_type text, data jsonb, metadata jsonb, created_at timestamp with time zone, cursor eventstore.cursor)',
          'poll returns the columns of eventstore.event and a cursor');
SELECT has_function('eventstore', 'ack', ARRAY['text', 'eventstore.cursor'], 'ack(name, cursor)');
SELECT has_function('eventstore', 'ack', ARRAY['text'], 'ack(name)');
SELECT has_function('eventstore', 'drop_subscription', ARRAY['text'], 'drop_subscription(name)');
SELECT has_function('eventstore', 'create_publication', ARRAY['text'], 'create_publication(name)');
SELECT columns_are('eventstore', 'subscriptions',
                   ARRAY['name', 'owner', 'stream_prefix', 'event_types', 'from_position', 'checkpoint',
                         'checkpoint_position', 'recovery_position', 'lag_positions', 'lag_events', 'lag_bytes', 'slot_name',
                         'wal_status', 'slot_active', 'created_at'],
                   'the subscriptions view has its columns');

-- 2. create_subscription's errors, at top level.  None leaves a slot.
\set ON_ERROR_STOP false
\set VERBOSITY sqlstate
SELECT eventstore.create_subscription(NULL);
SELECT is(:'SQLSTATE'::text, '22004', 'create_subscription: a NULL name is 22004');
SELECT eventstore.create_subscription('Bad-Name');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: upper case and "-" in a name are 22023');
SELECT eventstore.create_subscription('');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: an empty name is 22023');
SELECT eventstore.create_subscription(repeat('a', 41));
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: a 41-character name is 22023');
SELECT eventstore.create_subscription('st_bad', stream_prefix => '');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: an empty stream_prefix is 22023');
SELECT eventstore.create_subscription('st_bad', stream_prefix => 'a,b');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: a stream_prefix with "," is 22023');
SELECT eventstore.create_subscription('st_bad', event_types => '{}');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: an empty event_types array is 22023');
SELECT eventstore.create_subscription('st_bad', event_types => '{A,NULL}');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: a NULL event type is 22023');
SELECT eventstore.create_subscription('st_bad', event_types => '{A,""}');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: an empty event type is 22023');
SELECT eventstore.create_subscription('st_bad', event_types => '{"A,B"}');
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: an event type with "," is 22023');
SELECT eventstore.create_subscription('st_bad', from_position => -1);
SELECT is(:'SQLSTATE'::text, '22023', 'create_subscription: a negative from_position is 22023');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, 'no failed create left a slot');
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, 'no failed create left a subscription');

-- A 40-character name is fine; a second subscription of that name is 42710.
SELECT eventstore.create_subscription(repeat('a', 40)) AS created \gset
SELECT is(:'SQLSTATE'::text, '00000', 'create_subscription: a 40-character name is fine');
SELECT eventstore.create_subscription(repeat('a', 40), stream_prefix => 'x');
SELECT is(:'SQLSTATE'::text, '42710', 'create_subscription: a duplicate name is 42710');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint + 1, 'the duplicate left no second slot');
SELECT is((SELECT slot_name::text FROM eventstore.subscriptions WHERE name = repeat('a', 40)),
          'eventstore_' || :dboid || '_' || repeat('a', 40), 'the slot is named eventstore_<database oid>_<name>');
SELECT eventstore.drop_subscription(repeat('a', 40)) AS dropped \gset
SELECT is(:'SQLSTATE'::text, '00000', 'drop_subscription of it');

-- drop_subscription's errors.
SELECT eventstore.drop_subscription('st_nope');
SELECT is(:'SQLSTATE'::text, '42704', 'drop_subscription: an unknown subscription is 42704');
SELECT eventstore.drop_subscription(NULL);
SELECT is(:'SQLSTATE'::text, '22004', 'drop_subscription: a NULL name is 22004');

-- Slots follow the transaction (src/slot.c): a statement that creates a
-- subscription and then fails leaves neither its row nor its slot.
SELECT eventstore.create_subscription(n) FROM (VALUES ('st_orphan'), ('Bad!')) AS v(n);
SELECT is(:'SQLSTATE'::text, '22023', 'a statement creating st_orphan and then a bad name fails');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint,
          'no slot is left behind by the failed statement');
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, '  nor a subscription');
-- A logical slot cannot be created once its transaction has written (its
-- start point waits for every transaction with writes to end, this one
-- too): a statement creating two subscriptions fails at the second.
SELECT eventstore.create_subscription(n) FROM (VALUES ('st_two_a'), ('st_two_b')) AS v(n);
SELECT is(:'SQLSTATE'::text, '25001', 'a statement creating two subscriptions fails at the second with 25001');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, '  and leaves no slot');
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, '  and no subscription');

-- A DO block is not a transaction block: it may create a subscription,
-- and a later error or a ROLLBACK in it takes the slot along.
DO $$BEGIN
    PERFORM eventstore.create_subscription('st_do');
    RAISE EXCEPTION 'a later error';
END$$;
SELECT is(:'SQLSTATE'::text, 'P0001', 'a DO block that creates st_do and then fails');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, '  leaves no slot');
DO $$BEGIN
    PERFORM eventstore.create_subscription('st_do');
    ROLLBACK;
END$$;
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint,
          'a DO block that creates st_do and rolls back leaves no slot');
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, '  and no subscription');
-- Inside an EXCEPTION block (a subtransaction) it is refused as in a
-- transaction block; the handler for the later error does not catch that.
DO $$BEGIN
    PERFORM eventstore.create_subscription('st_do');
    PERFORM 1 / 0;
EXCEPTION WHEN division_by_zero THEN NULL;
END$$;
SELECT is(:'SQLSTATE'::text, '25001', 'create_subscription inside a DO block''s EXCEPTION block is 25001');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, '  and leaves no slot');
-- A DO block that commits in between creates one subscription per transaction.
DO $$BEGIN
    PERFORM eventstore.create_subscription('st_do_a');
    COMMIT;
    PERFORM eventstore.create_subscription('st_do_b');
END$$;
SELECT is(ARRAY(SELECT name || ' ' || wal_status FROM eventstore.subscriptions ORDER BY name),
          ARRAY['st_do_a reserved', 'st_do_b reserved'], 'a DO block that commits between two creates makes both');
SELECT is((SELECT count(*) FROM pg_replication_slots
            WHERE slot_name IN (SELECT slot_name FROM eventstore.subscriptions) AND NOT temporary),
          2::bigint, '  with persistent slots');

-- A statement that drops a subscription and then fails keeps it, slot and all.
SELECT eventstore.drop_subscription(n) FROM (VALUES ('st_do_a'), ('st_nope')) AS v(n);
SELECT is(:'SQLSTATE'::text, '42704', 'a statement dropping st_do_a and then an unknown subscription fails');
SELECT is((SELECT wal_status FROM eventstore.subscriptions WHERE name = 'st_do_a'), 'reserved',
          'st_do_a still has its slot');
SELECT 'x' AS x FROM eventstore.append_event('subhalf-1', 'Half') \gset
SELECT results_eq($$SELECT stream FROM eventstore.poll('st_do_a')$$, ARRAY['subhalf-1'],
                  '  and delivers what is appended after');
-- A statement that drops both: rows and slots go at its commit.
SELECT count(eventstore.drop_subscription(n)) AS dropped FROM (VALUES ('st_do_a'), ('st_do_b')) AS v(n) \gset
SELECT is(:'SQLSTATE'::text, '00000', 'a statement dropping two subscriptions');
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, '  drops both');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, '  and their slots');

-- The slot functions behind them (the owner's; the tests run as superuser)
-- in subtransactions.  A slot created in one that aborts is gone at once.
DO $$BEGIN
    BEGIN
        PERFORM eventstore_internal.create_slot('st_internal_sub');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        IF EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'st_internal_sub') THEN
            RAISE EXCEPTION 'the slot of an aborted subtransaction is still there';
        END IF;
    END;
END$$;
SELECT is(:'SQLSTATE'::text, '00000', 'a slot created in a subtransaction that aborts is dropped at once');
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'st_internal_sub'), 0::bigint,
          '  and not made persistent at commit');
-- Created in a subtransaction that commits into one that aborts: gone too.
DO $$BEGIN
    BEGIN
        BEGIN
            PERFORM eventstore_internal.create_slot('st_internal_nested');
        EXCEPTION WHEN division_by_zero THEN NULL;
        END;
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END$$;
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'st_internal_nested'), 0::bigint,
          'a slot created in a subtransaction that commits into one that aborts is dropped');
-- Created in a subtransaction that commits: persistent after the commit; a
-- drop queued in a subtransaction that aborts is forgotten.
DO $$BEGIN
    BEGIN
        PERFORM eventstore_internal.create_slot('st_internal_kept');
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
    BEGIN
        PERFORM eventstore_internal.drop_slot_at_commit('st_internal_kept');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END$$;
SELECT is((SELECT temporary FROM pg_replication_slots WHERE slot_name = 'st_internal_kept'), false,
          'a slot created in a committed subtransaction is persistent; a drop from an aborted one is forgotten');
-- Two slots in one statement (no write between them): both persistent.
SELECT count(eventstore_internal.create_slot(n)) AS created FROM (VALUES ('st_internal_2a'), ('st_internal_2b')) AS v(n) \gset
SELECT is(ARRAY(SELECT slot_name || ' ' || temporary FROM pg_replication_slots
                 WHERE slot_name::text LIKE 'st\_internal\_%' ORDER BY 1),
          ARRAY['st_internal_2a false', 'st_internal_2b false', 'st_internal_kept false'],
          'two slots created by one statement are both persistent');
-- PREPARE TRANSACTION with a slot to create or to drop is 0A000, and the
-- transaction is rolled back.  (create_subscription refuses transaction
-- blocks, so the slot functions are used here.)
BEGIN;
SELECT eventstore_internal.create_slot('st_internal_prep') AS created \gset
PREPARE TRANSACTION 'st_internal_prep';
SELECT is(:'SQLSTATE'::text, '0A000', 'PREPARE TRANSACTION after creating a slot is 0A000');
SELECT count(*) > 0 AS was_prepared FROM pg_prepared_xacts WHERE gid = 'st_internal_prep' \gset
\if :was_prepared
ROLLBACK PREPARED 'st_internal_prep';
\endif
SELECT is(:'was_prepared'::boolean, false, '  nothing was prepared');
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'st_internal_prep'), 0::bigint,
          '  and the slot is gone');
BEGIN;
SELECT eventstore_internal.drop_slot_at_commit('st_internal_kept') AS dropped \gset
PREPARE TRANSACTION 'st_internal_prep';
SELECT is(:'SQLSTATE'::text, '0A000', 'PREPARE TRANSACTION after queueing a slot drop is 0A000');
SELECT count(*) > 0 AS was_prepared FROM pg_prepared_xacts WHERE gid = 'st_internal_prep' \gset
\if :was_prepared
ROLLBACK PREPARED 'st_internal_prep';
\endif
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'st_internal_kept'), 1::bigint,
          '  and the slot is kept');
SELECT count(eventstore_internal.drop_slot_at_commit(slot_name)) AS dropped FROM pg_replication_slots
 WHERE slot_name::text LIKE 'st\_internal\_%' \gset
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, 'the test slots are dropped');

-- A role without REPLICATION creates and drops subscriptions (the
-- functions are SECURITY DEFINER), but cannot call the slot functions.
CREATE ROLE st_app NOLOGIN NOSUPERUSER NOREPLICATION;
GRANT USAGE ON SCHEMA eventstore TO st_app;
GRANT EXECUTE ON FUNCTION eventstore.create_subscription(text, text, text[], bigint),
                          eventstore.drop_subscription(text) TO st_app;
SET ROLE st_app;
SELECT eventstore.create_subscription('st_by_app') AS created \gset
\set st_create :SQLSTATE
SELECT eventstore_internal.create_slot('st_internal_app');
\set st_internal_create :SQLSTATE
SELECT eventstore_internal.drop_slot_at_commit('eventstore_' || :dboid || '_st_by_app');
\set st_internal_drop :SQLSTATE
RESET ROLE;
SELECT is((SELECT wal_status FROM eventstore.subscriptions WHERE name = 'st_by_app'), 'reserved',
          'a role without REPLICATION creates a subscription');
SELECT is(:'st_create'::text, '00000', '  without an error');
SELECT is(:'st_internal_create'::text, '42501', '  but cannot call eventstore_internal.create_slot');
SELECT is(:'st_internal_drop'::text, '42501', '  nor eventstore_internal.drop_slot_at_commit');
SET ROLE st_app;
SELECT eventstore.drop_subscription('st_by_app') AS dropped \gset
\set st_drop :SQLSTATE
RESET ROLE;
SELECT is(:'st_drop'::text, '00000', '  and drops it');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, '  with its slot');
DROP OWNED BY st_app;
DROP ROLE st_app;
\set ON_ERROR_STOP true
\set VERBOSITY default

-- Inside a transaction block create_subscription is refused with 25001;
-- drop_subscription works there, its slot going at commit or staying on
-- rollback.
SELECT eventstore.create_subscription('st_drop_me') AS created \gset
SELECT eventstore.create_subscription('st_drop_tx') AS created \gset
SELECT slot_name AS drop_tx_slot FROM eventstore.subscription WHERE name = 'st_drop_tx' \gset
BEGIN;
SELECT throws_ok($$SELECT eventstore.create_subscription('st_in_tx')$$, '25001', NULL,
                 'create_subscription inside BEGIN is 25001');
ROLLBACK;
BEGIN;
SELECT lives_ok($$SELECT eventstore.drop_subscription('st_drop_me')$$, 'drop_subscription inside BEGIN works');
SELECT is((SELECT count(*) FROM eventstore.subscriptions WHERE name = 'st_drop_me'), 0::bigint,
          '  its row is gone in the transaction');
ROLLBACK;
BEGIN;
SELECT eventstore.drop_subscription('st_drop_tx') AS dropped \gset
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'drop_tx_slot'), 1::bigint,
          'a drop inside BEGIN keeps the slot until the commit');
COMMIT;
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'drop_tx_slot'), 0::bigint,
          '  and drops it at the commit');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint + 1,
          'after the rollbacks: only st_drop_me''s slot');
SELECT is(ARRAY(SELECT name FROM eventstore.subscriptions), ARRAY['st_drop_me'],
          'after the rollbacks: only st_drop_me');

-- 3. poll's and ack's errors (these may run anywhere).
BEGIN;
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_nope')$$, '42704', 'subscription "st_nope" does not exist',
                 'poll: an unknown subscription is 42704');
SELECT throws_ok($$SELECT * FROM eventstore.poll(NULL)$$, '22004', NULL, 'poll: a NULL name is 22004');
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_drop_me', 0)$$, '22023', NULL, 'poll: max_count 0 is 22023');
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_drop_me', -5)$$, '22023', NULL, 'poll: a negative max_count is 22023');
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_drop_me', NULL)$$, '22023', NULL, 'poll: a NULL max_count is 22023');
SELECT throws_ok($$SELECT eventstore.ack('st_nope')$$, '42704', NULL, 'ack(name): an unknown subscription is 42704');
SELECT throws_ok($$SELECT eventstore.ack('st_nope', ROW('0/0', 0, 0)::eventstore.cursor)$$, '42704', NULL,
                 'ack(name, cursor): an unknown subscription is 42704');
SELECT throws_ok($$SELECT eventstore.ack(NULL::text)$$, '22004', NULL, 'ack(name): a NULL name is 22004');
SELECT throws_ok($$SELECT eventstore.ack('st_drop_me', NULL)$$, '22004', NULL, 'ack: a NULL cursor is 22004');
SELECT throws_ok($$SELECT eventstore.ack('st_drop_me', ROW(NULL, 1, 1)::eventstore.cursor)$$, '22004', NULL,
                 'ack: a cursor without lsn is 22004');
SELECT throws_ok($$SELECT eventstore.ack('st_drop_me')$$, '55000', 'this transaction has not polled subscription "st_drop_me"',
                 'ack(name) before this transaction polled is 55000');
ROLLBACK;
-- polled in an earlier transaction does not count
SELECT count(*) AS n FROM eventstore.poll('st_drop_me') \gset
BEGIN;
SELECT throws_ok($$SELECT eventstore.ack('st_drop_me')$$, '55000', NULL,
                 'ack(name) after a poll in another transaction is 55000');
ROLLBACK;

-- drop removes the row and the slot; the name is unknown afterwards.
SELECT slot_name AS drop_me_slot FROM eventstore.subscriptions WHERE name = 'st_drop_me' \gset
SELECT eventstore.drop_subscription('st_drop_me') AS dropped \gset
SELECT is((SELECT count(*) FROM eventstore.subscriptions WHERE name = 'st_drop_me'), 0::bigint,
          'drop_subscription removes the subscription');
SELECT is((SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'drop_me_slot'), 0::bigint,
          'drop_subscription removes its slot');
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_drop_me')$$, '42704', NULL, 'a dropped subscription is unknown to poll');

-- 4. Live delivery, from_position NULL: only events committed after the
-- creation, in commit order, filtered by stream prefix.
SELECT 'x' AS x FROM eventstore.append_event('sub-0', 'Before') \gset
SELECT eventstore.create_subscription('st_live', stream_prefix => 'sub-') AS created \gset
SELECT is((SELECT row(stream_prefix, event_types, from_position, checkpoint, checkpoint_position,
                      wal_status, slot_active)::text
             FROM eventstore.subscriptions WHERE name = 'st_live'),
          '(sub-,,,"(0/0,0,0)",0,reserved,f)',
          'a new subscription: its filter, checkpoint (0/0,0,0), a reserved, inactive slot');
SELECT is((SELECT plugin::text || '/' || database::text FROM pg_replication_slots r JOIN eventstore.subscriptions s USING (slot_name)
            WHERE s.name = 'st_live'),
          'eventstore/' || current_database(), 'its slot is a logical slot of the eventstore plugin in this database');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live')$$, $$SELECT NULL::text, NULL::bigint, NULL::text WHERE false$$,
                  'nothing committed before the creation is delivered');

SELECT global_position AS p1 FROM eventstore.append_event('sub-1', 'A', '{"k": "v"}', '{"m": 1}') \gset
SELECT 'x' AS x FROM eventstore.append_event('subx-1', 'NotMine') \gset
SELECT global_position AS p4 FROM eventstore.append('sub-2', '[{"type": "B1"}, {"type": "B2"}, {"type": "B3"}]') \gset

-- poll without ack, rolled back or committed: redelivered
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 2)$$,
                  $$VALUES ('sub-1', 1::bigint, 'A'), ('sub-2', 1::bigint, 'B1')$$,
                  'poll(2): the first two matching events');
ROLLBACK;
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 2)$$,
                  $$VALUES ('sub-1', 1::bigint, 'A'), ('sub-2', 1::bigint, 'B1')$$,
                  'after a rollback the same events are delivered again');
COMMIT;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live')$$,
                  $$VALUES ('sub-1', 1::bigint, 'A'), ('sub-2', 1::bigint, 'B1'), ('sub-2', 2::bigint, 'B2'), ('sub-2', 3::bigint, 'B3')$$,
                  'a committed poll without ack: everything is delivered again');

-- the rows poll returns are the stored events; the cursors are (commit lsn, seq, position)
SELECT results_eq(
    $$SELECT global_position, stream, stream_version, event_id, event_type, data, metadata, created_at
        FROM eventstore.poll('st_live')$$,
    $$SELECT global_position, stream COLLATE "default", stream_version, event_id, event_type COLLATE "default",
             data, metadata, created_at
        FROM eventstore.events WHERE global_position IN ($$ || :p1 || $$, $$ || :p4 || $$ - 2, $$ || :p4 || $$ - 1, $$ || :p4 || $$)
       ORDER BY global_position$$,
    'poll returns the stored events, every column');
SELECT is(
    (SELECT array_agg(row((cursor).seq, (cursor).position - :p1, (cursor).lsn > '0/0')::text ORDER BY (cursor).lsn, (cursor).seq)
       FROM eventstore.poll('st_live')),
    ARRAY['(0,0,t)', '(0,2,t)', '(1,3,t)', '(2,4,t)'],
    'cursors: seq is the index in the transaction, position the event''s position');
SELECT is((SELECT count(DISTINCT (cursor).lsn) FROM eventstore.poll('st_live') WHERE stream = 'sub-2'), 1::bigint,
          'the events of one transaction share their cursor lsn');

-- poll + ack(name) in one transaction: acknowledged for good
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 2)$$,
                  $$VALUES ('sub-1', 1::bigint, 'A'), ('sub-2', 1::bigint, 'B1')$$,
                  'poll(2) again');
SELECT lives_ok($$SELECT eventstore.ack('st_live')$$, 'ack(name) in the polling transaction');
COMMIT;
SELECT is((SELECT checkpoint_position FROM eventstore.subscriptions WHERE name = 'st_live'), (:p4 - 2)::bigint,
          'the checkpoint is the last acknowledged event');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live')$$,
                  $$VALUES ('sub-2', 2::bigint, 'B2'), ('sub-2', 3::bigint, 'B3')$$,
                  'after poll + ack, the next poll starts after the acknowledged events, inside a transaction');

-- ack(name, cursor) inside a transaction's events; never backwards
SELECT cursor AS c_b2 FROM eventstore.poll('st_live', 1) \gset
SELECT eventstore.ack('st_live', :'c_b2') AS acked \gset
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live')$$,
                  $$VALUES ('sub-2', 3::bigint, 'B3')$$,
                  'ack(name, cursor) of B2: only B3 is left');
SELECT cursor AS c_b3 FROM eventstore.poll('st_live', 1) \gset
SELECT eventstore.ack('st_live', :'c_b3') AS acked \gset
SELECT eventstore.ack('st_live', :'c_b2') AS acked \gset
SELECT eventstore.ack('st_live', ROW('0/0', 0, 0)::eventstore.cursor) AS acked \gset
SELECT is((SELECT checkpoint::text FROM eventstore.subscriptions WHERE name = 'st_live'), :'c_b3',
          'ack never moves the checkpoint back');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_live')$$, 'caught up: poll returns nothing');
BEGIN;
SELECT is_empty($$SELECT * FROM eventstore.poll('st_live')$$, 'an empty poll');
SELECT lives_ok($$SELECT eventstore.ack('st_live')$$, 'ack(name) after an empty poll');
COMMIT;
SELECT is((SELECT checkpoint::text FROM eventstore.subscriptions WHERE name = 'st_live'), :'c_b3',
          'ack(name) after an empty poll keeps the checkpoint');

-- two polls in one transaction page forward; ack(name) acknowledges both
SELECT 'x' AS x FROM eventstore.append('sub-3', '[{"type": "C1"}, {"type": "C2"}]') \gset
SELECT global_position AS p_d FROM eventstore.append_event('sub-4', 'D') \gset
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 1)$$, $$VALUES ('sub-3', 1::bigint, 'C1')$$, 'page 1');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 1)$$, $$VALUES ('sub-3', 2::bigint, 'C2')$$, 'page 2 in the same transaction');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live', 1)$$, $$VALUES ('sub-4', 1::bigint, 'D')$$, 'page 3 in the same transaction');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_live', 1)$$, 'page 4: nothing more');
SELECT lives_ok($$SELECT eventstore.ack('st_live')$$, 'ack(name) after four polls');
COMMIT;
SELECT is((SELECT checkpoint_position FROM eventstore.subscriptions WHERE name = 'st_live'), :p_d::bigint,
          'ack(name) acknowledged everything the transaction polled');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_live')$$, 'nothing is delivered twice');

-- 5. The view: lag_positions counts positions behind head_position.
SELECT is((SELECT lag_positions FROM eventstore.subscriptions WHERE name = 'st_live'), 0::bigint,
          'caught up with the last event: lag_positions 0');
SELECT 'x' AS x FROM eventstore.append('sub-5', '[{"type": "E1"}, {"type": "E2"}]') \gset
SELECT is((SELECT lag_positions FROM eventstore.subscriptions WHERE name = 'st_live'), 2::bigint,
          'two events behind: lag_positions 2');
SELECT cmp_ok((SELECT lag_bytes FROM eventstore.subscriptions WHERE name = 'st_live'), '>', 0::numeric,
              'behind: lag_bytes > 0');
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_live')$$,
                  $$VALUES ('sub-5', 1::bigint, 'E1'), ('sub-5', 2::bigint, 'E2')$$, 'the two events');
SELECT eventstore.ack('st_live') AS acked \gset
COMMIT;
SELECT is((SELECT lag_positions FROM eventstore.subscriptions WHERE name = 'st_live'), 0::bigint,
          'acknowledged: lag_positions 0 again');
-- lag_positions is head_position minus the checkpoint's position, an upper
-- bound that counts positions the filter skips; lag_events counts the
-- matching events after the checkpoint and is 0 when caught up.
SELECT 'x' AS x FROM eventstore.append_event('subx-2', 'NotMine') \gset
BEGIN;
SELECT is_empty($$SELECT * FROM eventstore.poll('st_live')$$, 'the newest event does not match the filter');
SELECT eventstore.ack('st_live') AS acked \gset
COMMIT;
SELECT is((SELECT lag_events FROM eventstore.subscriptions WHERE name = 'st_live'), 0::bigint,
          'caught up, newest event filtered out: lag_events 0');
SELECT is((SELECT lag_positions FROM eventstore.subscriptions WHERE name = 'st_live'), 1::bigint,
          '  and lag_positions, an upper bound, counts the skipped position');

-- 6. from_position: 0 = all history then live, n = history after n, then
-- live, NULL = live only; history cursors are (0/0, position, position).
SELECT global_position AS h1 FROM eventstore.append_event('subh-1', 'H1') \gset
SELECT 'x' AS x FROM eventstore.append('subh-1', '[{"type": "H2"}, {"type": "H3"}]') \gset
SELECT 'x' AS x FROM eventstore.append_event('subhx-1', 'SubHType') \gset
SELECT eventstore.create_subscription('st_h0', stream_prefix => 'subh-', from_position => 0) AS created \gset
SELECT eventstore.create_subscription('st_hn', stream_prefix => 'subh-', from_position => :h1) AS created \gset
SELECT eventstore.create_subscription('st_hnull', stream_prefix => 'subh-') AS created \gset
SELECT eventstore.create_subscription('st_hfar', stream_prefix => 'subh-', from_position => :h1 + 1000000) AS created \gset
SELECT eventstore.create_subscription('st_htype', event_types => '{SubHType,H3}', from_position => 0) AS created \gset
SELECT is((SELECT array_agg(row(name, from_position - :h1, (checkpoint).lsn, (checkpoint).seq - :h1)::text ORDER BY name)
             FROM eventstore.subscriptions WHERE name IN ('st_hn', 'st_hfar')),
          ARRAY['(st_hfar,1000000,0/0,1000000)', '(st_hn,0,0/0,0)'],
          'from_position n: the checkpoint starts at (0/0, n, n)');
SELECT global_position AS l1 FROM eventstore.append_event('subh-2', 'L1') \gset
SELECT 'x' AS x FROM eventstore.append_event('subhx-2', 'SubHType') \gset

BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_h0', 2)$$,
                  $$VALUES ('subh-1', 1::bigint, 'H1'), ('subh-1', 2::bigint, 'H2')$$,
                  'from 0: history first (page 1)');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_h0', 2)$$,
                  $$VALUES ('subh-1', 3::bigint, 'H3')$$,
                  'from 0: history (page 2, the rest of it)');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_h0', 2)$$,
                  $$VALUES ('subh-2', 1::bigint, 'L1')$$,
                  'from 0: then live');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_h0')$$, 'from 0: then nothing');
ROLLBACK;
SELECT is((SELECT array_agg(row((cursor).lsn, (cursor).seq - :h1, (cursor).position - :h1)::text)
             FROM eventstore.poll('st_h0') WHERE stream = 'subh-1'),
          ARRAY['(0/0,0,0)', '(0/0,1,1)', '(0/0,2,2)'],
          'history cursors are (0/0, position, position)');
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_h0')$$,
                  $$VALUES ('subh-1', 1::bigint, 'H1'), ('subh-1', 2::bigint, 'H2'), ('subh-1', 3::bigint, 'H3')$$,
                  'from 0: one poll returns history only');
SELECT eventstore.ack('st_h0') AS acked \gset
COMMIT;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_h0')$$, $$VALUES ('subh-2', 1::bigint, 'L1')$$,
                  'from 0, history acknowledged: live');
SELECT cursor AS c_l1 FROM eventstore.poll('st_h0') \gset
SELECT eventstore.ack('st_h0', :'c_l1') AS acked \gset
SELECT eventstore.ack('st_h0', ROW('0/0', :h1 + 2, :h1 + 2)::eventstore.cursor) AS acked \gset
SELECT is((SELECT checkpoint::text FROM eventstore.subscriptions WHERE name = 'st_h0'), :'c_l1',
          'a history cursor never moves a live checkpoint back');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_h0')$$, 'from 0: everything exactly once');

SELECT results_eq($$SELECT * FROM pg_temp.evs('st_hn')$$,
                  $$VALUES ('subh-1', 2::bigint, 'H2'), ('subh-1', 3::bigint, 'H3')$$,
                  'from n: the history after position n');
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_hn')$$,
                  $$VALUES ('subh-1', 2::bigint, 'H2'), ('subh-1', 3::bigint, 'H3')$$,
                  'from n: history');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_hn')$$, $$VALUES ('subh-2', 1::bigint, 'L1')$$,
                  'from n: then live');
SELECT eventstore.ack('st_hn') AS acked \gset
COMMIT;
SELECT is_empty($$SELECT * FROM eventstore.poll('st_hn')$$, 'from n: everything exactly once');

SELECT results_eq($$SELECT * FROM pg_temp.evs('st_hnull')$$, $$VALUES ('subh-2', 1::bigint, 'L1')$$,
                  'from NULL: live only');
SELECT is_empty($$SELECT * FROM eventstore.poll('st_hfar')$$,
                'from n beyond the last position: nothing at or below n, not even live');
BEGIN;
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_htype')$$,
                  $$SELECT stream COLLATE "default", stream_version, event_type COLLATE "default" FROM eventstore.events
                     WHERE event_type IN ('SubHType', 'H3') AND global_position < $$ || :l1 || $$
                     ORDER BY global_position$$,
                  'from 0 with event_types: the history of those types');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_htype')$$, $$VALUES ('subhx-2', 1::bigint, 'SubHType')$$,
                  'then live');
ROLLBACK;

SELECT eventstore.drop_subscription('st_h0') AS dropped \gset
SELECT eventstore.drop_subscription('st_hn') AS dropped \gset
SELECT eventstore.drop_subscription('st_hnull') AS dropped \gset
SELECT eventstore.drop_subscription('st_hfar') AS dropped \gset
SELECT eventstore.drop_subscription('st_htype') AS dropped \gset

-- 7. Filters on live events: event types, prefix and types, several
-- prefixes are not possible (one prefix), seq counts filtered events too.
SELECT eventstore.create_subscription('st_types', event_types => '{SubT1,SubT3}') AS created \gset
SELECT eventstore.create_subscription('st_both', stream_prefix => 'subt-a', event_types => '{SubT2,SubT3}') AS created \gset
SELECT 'x' AS x FROM eventstore.append('subt-a1', '[{"type": "SubT1"}, {"type": "SubT2"}, {"type": "SubT3"}]') \gset
SELECT 'x' AS x FROM eventstore.append('subt-b1', '[{"type": "SubT3"}, {"type": "SubT2"}]') \gset
SELECT 'x' AS x FROM eventstore.append_event('subt-a2', 'SubT2') \gset
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_types')$$,
                  $$VALUES ('subt-a1', 1::bigint, 'SubT1'), ('subt-a1', 3::bigint, 'SubT3'), ('subt-b1', 1::bigint, 'SubT3')$$,
                  'event_types: only those types');
SELECT results_eq($$SELECT (cursor).seq FROM eventstore.poll('st_types')$$, ARRAY[0::bigint, 2, 0],
                  'seq counts the filtered events of the transaction too');
SELECT results_eq($$SELECT * FROM pg_temp.evs('st_both')$$,
                  $$VALUES ('subt-a1', 2::bigint, 'SubT2'), ('subt-a1', 3::bigint, 'SubT3'), ('subt-a2', 1::bigint, 'SubT2')$$,
                  'stream_prefix and event_types: both must match');

-- Many transactions the filter skips (151, each its own): the
-- subscription gets past them (its slot is moved on) and the matching
-- event behind them arrives.
SELECT eventstore.create_subscription('st_sparse', stream_prefix => 'subsparse-') AS created \gset
\o /dev/null
SELECT format('SELECT eventstore.append_event(%L, %L)', 'subdense-' || g, 'Dense') FROM generate_series(1, 150) g \gexec
\o
SELECT 'x' AS x FROM eventstore.append_event('subdense-last', 'Dense') \gset
SELECT 'x' AS x FROM eventstore.append_event('subsparse-1', 'Sparse') \gset
SELECT results_eq($$SELECT stream FROM eventstore.poll('st_sparse', 10)$$, ARRAY['subsparse-1'],
                  'poll(10) delivers the matching event behind 150 skipped transactions');
SELECT results_eq($$SELECT stream FROM eventstore.poll('st_sparse', 10)$$, ARRAY['subsparse-1'],
                  'the next poll(10) does');

-- 8. A lost slot: the view says so, poll refuses with 55000, drop works.
SELECT eventstore.create_subscription('st_lost') AS created \gset
SELECT pg_drop_replication_slot(slot_name) FROM eventstore.subscriptions WHERE name = 'st_lost' \gset
SELECT is((SELECT row(wal_status, lag_positions)::text FROM eventstore.subscriptions WHERE name = 'st_lost'),
          '(lost,)', 'a subscription without its slot: wal_status lost, lag_positions NULL');
SELECT throws_ok($$SELECT * FROM eventstore.poll('st_lost')$$, '55000',
                 'subscription "st_lost" has lost its replication slot "eventstore_' || :dboid || '_st_lost"',
                 'poll of a subscription without its slot is 55000');
SELECT eventstore.drop_subscription('st_lost') AS dropped \gset
SELECT is((SELECT count(*) FROM eventstore.subscriptions WHERE name = 'st_lost'), 0::bigint,
          'drop_subscription of a subscription without its slot');

-- 9. KNOWN BUG: after acknowledging all of a transaction with at least
-- max_count + 100 events, poll(name, max_count) returns nothing forever:
-- it peeks max_count + 100 lines, all of them that transaction's.
SELECT eventstore.create_subscription('st_big', stream_prefix => 'subbig-') AS created \gset
SELECT 'x' AS x FROM eventstore.append('subbig-1',
    (SELECT jsonb_agg(jsonb_build_object('type', 'Big', 'data', jsonb_build_object('g', g)))
       FROM generate_series(1, 150) g)) \gset
BEGIN;
SELECT is((SELECT count(*) FROM eventstore.poll('st_big', 150)), 150::bigint, 'a transaction of 150 events');
SELECT eventstore.ack('st_big') AS acked \gset
COMMIT;
SELECT 'x' AS x FROM eventstore.append_event('subbig-2', 'After') \gset
SELECT results_eq($$SELECT stream FROM eventstore.poll('st_big', 10)$$, ARRAY['subbig-2'],
                  'poll(10) delivers the event after the big transaction');
SELECT results_eq($$SELECT stream FROM eventstore.poll('st_big', 60)$$, ARRAY['subbig-2'],
                  'poll(60) delivers it');

-- 10. create_publication: a publication of eventstore.events, inserts only.
BEGIN;
SELECT lives_ok($$SELECT eventstore.create_publication()$$, 'create_publication()');
SELECT is((SELECT row(pubinsert, pubupdate, pubdelete, pubtruncate, puballtables)::text
             FROM pg_publication WHERE pubname = 'eventstore_events'),
          '(t,f,f,f,f)', 'publication eventstore_events publishes inserts only');
SELECT is(ARRAY(SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'eventstore_events'),
          ARRAY['eventstore.events'], 'of eventstore.events only');
SELECT lives_ok($$SELECT eventstore.create_publication('My Pub')$$, 'create_publication(name) quotes the name');
SELECT is((SELECT pubinsert AND NOT pubupdate FROM pg_publication WHERE pubname = 'My Pub'), true, 'publication "My Pub"');
SELECT throws_ok($$SELECT eventstore.create_publication()$$, '42710', NULL, 'a second eventstore_events is 42710');
ROLLBACK;

-- 11. restart_lsn follows the acknowledgements.  Every poll decodes from
-- the slot's restart_lsn, which moves only when decoding passes a
-- running-transactions record; PostgreSQL logs one every 15 s (bgwriter) or
-- at a checkpoint.  poll logs one itself (eventstore_internal.log_running_xacts)
-- when restart_lsn trails confirmed_flush_lsn by more than 256 kB, and the
-- next polls' advance applies it.  60 cycles of ~45 kB of appends + poll +
-- ack (~2.7 MB) in ~2 s: restart_lsn moves every few cycles and never
-- trails by much more than 256 kB plus a few cycles; without the records
-- it would stay put (or move once, if the bgwriter's record fell inside).
SELECT function_privs_are('eventstore_internal', 'log_running_xacts', ARRAY['name'], 'public', ARRAY[]::name[],
                          'PUBLIC cannot execute log_running_xacts');
SELECT is(eventstore_internal.log_running_xacts('no_such_slot'), NULL, 'log_running_xacts of an unknown slot logs nothing');
SELECT eventstore.create_subscription('st_restart', stream_prefix => 'subrestart-') AS created \gset
SELECT slot_name AS restart_slot FROM eventstore.subscription WHERE name = 'st_restart' \gset
SELECT restart_lsn AS restart0 FROM pg_replication_slots WHERE slot_name = :'restart_slot' \gset
SELECT is(eventstore_internal.log_running_xacts(:'restart_slot'), NULL, 'log_running_xacts of a slot that does not lag logs nothing');
-- max_count up to the integer maximum (0.1.0 overflowed its peek window, 22003)
SELECT is((SELECT count(*) FROM eventstore.poll('st_restart', 2147483647)), 0::bigint,
          'poll with max_count 2147483647');
SELECT is((SELECT count(*) FROM eventstore.poll('st_restart', 1073741824)), 0::bigint,
          'poll with max_count 1073741824');
CREATE TEMP TABLE restart_log (cycle int, polled bigint, restart_lsn pg_lsn, confirmed pg_lsn);
DO $$
DECLARE
    n bigint;
BEGIN
    FOR c IN 1..60 LOOP
        -- 25 events of ~1.3 kB of data each, one transaction
        PERFORM eventstore.append('subrestart-' || c,
            (SELECT jsonb_agg(jsonb_build_object('type', 'Tick', 'data', jsonb_build_object('pad',
                        (SELECT string_agg(md5(c || '-' || e || '-' || k), '') FROM generate_series(1, 40) AS k))))
               FROM generate_series(1, 25) AS e));
        COMMIT;
        SELECT count(*) INTO n FROM eventstore.poll('st_restart', 1000);
        PERFORM eventstore.ack('st_restart');
        COMMIT;
        INSERT INTO restart_log
        SELECT c, n, r.restart_lsn, r.confirmed_flush_lsn
          FROM pg_replication_slots AS r JOIN eventstore.subscription AS s USING (slot_name)
         WHERE s.name = 'st_restart';
        COMMIT;
    END LOOP;
END
$$;
SELECT is((SELECT sum(polled) FROM restart_log), 1500::numeric, 'every cycle delivered its 25 events');
SELECT cmp_ok((SELECT pg_wal_lsn_diff(max(confirmed), :'restart0') FROM restart_log), '>', 2 * 1024 * 1024::numeric,
              'confirmed_flush_lsn moved more than 2 MB');
SELECT cmp_ok((SELECT count(DISTINCT restart_lsn) FROM restart_log), '>=', 5::bigint,
              'restart_lsn moved at least 4 times');
SELECT cmp_ok((SELECT max(pg_wal_lsn_diff(confirmed, restart_lsn)) FROM restart_log WHERE cycle > 10), '<', 768 * 1024::numeric,
              'restart_lsn never trailed confirmed_flush_lsn by 768 kB or more after the first cycles');

-- 12. The recovery position: every matching event at or below it was
-- acknowledged (or committed before the subscription).  Commit order
-- differing from position order, and a lost slot recreated from it: see
-- test/t/033.
CREATE FUNCTION rec_pos(sub text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT recovery_position FROM eventstore.subscriptions WHERE name = sub $$;
CREATE FUNCTION rec_consume(sub text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM eventstore.poll(sub);
    PERFORM eventstore.ack(sub);
    RETURN n;
END
$$;
SELECT eventstore.head_position() AS rec_head0 \gset
SELECT eventstore.create_subscription('st_rec', stream_prefix => 'rec-') AS created \gset
SELECT is(rec_pos('st_rec'), :rec_head0::bigint, 'a new live subscription recovers from the head before its slot');
SELECT global_position AS rec_p1 FROM eventstore.append_event('rec-1', 'A') \gset
SELECT is(rec_consume('st_rec'), 1::bigint, 'a poll delivers the first event');
SELECT is(rec_pos('st_rec'), :rec_head0::bigint, '  acknowledging it moves nothing yet: the poll sampled the head after it');
SELECT is(rec_consume('st_rec'), 0::bigint, 'an empty poll');
SELECT is(rec_pos('st_rec'), :rec_p1::bigint, '  finds everything before the sample acknowledged: the recovery position is the sampled head');
SELECT global_position AS rec_p2 FROM eventstore.append_event('rec-1', 'B') \gset
SELECT is(rec_consume('st_rec'), 1::bigint, 'the next poll samples the head again and delivers one event');
SELECT is(rec_pos('st_rec'), :rec_p1::bigint, '  its acknowledgement is before the sample');
SELECT global_position AS rec_p3 FROM eventstore.append_event('rec-1', 'C') \gset
SELECT global_position AS rec_other FROM eventstore.append_event('other-1', 'D') \gset
SELECT is(rec_consume('st_rec'), 1::bigint, 'a later event is delivered');
SELECT is(rec_pos('st_rec'), :rec_p2::bigint, '  and acknowledging it, past the sample, makes the sampled head the recovery position');
SELECT eventstore.create_subscription('st_rec_hist', stream_prefix => 'rec-', from_position => 0) AS created \gset
SELECT is(rec_pos('st_rec_hist'), 0::bigint, 'a subscription from position 0 recovers from 0');
SELECT is(rec_consume('st_rec_hist'), 3::bigint, 'its history is delivered');
SELECT is(rec_pos('st_rec_hist'), :rec_p3::bigint, '  and acknowledged history moves the recovery position to the last event');
SELECT eventstore.create_subscription('st_rec_from', stream_prefix => 'rec-', from_position => :rec_p2) AS created \gset
SELECT is(rec_pos('st_rec_from'), :rec_p2::bigint, 'a subscription from position n recovers from n');
SELECT eventstore.drop_subscription('st_rec') AS dropped \gset
SELECT eventstore.drop_subscription('st_rec_hist') AS dropped \gset
SELECT eventstore.drop_subscription('st_rec_from') AS dropped \gset

-- Clean up: drop every subscription; no slot is left.
SELECT eventstore.drop_subscription('st_live') AS dropped \gset
SELECT eventstore.drop_subscription('st_types') AS dropped \gset
SELECT eventstore.drop_subscription('st_both') AS dropped \gset
SELECT eventstore.drop_subscription('st_sparse') AS dropped \gset
SELECT eventstore.drop_subscription('st_big') AS dropped \gset
SELECT eventstore.drop_subscription('st_restart') AS dropped \gset
SELECT is((SELECT count(*) FROM eventstore.subscriptions), 0::bigint, 'every subscription is dropped');
SELECT is((SELECT count(*) FROM pg_replication_slots), :slots0::bigint, 'and every slot');
SELECT * FROM finish();
