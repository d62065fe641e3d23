\unset ECHO
\i test/pgtap_setup.psql
-- Projections and checkpoints (DESIGN.md section 6): checkpoints with
-- compare-and-set, snapshots, mark_processed, create_projection's checks,
-- inline projections (history at creation, in the appending transaction,
-- a failing handler fails the append, filters, drop), async projections
-- through run_projection (batches in the caller's transaction, rollback,
-- reset and rebuild), the projections view with errors, the search_path
-- and the role handlers run with.
--
-- run_projection and create_projection read history through the gap-safe
-- feed, which only shows committed events (an open append holds the
-- horizon back even for its own transaction), so the fixture is committed
-- in a database of its own, dropped at the end; the tests run in one
-- transaction that is rolled back.  No worker runs under pg_regress
-- (test/eventstore.conf has no eventstore.worker_databases); the worker
-- itself is tested in test/t/04x_*.pl.
\set proj_home :DBNAME
DROP DATABASE IF EXISTS eventstore_projections_test WITH (FORCE);
CREATE DATABASE eventstore_projections_test TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
\c eventstore_projections_test
\i test/pgtap_setup.psql

-- Fixture, committed: 10 events, other-1 in the middle of the acct-*
-- streams so that filters have something to skip.
DO $$
BEGIN
	PERFORM eventstore.append('acct-1', '[
		{"type": "Opened",    "data": {"owner": "ann"}},
		{"type": "Deposited", "data": {"amount": 10}},
		{"type": "Deposited", "data": {"amount": 20}},
		{"type": "Withdrawn", "data": {"amount": 5}},
		{"type": "Deposited", "data": {"amount": 7}}]');
	PERFORM eventstore.append('acct-2', '[
		{"type": "Opened",    "data": {"owner": "bob"}},
		{"type": "Deposited", "data": {"amount": 100}}]');
	PERFORM eventstore.append_event('other-1', 'Noise');
	PERFORM eventstore.append('acct-3', '[
		{"type": "Opened",    "data": {"owner": "cy"}},
		{"type": "Deposited", "data": {"amount": 1}}]');
END
$$;

BEGIN;
SELECT plan(189);

-- The position of a stream's event at a version.
CREATE FUNCTION pg_temp.pos(s text, v bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT global_position FROM eventstore.read_stream(s, v, 1)
$$;
SELECT eventstore.head_position() AS head \gset
SELECT is(:head::bigint, pg_temp.pos('acct-3', 2), 'fixture: the head is the last event, acct-3 version 2');

-- ---------------------------------------------------------------------
-- 1. Checkpoints
SELECT is(eventstore.get_checkpoint('cp_none'), 0::bigint, 'get_checkpoint of an unknown projection is 0');
SELECT lives_ok($$SELECT eventstore.save_checkpoint('cp_a', 5)$$, 'save_checkpoint without expectation');
SELECT is(eventstore.get_checkpoint('cp_a'), 5::bigint, 'get_checkpoint returns the saved position');
SELECT lives_ok($$SELECT eventstore.save_checkpoint('cp_a', 3)$$, 'save_checkpoint without expectation may move back');
SELECT is(eventstore.get_checkpoint('cp_a'), 3::bigint, '  and it did');
SELECT lives_ok($$SELECT eventstore.save_checkpoint('cp_a', 7, expected_position => 3)$$,
    'compare-and-set with the right expectation');
SELECT is(eventstore.get_checkpoint('cp_a'), 7::bigint, '  moves the checkpoint');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_a', 9, expected_position => 3)$$,
    'ES004', 'checkpoint of "cp_a" is not at the expected position', 'compare-and-set with a stale expectation is ES004');
SELECT is(eventstore.get_checkpoint('cp_a'), 7::bigint, '  and leaves the checkpoint alone');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_a', 9, expected_position => 0)$$,
    'ES004', NULL, 'expected_position 0 when a checkpoint exists is ES004');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_none', 9, expected_position => 4)$$,
    'ES004', NULL, 'expected_position 4 when there is no checkpoint is ES004');
SELECT is(eventstore.get_checkpoint('cp_none'), 0::bigint, '  and saves nothing');
SELECT lives_ok($$SELECT eventstore.save_checkpoint('cp_b', 4, expected_position => 0)$$,
    'expected_position 0 when there is no checkpoint creates it');
SELECT is(eventstore.get_checkpoint('cp_b'), 4::bigint, '  at the position');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_a', -1)$$, '22023', NULL, 'a negative position is 22023');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_a', 8, expected_position => -1)$$, '22023', NULL,
    'a negative expected_position is 22023');
SELECT throws_ok($$SELECT eventstore.save_checkpoint(NULL, 1)$$, '22004', NULL, 'save_checkpoint: a NULL projection is 22004');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('cp_a', NULL)$$, '22004', NULL, 'save_checkpoint: a NULL position is 22004');
SELECT throws_ok($$SELECT eventstore.get_checkpoint(NULL)$$, '22004', NULL, 'get_checkpoint: a NULL projection is 22004');
SELECT throws_ok($$SELECT eventstore.save_checkpoint('', 1)$$, '22023', NULL, 'an empty projection name is 22023');
SELECT is(eventstore.get_checkpoint('cp_a'), 7::bigint, 'no failed call moved the checkpoint');
SAVEPOINT cp;
DO $$ BEGIN PERFORM eventstore.save_checkpoint('cp_a', 100); END $$;
ROLLBACK TO SAVEPOINT cp;
SELECT is(eventstore.get_checkpoint('cp_a'), 7::bigint, 'a checkpoint saved in a rolled-back savepoint is undone');

