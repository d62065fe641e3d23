\unset ECHO
\i test/pgtap_setup.psql
-- Append: the four expected_version modes, atomic batches, the returned
-- (stream_version, global_position), position order, and the defaults of
-- append and append_event.  Failures are detailed in errors.sql and
-- retries in idempotency.sql.
BEGIN;
SELECT plan(55);

-- The signatures of the contract: argument names (for =>), defaults, results.
SELECT is(pg_get_function_arguments('eventstore.append(text,jsonb,bigint)'::regprocedure),
          'stream text, events jsonb, expected_version bigint DEFAULT NULL::bigint',
          'append(stream, events, expected_version DEFAULT NULL)');
SELECT is(pg_get_function_result('eventstore.append(text,jsonb,bigint)'::regprocedure),
          'TABLE(stream_version bigint, global_position bigint)',
          'append returns TABLE (stream_version, global_position)');
SELECT is(pg_get_function_arguments('eventstore.append_event(text,text,jsonb,jsonb,bigint,uuid)'::regprocedure),
          'stream text, event_type text, data jsonb DEFAULT ''{}''::jsonb, metadata jsonb DEFAULT ''{}''::jsonb, expected_version bigint DEFAULT NULL::bigint, event_id uuid DEFAULT NULL::uuid',
          'append_event(stream, event_type, data DEFAULT {}, metadata DEFAULT {}, expected_version DEFAULT NULL, event_id DEFAULT NULL)');
SELECT is(pg_get_function_result('eventstore.append_event(text,text,jsonb,jsonb,bigint,uuid)'::regprocedure),
          'TABLE(stream_version bigint, global_position bigint)',
          'append_event returns TABLE (stream_version, global_position)');

-- expected_version NULL: any version, new or existing stream.
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('app_any-1', '[{"type": "A"}]')$$,
    ARRAY[1::bigint],
    'NULL expectation on a new stream: version 1');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('app_any-1', '[{"type": "B"}]', NULL)$$,
    ARRAY[2::bigint],
    'NULL expectation on an existing stream: version 2');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('app_any-1', 'C')$$,
    ARRAY[3::bigint],
    'append_event with the default expectation appends at version 3');

-- expected_version 0: the stream must not exist.
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('app_new-1', '[{"type": "A"}, {"type": "B"}]', 0)$$,
    ARRAY[2::bigint],
    'expected 0 on a new stream: versions 1..2 written');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_new-1', '[{"type": "C"}]', 0)$$,
    'ES001', NULL, 'expected 0 on an existing stream: ES001');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('app_new-2', 'A', expected_version => 0)$$,
    ARRAY[1::bigint],
    'append_event with expected 0 on a new stream: version 1');

-- expected_version -1: the stream must exist.
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_exists-1', '[{"type": "A"}]', -1)$$,
    'ES001', NULL, 'expected -1 on a missing stream: ES001');
SELECT is(eventstore.stream_version('app_exists-1'), 0::bigint,
          'the refused append did not create the stream');
SELECT lives_ok(
    $$SELECT eventstore.append('app_exists-1', '[{"type": "A"}]')$$,
    'create the stream');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('app_exists-1', '[{"type": "B"}]', -1)$$,
    ARRAY[2::bigint],
    'expected -1 on an existing stream: version 2');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('app_exists-1', 'C', expected_version => -1)$$,
    ARRAY[3::bigint],
    'append_event with expected -1 on an existing stream: version 3');

-- expected_version n: the current version must be exactly n.
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('app_exists-1', '[{"type": "D"}]', 3)$$,
    ARRAY[4::bigint],
    'expected 3 on a stream at 3: version 4');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_exists-1', '[{"type": "E"}]', 3)$$,
    'ES001', NULL, 'expected 3 on a stream at 4 (stale): ES001');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_exists-1', '[{"type": "E"}]', 5)$$,
    'ES001', NULL, 'expected 5 on a stream at 4 (ahead): ES001');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_exact-1', '[{"type": "E"}]', 1)$$,
    'ES001', NULL, 'expected 1 on a missing stream: ES001');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('app_exists-1', 'E', expected_version => 4)$$,
    ARRAY[5::bigint],
    'append_event with expected 4 on a stream at 4: version 5');
SELECT results_eq(
    $$SELECT stream_version, event_type COLLATE "default" FROM eventstore.read_stream('app_exists-1')$$,
    $$VALUES (1::bigint, 'A'::text), (2, 'B'), (3, 'C'), (4, 'D'), (5, 'E')$$,
    'the stream holds exactly the accepted events, versions dense from 1');