-- ---------------------------------------------------------------------
-- 2. Snapshots
SELECT is_empty($$SELECT * FROM eventstore.load_snapshot('acct-1')$$, 'load_snapshot without a snapshot returns no row');
SELECT lives_ok($$SELECT eventstore.save_snapshot('acct-1', 3, '{"balance": 30}')$$, 'save_snapshot at version 3');
SELECT results_eq($$SELECT version, state FROM eventstore.load_snapshot('acct-1')$$,
    $$VALUES (3::bigint, '{"balance": 30}'::jsonb)$$, 'load_snapshot returns it');
SELECT lives_ok($$SELECT eventstore.save_snapshot('acct-1', 2, '{"balance": 10}')$$, 'save_snapshot of an older version');
SELECT results_eq($$SELECT version, state FROM eventstore.load_snapshot('acct-1')$$,
    $$VALUES (3::bigint, '{"balance": 30}'::jsonb)$$, '  does not replace the newer snapshot');
SELECT lives_ok($$SELECT eventstore.save_snapshot('acct-1', 4, '{"balance": 25}')$$, 'save_snapshot of a newer version');
SELECT results_eq($$SELECT version, state FROM eventstore.load_snapshot('acct-1')$$,
    $$VALUES (4::bigint, '{"balance": 25}'::jsonb)$$, '  replaces the older one');
SELECT throws_ok($$SELECT eventstore.save_snapshot('acct-1', 6, '{}')$$, '22023', NULL,
    'a snapshot beyond the stream''s version is 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('acct-1', 0, '{}')$$, '22023', NULL, 'a snapshot at version 0 is 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('nosuch-1', 1, '{}')$$, '22023', NULL,
    'a snapshot of a stream that does not exist is 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('acct-1', 2, NULL)$$, '22004', NULL, 'a NULL state is 22004');
SELECT results_eq($$SELECT version FROM eventstore.load_snapshot('acct-1')$$, ARRAY[4::bigint],
    'failed saves left the snapshot alone');
-- Reading an aggregate: the snapshot, then the events after it.
SELECT results_eq(
    $$SELECT e.stream_version, e.event_type
        FROM eventstore.load_snapshot('acct-1') AS s,
             eventstore.read_stream('acct-1', from_version => s.version + 1) AS e$$,
    $$VALUES (5::bigint, 'Deposited'::text)$$,
    'load_snapshot + read_stream(from_version => version + 1) returns the events after the snapshot');
SELECT is(
    (SELECT (s.state->>'balance')::bigint + coalesce(sum(CASE e.event_type WHEN 'Deposited' THEN 1 WHEN 'Withdrawn' THEN -1 END
                                                      * (e.data->>'amount')::bigint), 0)
       FROM eventstore.load_snapshot('acct-1') AS s
       LEFT JOIN LATERAL eventstore.read_stream('acct-1', from_version => s.version + 1) AS e ON true
      GROUP BY s.state),
    (SELECT sum(CASE event_type WHEN 'Deposited' THEN 1 WHEN 'Withdrawn' THEN -1 ELSE 0 END
                * coalesce((data->>'amount')::bigint, 0))
       FROM eventstore.read_stream('acct-1')),
    'the balance folded from the snapshot equals the balance folded from the whole stream');

-- ---------------------------------------------------------------------
-- 3. mark_processed
SELECT is(eventstore.mark_processed('mailer', '00000000-0000-4000-8000-0000000000a1'), true, 'mark_processed: true the first time');
SELECT is(eventstore.mark_processed('mailer', '00000000-0000-4000-8000-0000000000a1'), false, 'mark_processed: false the second time');
SELECT is(eventstore.mark_processed('billing', '00000000-0000-4000-8000-0000000000a1'), true,
    'mark_processed: another consumer marks the same event for itself');
SAVEPOINT mp;
SELECT is(eventstore.mark_processed('mailer', '00000000-0000-4000-8000-0000000000a2'), true, 'mark_processed in a savepoint: true');
ROLLBACK TO SAVEPOINT mp;
SELECT is(eventstore.mark_processed('mailer', '00000000-0000-4000-8000-0000000000a2'), true,
    'after the savepoint rolled back it is true again');
SELECT is(eventstore.mark_processed('mailer', '00000000-0000-4000-8000-0000000000a2'), false, '  and then false');
SELECT throws_ok($$SELECT eventstore.mark_processed(NULL, '00000000-0000-4000-8000-0000000000a1')$$, '22004', NULL,
    'mark_processed: a NULL consumer is 22004');
SELECT throws_ok($$SELECT eventstore.mark_processed('mailer', NULL)$$, '22004', NULL, 'mark_processed: a NULL event_id is 22004');

-- ---------------------------------------------------------------------
-- 4. create_projection's checks.  The handlers of this file record each
-- event with current_user into a read model.  They name their tables
-- without a schema: they run with the search_path of the session that
-- created the projection.
CREATE TABLE ledger_rm (event_id uuid NOT NULL UNIQUE, position bigint NOT NULL, stream text NOT NULL,
                        version bigint NOT NULL, type text NOT NULL, who name NOT NULL);
CREATE FUNCTION ledger_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO ledger_rm VALUES (e.event_id, e.global_position, e.stream, e.stream_version, e.event_type, current_user);
END $$;
CREATE FUNCTION not_a_handler(e integer) RETURNS void LANGUAGE sql AS '';
CREATE FUNCTION returns_int(e eventstore.event) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION two_args(e eventstore.event, x integer) RETURNS void LANGUAGE sql AS '';

SELECT throws_ok($$SELECT eventstore.create_projection('Bad-Name', 'ledger_h(eventstore.event)')$$, '22023', NULL,
    'create_projection: upper case and "-" in a name are 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('', 'ledger_h(eventstore.event)')$$, '22023', NULL,
    'create_projection: an empty name is 22023');
SELECT throws_ok(format('SELECT eventstore.create_projection(%L, %L)', repeat('a', 41), 'ledger_h(eventstore.event)'),
    '22023', NULL, 'create_projection: a 41-character name is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'ledger_h(eventstore.event)', 'sync')$$, '22023', NULL,
    'create_projection: mode ''sync'' is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'not_a_handler(integer)')$$, '22023', NULL,
    'create_projection: a handler of integer is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'returns_int(eventstore.event)')$$, '22023', NULL,
    'create_projection: a handler returning integer is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'two_args(eventstore.event, integer)')$$, '22023', NULL,
    'create_projection: a handler with two arguments is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'ledger_h(eventstore.event)', stream_prefix => '')$$,
    '22023', NULL, 'create_projection: an empty stream_prefix is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection('p_bad', 'ledger_h(eventstore.event)', event_types => '{}')$$,
    '22023', NULL, 'create_projection: an empty event_types is 22023');
SELECT throws_ok($$SELECT eventstore.create_projection(NULL, 'ledger_h(eventstore.event)')$$, '22004', NULL,
    'create_projection: a NULL name is 22004');
SELECT is_empty($$SELECT * FROM eventstore.projections$$, 'no failed create_projection left a projection');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname LIKE 'es_projection%'),
    0::bigint, '  or a trigger');

-- ---------------------------------------------------------------------
-- 5. An async projection through run_projection, in this transaction.
SELECT lives_ok($$SELECT eventstore.create_projection('ledger', 'ledger_h(eventstore.event)', stream_prefix => 'acct-')$$,
    'create_projection of an async projection (the default mode)');
SELECT throws_ok($$SELECT eventstore.create_projection('ledger', 'ledger_h(eventstore.event)')$$, '42710', NULL,
    'create_projection of an existing name is 42710');
SELECT results_eq($$SELECT mode, stream_prefix, checkpoint, lag, last_error, error_count FROM eventstore.projections WHERE name = 'ledger'$$,
    format('VALUES (%L, %L, 0::bigint, %s::bigint, NULL::text, 0)', 'async', 'acct-', :head),
    'the projections view: async, checkpoint 0, lag = head, no error');
SELECT is(eventstore.get_checkpoint('ledger'), 0::bigint, 'its checkpoint is 0');
SELECT is_empty($$SELECT * FROM ledger_rm$$, 'an async projection applies nothing at creation');
SELECT throws_ok($$SELECT eventstore.run_projection('nosuch')$$, '42704', NULL, 'run_projection of an unknown projection is 42704');
SELECT throws_ok($$SELECT eventstore.reset_projection('nosuch')$$, '42704', NULL, 'reset_projection of an unknown projection is 42704');
SELECT throws_ok($$SELECT eventstore.drop_projection('nosuch')$$, '42704', NULL, 'drop_projection of an unknown projection is 42704');
SELECT throws_ok($$SELECT eventstore.run_projection('ledger', -1)$$, '22023', NULL, 'run_projection with a negative max_count is 22023');

SELECT is(eventstore.run_projection('ledger', 3), 3::bigint, 'run_projection(max_count => 3) applies 3 events');
SELECT results_eq($$SELECT stream, version FROM ledger_rm ORDER BY position$$,
    $$VALUES ('acct-1', 1::bigint), ('acct-1', 2::bigint), ('acct-1', 3::bigint)$$, '  the first three, in order');
SELECT is(eventstore.get_checkpoint('ledger'), pg_temp.pos('acct-1', 3), '  the checkpoint is at the third');
SELECT is((SELECT lag FROM eventstore.projections WHERE name = 'ledger'), :head - pg_temp.pos('acct-1', 3),
    '  the view shows the lag');
SAVEPOINT run;
SELECT is(eventstore.run_projection('ledger', 4), 4::bigint, 'run_projection in a savepoint applies 4 more');
SELECT is(eventstore.get_checkpoint('ledger'), pg_temp.pos('acct-2', 2), '  and moves the checkpoint');
ROLLBACK TO SAVEPOINT run;
SELECT is((SELECT count(*) FROM ledger_rm), 3::bigint, 'rolling back undoes the read model changes');
SELECT is(eventstore.get_checkpoint('ledger'), pg_temp.pos('acct-1', 3), '  and the checkpoint');
SELECT is(eventstore.run_projection('ledger'), 6::bigint, 'run_projection applies the remaining 6 (other-1 filtered out)');
SELECT is(eventstore.run_projection('ledger'), 0::bigint, 'then nothing is left');
SELECT results_eq(
    $$SELECT event_id, position, stream, version, type FROM ledger_rm ORDER BY position$$,
    $$SELECT event_id, global_position, stream COLLATE "default", stream_version, event_type COLLATE "default"
        FROM eventstore.events WHERE stream LIKE 'acct-%' ORDER BY global_position$$,
    'the read model holds every acct- event once, in position order');
SELECT results_eq($$SELECT checkpoint, lag FROM eventstore.projections WHERE name = 'ledger'$$,
    format('VALUES (%s::bigint, 0::bigint)', :head), 'the view: checkpoint at the head, lag 0');