-- A batch: versions current+1..current+n, returned version is the last,
-- returned position is the position of the last event.
SELECT eventstore.append_event('app_batch-1', 'First') IS NOT NULL AS ignored \gset
SELECT stream_version AS batch_version, global_position AS batch_position
  FROM eventstore.append('app_batch-1',
       '[{"type": "B1"}, {"type": "B2"}, {"type": "B3"}, {"type": "B4"}]', 1) \gset
SELECT is(:batch_version::bigint, 5::bigint, 'a batch of 4 after version 1 returns version 5');
SELECT results_eq(
    $$SELECT stream_version, event_type COLLATE "default" FROM eventstore.read_stream('app_batch-1')$$,
    $$VALUES (1::bigint, 'First'::text), (2, 'B1'), (3, 'B2'), (4, 'B3'), (5, 'B4')$$,
    'the batch is stored at versions 2..5 in array order');
SELECT is(:batch_position::bigint,
          (SELECT global_position FROM eventstore.read_stream('app_batch-1') WHERE stream_version = 5),
          'the returned position is that of the last event of the batch');
SELECT is((SELECT max(global_position) FROM eventstore.events WHERE stream = 'app_batch-1'),
          :batch_position::bigint,
          'no event of the stream has a larger position than the returned one');
SELECT is((SELECT count(*) FROM (
              SELECT global_position - lag(global_position) OVER (ORDER BY stream_version) AS step
                FROM eventstore.read_stream('app_batch-1')) s
            WHERE step <= 0),
          0::bigint,
          'positions increase with versions inside the stream');
SELECT is((SELECT count(DISTINCT created_at) FROM eventstore.read_stream('app_batch-1')),
          1::bigint,
          'the events of one transaction share one created_at');

-- Atomic batches: one bad event or a failed expectation writes nothing.
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_batch-1', '[{"type": "ok"}, {"type": "ok"}, {"data": {}}]')$$,
    '22023', NULL, 'a batch whose third event has no type is refused');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_batch-1', '[{"type": "ok"}, {"type": "ok", "id": "not-a-uuid"}]')$$,
    '22P02', NULL, 'a batch whose second event has a bad id is refused');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('app_batch-1', '[{"type": "ok"}, {"type": "ok"}]', 4)$$,
    'ES001', NULL, 'a batch with a stale expectation is refused');
SELECT is(eventstore.stream_version('app_batch-1'), 5::bigint,
          'the refused batches left the stream at version 5');
SELECT is((SELECT count(*) FROM eventstore.events WHERE stream = 'app_batch-1' AND event_type = 'ok'),
          0::bigint, 'no event of any refused batch was stored');

-- Global positions: unique, increasing in append order across streams.
SELECT global_position AS p1 FROM eventstore.append_event('app_order-a', 'X') \gset
SELECT global_position AS p2 FROM eventstore.append_event('app_order-b', 'X') \gset
SELECT global_position AS p3 FROM eventstore.append('app_order-a', '[{"type": "Y"}, {"type": "Z"}]') \gset
SELECT global_position AS p4 FROM eventstore.append_event('app_order-b', 'Y') \gset
SELECT ok(:p1 < :p2 AND :p2 < :p3 AND :p3 < :p4,
          'positions increase in append order across streams');
SELECT ok((SELECT global_position FROM eventstore.events WHERE stream = 'app_order-a' AND stream_version = 2)
          BETWEEN :p2 + 1 AND :p3 - 1,
          'the first event of a batch lies after the previous append and before the batch''s last event');
SELECT is((SELECT count(*) FROM eventstore.events), (SELECT count(DISTINCT global_position) FROM eventstore.events),
          'global positions are unique');

-- Streams are independent: exact names, no prefix or case folding.
SELECT lives_ok($$SELECT eventstore.append('app_name-1', '[{"type": "A"}]', 0)$$, 'app_name-1 created');
SELECT lives_ok($$SELECT eventstore.append('app_name-10', '[{"type": "A"}]', 0)$$, 'app_name-10 is another stream');
SELECT lives_ok($$SELECT eventstore.append('APP_NAME-1', '[{"type": "A"}]', 0)$$, 'APP_NAME-1 is another stream');
SELECT is(ARRAY[eventstore.stream_version('app_name-1'), eventstore.stream_version('app_name-10'),
                eventstore.stream_version('APP_NAME-1'), eventstore.stream_version('app_name')],
          ARRAY[1, 1, 1, 0]::bigint[], 'each stream has its own version');

-- Names and types up to 255 bytes, multibyte included.
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event(repeat('é', 127) || 'x', 'A')$$,
    ARRAY[1::bigint], 'a 255-byte stream name is accepted');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('app_long-1', repeat('t', 255))$$,
    ARRAY[1::bigint], 'a 255-byte event type is accepted');