SELECT results_eq($$SELECT DISTINCT who FROM ledger_rm$$, ARRAY[current_user], 'the handler ran as the creator');

-- Rebuild: clear the read model, reset to 0, run again: the same result.
CREATE TEMP TABLE ledger_before AS SELECT event_id, position, stream, version, type FROM ledger_rm;
SELECT throws_ok($$SELECT eventstore.reset_projection('ledger', -1)$$, '22023', NULL, 'reset_projection to a negative position is 22023');
DELETE FROM ledger_rm;
SELECT lives_ok($$SELECT eventstore.reset_projection('ledger', 0)$$, 'reset_projection(name, 0)');
SELECT is(eventstore.get_checkpoint('ledger'), 0::bigint, '  moves the checkpoint to 0');
SELECT is(eventstore.run_projection('ledger'), 9::bigint, 'run_projection after the reset applies all 9 again');
SELECT results_eq($$SELECT event_id, position, stream, version, type FROM ledger_rm ORDER BY position$$,
    $$SELECT * FROM ledger_before ORDER BY position$$, 'the rebuilt read model is identical');
SELECT lives_ok(format('SELECT eventstore.reset_projection(%L, %s)', 'ledger', pg_temp.pos('acct-2', 2)),
    'reset_projection to a position');
SELECT is(eventstore.get_checkpoint('ledger'), pg_temp.pos('acct-2', 2), '  moves the checkpoint there');
DELETE FROM ledger_rm WHERE position > pg_temp.pos('acct-2', 2);
SELECT is(eventstore.run_projection('ledger'), 2::bigint, '  and the projection goes on after it (acct-3)');
SELECT results_eq($$SELECT event_id, position, stream, version, type FROM ledger_rm ORDER BY position$$,
    $$SELECT * FROM ledger_before ORDER BY position$$, '  to the same read model');

-- A caught-up projection whose filter skips the newest events (the last
-- Opened is acct-3 version 1, the head is acct-3 version 2) is not behind.
CREATE FUNCTION noop_h(e eventstore.event) RETURNS void LANGUAGE sql AS '';
SELECT lives_ok($$SELECT eventstore.create_projection('opened', 'noop_h(eventstore.event)', event_types => '{Opened}')$$,
    'create_projection of a projection of Opened events');
SELECT is(eventstore.run_projection('opened'), 3::bigint, 'run_projection applies the 3 Opened events');
SELECT is(eventstore.run_projection('opened'), 0::bigint, '  and then nothing: it is caught up');
SELECT is((SELECT lag FROM eventstore.projections WHERE name = 'opened'), 0::bigint, '  the view shows lag 0');
SELECT lives_ok($$SELECT eventstore.drop_projection('opened')$$, 'drop_projection');

-- ---------------------------------------------------------------------
-- 6. Errors: a handler that fails on acct-1's 20.  run_projection fails
-- with the handler's error.  The worker's batch (_worker_run, called
-- directly here) applies the events before the failing one, records the
-- error with a retry time and stalls there.
CREATE TABLE fragile_rm (event_id uuid NOT NULL UNIQUE, position bigint NOT NULL);
CREATE FUNCTION fragile_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF (e.data->>'amount')::int = 20 THEN
		RAISE EXCEPTION 'fragile cannot take 20' USING ERRCODE = 'P0001';
	END IF;
	INSERT INTO fragile_rm VALUES (e.event_id, e.global_position);
END $$;
SELECT lives_ok($$SELECT eventstore.create_projection('fragile', 'fragile_h(eventstore.event)', event_types => '{Deposited}')$$,
    'create_projection with an event_types filter');
SELECT throws_ok($$SELECT eventstore.run_projection('fragile')$$, 'P0001', 'fragile cannot take 20',
    'run_projection fails with the handler''s error');