SELECT is((SELECT octet_length(stream) FROM eventstore.events WHERE stream LIKE 'é%'), 255,
          'the long name is stored whole');

-- Defaults of append: data {}, metadata {}, ids generated.
SELECT lives_ok(
    $$SELECT eventstore.append('app_def-1', '[{"type": "A"}, {"type": "B", "id": null}, {"type": "C", "data": {"k": 1}}]')$$,
    'a batch without ids, data or metadata');
SELECT results_eq(
    $$SELECT event_type COLLATE "default", data, metadata FROM eventstore.read_stream('app_def-1')$$,
    $$VALUES ('A'::text, '{}'::jsonb, '{}'::jsonb), ('B', '{}', '{}'), ('C', '{"k": 1}', '{}')$$,
    'absent data and metadata default to {}');
SELECT is((SELECT count(DISTINCT event_id) FROM eventstore.read_stream('app_def-1') WHERE event_id IS NOT NULL),
          3::bigint, 'absent (and null) ids are generated, distinct');

-- Given values are stored as given; data may be any JSON.
SELECT lives_ok(
    $$SELECT eventstore.append('app_val-1', '[
        {"type": "Obj", "data": {"a": [1, 2, {"b": null}]}, "metadata": {"correlation_id": "c-1", "causation_id": "e-0", "user_id": "u-7", "trace_id": "t", "source": "test"}, "id": "0b6f5d8e-7a1c-4f00-9c41-3d2a1b0c0001"},
        {"type": "Arr", "data": [1, "two", 3.5]},
        {"type": "Str", "data": "plain"},
        {"type": "Num", "data": 42},
        {"type": "Null", "data": null}]')$$,
    'a batch with data of every JSON kind');
SELECT results_eq(
    $$SELECT event_type COLLATE "default", data, metadata FROM eventstore.read_stream('app_val-1')$$,
    $$VALUES ('Obj'::text, '{"a": [1, 2, {"b": null}]}'::jsonb,
              '{"correlation_id": "c-1", "causation_id": "e-0", "user_id": "u-7", "trace_id": "t", "source": "test"}'::jsonb),
             ('Arr', '[1, "two", 3.5]', '{}'),
             ('Str', '"plain"', '{}'),
             ('Num', '42', '{}'),
             ('Null', 'null', '{}')$$,
    'data and metadata round-trip');
SELECT is((SELECT event_id FROM eventstore.read_stream('app_val-1', max_count => 1)),
          '0b6f5d8e-7a1c-4f00-9c41-3d2a1b0c0001'::uuid, 'a given id is stored');

-- Defaults of append_event.
SELECT lives_ok($$SELECT eventstore.append_event('app_ev-1', 'Created')$$, 'append_event with only stream and type');
SELECT results_eq(
    $$SELECT stream_version, event_type COLLATE "default", data, metadata, event_id IS NOT NULL FROM eventstore.read_stream('app_ev-1')$$,
    $$VALUES (1::bigint, 'Created'::text, '{}'::jsonb, '{}'::jsonb, true)$$,
    'append_event defaults: data {}, metadata {}, a generated id');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event(
          stream => 'app_ev-1', event_type => 'Renamed', data => '{"name": "x"}',
          metadata => '{"user_id": "u-1"}', expected_version => 1,
          event_id => '0b6f5d8e-7a1c-4f00-9c41-3d2a1b0c0002')$$,
    ARRAY[2::bigint], 'append_event with every argument named');
SELECT results_eq(
    $$SELECT stream COLLATE "default", stream_version, event_id, event_type COLLATE "default", data, metadata
        FROM eventstore.read_stream('app_ev-1', 2)$$,
    $$VALUES ('app_ev-1'::text, 2::bigint, '0b6f5d8e-7a1c-4f00-9c41-3d2a1b0c0002'::uuid, 'Renamed'::text,
              '{"name": "x"}'::jsonb, '{"user_id": "u-1"}'::jsonb)$$,
    'append_event stores every given value');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append(stream => 'app_ev-1', events => '[{"type": "Z"}]', expected_version => 2)$$,
    ARRAY[3::bigint], 'append with named arguments');

-- The stored rows match the stream version and the table.
SELECT is(eventstore.stream_version('app_ev-1'),
          (SELECT count(*) FROM eventstore.events WHERE stream = 'app_ev-1'),
          'stream_version is the number of events of the stream');
SELECT ok((SELECT bool_and(created_at >= now() AND created_at <= clock_timestamp())
             FROM eventstore.events WHERE stream LIKE 'app\_%'),
          'created_at lies within the appending transaction');

SELECT * FROM finish();
ROLLBACK;