SELECT is(eventstore.get_checkpoint('fragile'), 0::bigint, '  and applies nothing');
-- the CONTEXT of an error, or NULL when q succeeds
CREATE FUNCTION pg_temp.error_context(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS c = PG_EXCEPTION_CONTEXT;
    RETURN c;
END $$;
SELECT matches(pg_temp.error_context($$SELECT eventstore.run_projection('fragile')$$),
    format('eventstore projection "fragile", the event at position %s$', pg_temp.pos('acct-1', 3)),
    '  its CONTEXT names the failing event''s position');
SELECT is(eventstore_internal.worker_run('fragile', 1000, 100), 1::bigint, 'the worker''s batch applies the one event before the failing one');
SELECT results_eq($$SELECT position FROM fragile_rm$$, ARRAY[pg_temp.pos('acct-1', 2)], '  acct-1''s first deposit');
SELECT results_eq(
    $$SELECT checkpoint, lag, last_error, error_count, retry_at > now() FROM eventstore.projections WHERE name = 'fragile'$$,
    format('VALUES (%s::bigint, %s::bigint, %L, 1, true)', pg_temp.pos('acct-1', 2), :head - pg_temp.pos('acct-1', 2),
           'fragile cannot take 20'),
    'the view: checkpoint before the failing event, lag, last_error, error_count 1, retry_at in the future');
SELECT (SELECT retry_at FROM eventstore.projections WHERE name = 'fragile') AS retry1 \gset
SELECT is(eventstore_internal.worker_run('fragile', 1000, 100), 0::bigint, 'the next batch applies nothing');
SELECT results_eq($$SELECT checkpoint, error_count FROM eventstore.projections WHERE name = 'fragile'$$,
    format('VALUES (%s::bigint, 2)', pg_temp.pos('acct-1', 2)), '  stays at the failing event, error_count 2');
SELECT cmp_ok((SELECT retry_at FROM eventstore.projections WHERE name = 'fragile'), '>', :'retry1'::timestamptz,
    '  and backs off further');
CREATE OR REPLACE FUNCTION fragile_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO fragile_rm VALUES (e.event_id, e.global_position);
END $$;
SELECT is(eventstore_internal.worker_run('fragile', 1000, 100), 4::bigint, 'after the fix the batch applies the remaining 4 deposits');
SELECT results_eq($$SELECT checkpoint, last_error, error_count, retry_at FROM eventstore.projections WHERE name = 'fragile'$$,
    format('VALUES (%s::bigint, NULL::text, 0, NULL::timestamptz)', pg_temp.pos('acct-3', 2)), '  and clears the error');
SELECT results_eq($$SELECT event_id FROM fragile_rm ORDER BY position$$,
    $$SELECT event_id FROM eventstore.events WHERE event_type = 'Deposited' ORDER BY global_position$$,
    'every deposit is in the read model once, none skipped');
SELECT lives_ok($$SELECT eventstore_internal.worker_failed('ledger', 'simulated', 100)$$, 'setup: an error recorded on ledger');
SELECT lives_ok($$SELECT eventstore.reset_projection('ledger', 0)$$, 'reset_projection');
SELECT results_eq($$SELECT last_error, error_count, retry_at FROM eventstore.projections WHERE name = 'ledger'$$,
    $$VALUES (NULL::text, 0, NULL::timestamptz)$$, '  clears the error');

-- ---------------------------------------------------------------------
-- 6b. Batch handlers: handler(events eventstore.event[]) gets a batch's
-- events in position order in one call, with the guarantees of a
-- per-event handler; a failing batch is narrowed to the failing event.
CREATE TABLE batch_rm (event_id uuid PRIMARY KEY, position bigint NOT NULL, call bigint NOT NULL, idx bigint NOT NULL);
CREATE SEQUENCE batch_calls;
CREATE FUNCTION batch_h(events eventstore.event[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c bigint := nextval('batch_calls');
BEGIN
    INSERT INTO batch_rm SELECT u.event_id, u.global_position, c, u.ordinality
      FROM unnest(events) WITH ORDINALITY AS u;
END $$;
SELECT lives_ok($$SELECT eventstore.create_projection('batched', 'batch_h(eventstore.event[])')$$,
    'create_projection with a batch handler');
SELECT is(eventstore.run_projection('batched'), 10::bigint, 'run_projection applies the 10 events');
SELECT is((SELECT count(DISTINCT call) FROM batch_rm), 1::bigint, '  in one call of the batch handler');
SELECT results_eq($$SELECT position FROM batch_rm ORDER BY idx$$,
    $$SELECT global_position FROM eventstore.read_all(0, 100)$$, '  every event once, in position order');
SELECT is(eventstore.get_checkpoint('batched'), :head::bigint, '  the checkpoint is at the head');
SELECT is(eventstore.run_projection('batched'), 0::bigint, '  and the next batch applies nothing');
SELECT lives_ok($$SELECT eventstore.reset_projection('batched')$$, 'reset_projection of the batch projection');
TRUNCATE batch_rm;
SELECT is(eventstore.run_projection('batched', 4), 4::bigint, 'run_projection with max_count 4 applies 4 events');
SELECT results_eq($$SELECT count(*), count(DISTINCT call), max(position) FROM batch_rm$$,
    format('VALUES (4::bigint, 1::bigint, %s::bigint)', pg_temp.pos('acct-1', 4)), '  the first 4, in one call');
SELECT is(eventstore.get_checkpoint('batched'), pg_temp.pos('acct-1', 4), '  checkpointed after the 4th');
SELECT is(eventstore.run_projection('batched'), 6::bigint, '  the next batch applies the other 6');
SELECT is((SELECT count(*) FROM batch_rm), 10::bigint, '  each once');
SELECT throws_ok($$SELECT eventstore.create_projection('batched_inline', 'batch_h(eventstore.event[])', 'inline')$$,
    '0A000', 'an inline projection cannot have a batch handler', 'an inline projection with a batch handler is refused');
CREATE FUNCTION texts_h(t text[]) RETURNS void LANGUAGE sql AS '';
SELECT throws_ok($$SELECT eventstore.create_projection('texts', 'texts_h(text[])')$$,
    '22023', 'function public.texts_h(text[]) cannot be a projection handler', 'a handler of another array type is refused');

-- A batch handler failing on acct-1's 20 (its third event), after it
-- wrote the rows of the whole batch: bisection finds that event, the two
-- before it are applied and checkpointed, nothing of the failing calls
-- remains.
CREATE TABLE fragile_batch_rm (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE FUNCTION fragile_batch_h(events eventstore.event[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fragile_batch_rm SELECT u.event_id, u.global_position FROM unnest(events) AS u;
    IF EXISTS (SELECT FROM unnest(events) AS u WHERE (u.data->>'amount')::int = 20) THEN
        RAISE EXCEPTION 'fragile batch cannot take 20' USING ERRCODE = 'P0001';
    END IF;
END $$;
SELECT lives_ok($$SELECT eventstore.create_projection('fragile_batch', 'fragile_batch_h(eventstore.event[])')$$,
    'create_projection with a failing batch handler');
SELECT throws_ok($$SELECT eventstore.run_projection('fragile_batch')$$, 'P0001', 'fragile batch cannot take 20',
    'run_projection fails with the batch handler''s error');
SELECT matches(pg_temp.error_context($$SELECT eventstore.run_projection('fragile_batch')$$),
    format('eventstore projection "fragile_batch", the event at position %s$', pg_temp.pos('acct-1', 3)),
    '  its CONTEXT names the failing event''s position');
SELECT is((SELECT count(*) FROM fragile_batch_rm), 0::bigint, '  and applies nothing');
SELECT is(eventstore_internal.worker_run('fragile_batch', 1000, 100), 2::bigint,
    'the worker''s batch applies the two events before the failing one');
SELECT results_eq($$SELECT position FROM fragile_batch_rm ORDER BY position$$,
    ARRAY[pg_temp.pos('acct-1', 1), pg_temp.pos('acct-1', 2)], '  and only them');
SELECT results_eq($$SELECT checkpoint, last_error, error_count FROM eventstore.projections WHERE name = 'fragile_batch'$$,
    format('VALUES (%s::bigint, %L, 1)', pg_temp.pos('acct-1', 2), 'fragile batch cannot take 20'),
    '  checkpointed right before the failing event, the error recorded');
SELECT is(eventstore_internal.worker_run('fragile_batch', 1000, 100), 0::bigint, '  the next batch stalls there');
CREATE OR REPLACE FUNCTION fragile_batch_h(events eventstore.event[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fragile_batch_rm SELECT u.event_id, u.global_position FROM unnest(events) AS u;
END $$;
SELECT is(eventstore_internal.worker_run('fragile_batch', 1000, 100), 8::bigint, 'after the fix the batch applies the other 8');
SELECT results_eq($$SELECT event_id FROM fragile_batch_rm ORDER BY position$$,
    $$SELECT event_id FROM eventstore.read_all(0, 100)$$, '  every event once, none skipped');
SELECT results_eq($$SELECT checkpoint, last_error, error_count FROM eventstore.projections WHERE name = 'fragile_batch'$$,
    format('VALUES (%s::bigint, NULL::text, 0)', :head), '  at the head, the error cleared');

-- A handler that fails after CREATE OR REPLACE FUNCTION changed it in the
-- middle of a batch (here it replaces itself by a LANGUAGE sql function,
-- which PL/pgSQL, still cached, fails to compile on the next event): the
-- prefix is applied again with the function looked up anew (the cached one
-- pointed to what the failed compile freed, and the worker crashed; found
-- by TAP 043).
CREATE TABLE self_rm (position bigint PRIMARY KEY);
CREATE FUNCTION self_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO self_rm VALUES (e.global_position);
    IF (e.data->>'amount')::int = 20 THEN
        EXECUTE $f$CREATE OR REPLACE FUNCTION self_h(e eventstore.event) RETURNS void LANGUAGE sql
                   AS 'INSERT INTO self_rm VALUES ($1.global_position)'$f$;
    END IF;
END $$;
SELECT lives_ok($$SELECT eventstore.create_projection('self', 'self_h(eventstore.event)')$$,
    'create_projection of a handler that replaces itself');
SELECT is(eventstore_internal.worker_run('self', 1000, 100), 3::bigint,
    'the worker''s batch applies the events up to the one that replaced the handler');
SELECT results_eq($$SELECT checkpoint, last_error ~ 'syntax error' FROM eventstore.projections WHERE name = 'self'$$,
    format('VALUES (%s::bigint, true)', pg_temp.pos('acct-1', 3)), '  and records the next one''s error');
SELECT is(eventstore_internal.worker_run('self', 1000, 100), 7::bigint, '  the next batch runs the new handler');
SELECT is((SELECT count(*) FROM self_rm), 10::bigint, '  every event once');

-- ---------------------------------------------------------------------
-- 7. Handlers run as the projection's owner, not as the extension owner
-- nor as the caller of run_projection or of the append.
CREATE ROLE regress_es_projowner NOLOGIN;
GRANT USAGE ON SCHEMA eventstore TO regress_es_projowner;
GRANT EXECUTE ON FUNCTION eventstore.create_projection(text, regprocedure, text, text, text[]) TO regress_es_projowner;
-- the privilege to create inline projections (README, Privileges)
GRANT EXECUTE ON FUNCTION eventstore_internal.inline_projection() TO regress_es_projowner;
CREATE TABLE owned_rm (event_id uuid NOT NULL, projection text NOT NULL, who name NOT NULL, UNIQUE (event_id, projection));
GRANT INSERT ON owned_rm TO regress_es_projowner;
CREATE TABLE forbidden_rm (event_id uuid);
-- The handler cannot see which projection calls it; one handler per projection.
CREATE FUNCTION owned_async_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO owned_rm VALUES (e.event_id, 'owned_async', current_user)
$$;
CREATE FUNCTION owned_inline_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO owned_rm VALUES (e.event_id, 'owned_inline', current_user)
$$;
CREATE FUNCTION role_async_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO owned_rm VALUES (e.event_id, 'role_async', current_user)
$$;
CREATE FUNCTION forbidden_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO forbidden_rm VALUES (e.event_id)
$$;

SET LOCAL SESSION AUTHORIZATION regress_es_projowner;
SELECT lives_ok($$SELECT eventstore.create_projection('owned_async', 'owned_async_h(eventstore.event)', stream_prefix => 'acct-1')$$,
    'a role without superuser creates an async projection');
SELECT lives_ok($$SELECT eventstore.create_projection('owned_inline', 'owned_inline_h(eventstore.event)', 'inline', stream_prefix => 'acct-1')$$,
    '  and an inline one');
SELECT lives_ok($$SELECT eventstore.create_projection('forbidden', 'forbidden_h(eventstore.event)', stream_prefix => 'acct-1')$$,
    '  and one whose handler writes where it may not');
RESET SESSION AUTHORIZATION;
SELECT results_eq($$SELECT name, owner::text FROM eventstore.projections WHERE name IN ('owned_async', 'owned_inline', 'forbidden') ORDER BY name$$,
    $$VALUES ('forbidden', 'regress_es_projowner'), ('owned_async', 'regress_es_projowner'), ('owned_inline', 'regress_es_projowner')$$,
    'the view shows the owner');
SELECT is((SELECT count(*) FROM owned_rm WHERE projection = 'owned_inline' AND who = 'regress_es_projowner'), 5::bigint,
    'the inline history (acct-1''s 5 events) ran as the owner');
SELECT is(eventstore.run_projection('owned_async'), 5::bigint, 'run_projection by a superuser');
SELECT results_eq($$SELECT DISTINCT who FROM owned_rm WHERE projection = 'owned_async'$$,
    ARRAY['regress_es_projowner'::name], '  runs the handler as the owner');
SELECT throws_ok($$SELECT eventstore.run_projection('forbidden')$$, '42501', 'permission denied for table forbidden_rm',
    'a handler has the owner''s rights, not those of the superuser running the projection');

-- SET ROLE, the usual way to act as an application role, makes that
-- role the owner too.
SET LOCAL ROLE regress_es_projowner;
SELECT lives_ok($$SELECT eventstore.create_projection('role_async', 'role_async_h(eventstore.event)', stream_prefix => 'acct-1')$$,
    'create_projection after SET ROLE');
RESET ROLE;
SELECT is(eventstore.run_projection('role_async'), 5::bigint, 'run_projection');
SELECT ok((SELECT owner::text = 'regress_es_projowner' FROM eventstore.projections WHERE name = 'role_async'),
    'the owner is the role set with SET ROLE');
SELECT ok(NOT EXISTS (SELECT FROM owned_rm WHERE projection = 'role_async' AND who <> 'regress_es_projowner'),
    '  and its handler runs as that role');
SELECT lives_ok($$SELECT eventstore.drop_projection('role_async')$$, 'drop_projection');

-- ---------------------------------------------------------------------
-- 8. Inline projections.
CREATE TABLE inline_rm (event_id uuid PRIMARY KEY, position bigint NOT NULL, stream text NOT NULL,
                        type text NOT NULL);
CREATE FUNCTION inline_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO inline_rm VALUES (e.event_id, e.global_position, e.stream, e.event_type);
END $$;
CREATE TABLE deposits_rm (event_id uuid PRIMARY KEY, amount bigint NOT NULL);
CREATE FUNCTION deposits_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO deposits_rm VALUES (e.event_id, (e.data->>'amount')::bigint);
END $$;
CREATE FUNCTION veto_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF e.data ? 'veto' THEN
		RAISE EXCEPTION 'vetoed: %', e.data->>'veto' USING ERRCODE = 'P0001';
	END IF;
END $$;

SELECT lives_ok($$SELECT eventstore.create_projection('acct_inline', 'inline_h(eventstore.event)', 'inline', stream_prefix => 'acct-')$$,
    'create_projection of an inline projection with a stream_prefix');
SELECT lives_ok($$SELECT eventstore.create_projection('deposits', 'deposits_h(eventstore.event)', 'inline', event_types => '{Deposited}')$$,
    'create_projection of an inline projection with event_types');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass
             AND tgname IN ('es_projection_acct_inline', 'es_projection_deposits')), 2::bigint,
    'each inline projection has its trigger on eventstore.events');
SELECT results_eq($$SELECT event_id FROM inline_rm ORDER BY position$$,
    $$SELECT event_id FROM eventstore.events WHERE stream LIKE 'acct-%' ORDER BY global_position$$,
    'the history of acct- was applied at creation');
SELECT results_eq($$SELECT sum(amount) FROM deposits_rm$$, ARRAY[138::numeric],
    'the history of Deposited was applied at creation');
SELECT results_eq($$SELECT checkpoint, lag FROM eventstore.projections WHERE name = 'acct_inline'$$,
    format('VALUES (%s::bigint, 0::bigint)', :head), 'the view: an inline projection is at the head, lag 0');
SELECT is(eventstore.run_projection('acct_inline'), 0::bigint, 'run_projection of an inline projection returns 0');
DELETE FROM deposits_rm;
SELECT lives_ok($$SELECT eventstore.reset_projection('deposits', 0)$$, 'reset_projection(name, 0) of an inline projection');
SELECT results_eq($$SELECT count(*), sum(amount) FROM deposits_rm$$, $$VALUES (5::bigint, 138::numeric)$$,
    '  replays the history at once');

SELECT lives_ok($$SELECT eventstore.append_event('acct-1', 'Deposited', '{"amount": 1000}', event_id => '00000000-0000-4000-8000-00000000b001')$$,
    'append a deposit to acct-1');
SELECT results_eq($$SELECT stream, type FROM inline_rm WHERE event_id = '00000000-0000-4000-8000-00000000b001'$$,
    $$VALUES ('acct-1', 'Deposited')$$, '  the acct- projection applied it in the appending transaction');
SELECT results_eq($$SELECT amount FROM deposits_rm WHERE event_id = '00000000-0000-4000-8000-00000000b001'$$,
    ARRAY[1000::bigint], '  and so did the Deposited projection');
SELECT lives_ok($$SELECT eventstore.append('acct-2', '[{"type": "Withdrawn", "data": {"amount": 1}, "id": "00000000-0000-4000-8000-00000000b002"}]')$$,
    'append a withdrawal to acct-2');
SELECT is((SELECT count(*) FROM inline_rm WHERE event_id = '00000000-0000-4000-8000-00000000b002'), 1::bigint,
    '  the acct- projection applied it');
SELECT is((SELECT count(*) FROM deposits_rm WHERE event_id = '00000000-0000-4000-8000-00000000b002'), 0::bigint,
    '  the Deposited projection did not (event_types)');
SELECT lives_ok($$SELECT eventstore.append_event('other-1', 'Deposited', '{"amount": 3}', event_id => '00000000-0000-4000-8000-00000000b003')$$,
    'append a deposit to other-1');
SELECT is((SELECT count(*) FROM inline_rm WHERE event_id = '00000000-0000-4000-8000-00000000b003'), 0::bigint,
    '  the acct- projection did not apply it (stream_prefix)');
SELECT is((SELECT count(*) FROM deposits_rm WHERE event_id = '00000000-0000-4000-8000-00000000b003'), 1::bigint,
    '  the Deposited projection did');

-- The search_path of the appending session does not matter: handlers run
-- with the one their projection was created with, where inline_rm is found.
-- (A plain statement: pgTAP itself needs public in the search_path.)
SET LOCAL search_path = pg_catalog;
SELECT stream_version AS v_b004 FROM eventstore.append_event('acct-3', 'Deposited', '{"amount": 2}', event_id => '00000000-0000-4000-8000-00000000b004') \gset
RESET search_path;
SELECT is(:'v_b004'::bigint, 3::bigint, 'append with search_path = pg_catalog');
SELECT is((SELECT count(*) FROM inline_rm WHERE event_id = '00000000-0000-4000-8000-00000000b004'), 1::bigint,
    '  the handler still found its unqualified table');

-- A failing handler fails the append: nothing is written.
SELECT lives_ok($$SELECT eventstore.create_projection('veto', 'veto_h(eventstore.event)', 'inline')$$,
    'create_projection of an inline projection whose handler refuses "veto"');
SELECT count(*) AS events0 FROM eventstore.events \gset
SELECT count(*) AS inline0 FROM inline_rm \gset
SELECT throws_ok($$SELECT eventstore.append_event('acct-2', 'Deposited', '{"amount": 5, "veto": "no"}')$$,
    'P0001', 'vetoed: no', 'an append its handler refuses fails with the handler''s error');
SELECT throws_ok($$SELECT eventstore.append('acct-2', '[{"type": "Deposited", "data": {"amount": 5}}, {"type": "Deposited", "data": {"amount": 6, "veto": "again"}}]')$$,
    'P0001', 'vetoed: again', 'so does a batch with one refused event');
SELECT is((SELECT count(*) FROM eventstore.events), :events0::bigint, '  no event was written');
SELECT is(eventstore.stream_version('acct-2'), 3::bigint, '  acct-2 is still at version 3');
SELECT is((SELECT count(*) FROM inline_rm), :inline0::bigint, '  the other inline projection''s change went with it');
SELECT lives_ok($$SELECT eventstore.drop_projection('veto')$$, 'drop_projection of the inline projection');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'es_projection_veto'),
    0::bigint, '  drops its trigger');
SELECT is_empty($$SELECT * FROM eventstore.projections WHERE name = 'veto'$$, '  and the projection');
SELECT results_eq($$SELECT stream_version FROM eventstore.append_event('acct-2', 'Deposited', '{"amount": 5, "veto": "no"}')$$,
    ARRAY[4::bigint], '  the refused event can be appended now');
SELECT lives_ok($$SELECT eventstore.drop_projection('deposits')$$, 'drop_projection of the Deposited projection');
SELECT lives_ok($$SELECT eventstore.append_event('acct-1', 'Deposited', '{"amount": 9}', event_id => '00000000-0000-4000-8000-00000000b005')$$,
    'append a deposit');
SELECT is((SELECT count(*) FROM deposits_rm WHERE event_id = '00000000-0000-4000-8000-00000000b005'), 0::bigint,
    '  the dropped projection no longer applies it');
SELECT is((SELECT count(*) FROM inline_rm WHERE event_id = '00000000-0000-4000-8000-00000000b005'), 1::bigint,
    '  the remaining one does');
SELECT is((SELECT count(*) FROM owned_rm WHERE projection = 'owned_inline' AND event_id = '00000000-0000-4000-8000-00000000b005'
             AND who = 'regress_es_projowner'), 1::bigint,
    '  and so does the inline projection of regress_es_projowner, as that role');

-- An inline projection created by a transaction that has appended events
-- already must apply them too (they are neither history the feed shows
-- yet nor seen by the new trigger).
CREATE TABLE late_rm (event_id uuid PRIMARY KEY);
CREATE FUNCTION late_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO late_rm VALUES (e.event_id)
$$;
SELECT lives_ok($$SELECT eventstore.create_projection('late', 'late_h(eventstore.event)', 'inline', stream_prefix => 'acct-')$$,
    'create an inline projection after this transaction appended');
SELECT is((SELECT count(*) FROM late_rm), (SELECT count(*) FROM eventstore.events WHERE stream LIKE 'acct-%'),
    '  it applied every acct- event, including those this transaction appended');

SELECT * FROM finish();
ROLLBACK;

\c :proj_home
DROP DATABASE eventstore_projections_test WITH (FORCE);
