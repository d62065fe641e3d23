\unset ECHO
\i test/pgtap_setup.psql
-- read_stream and stream_version: the eventstore.event type, forward and
-- backward reads, from_version, max_count, missing streams, and values that
-- round-trip exactly.
BEGIN;
SELECT plan(46);

-- The composite type: exactly these columns, in this order.
SELECT results_eq(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod)
        FROM pg_attribute
       WHERE attrelid = 'eventstore.event'::regclass AND attnum > 0 AND NOT attisdropped
       ORDER BY attnum$$,
    $$VALUES ('global_position', 'bigint'), ('stream', 'text'), ('stream_version', 'bigint'),
             ('event_id', 'uuid'), ('event_type', 'text'), ('data', 'jsonb'),
             ('metadata', 'jsonb'), ('created_at', 'timestamp with time zone')$$,
    'eventstore.event has the contract''s columns in order');
SELECT is(pg_get_function_result('eventstore.read_stream(text,bigint,integer,boolean)'::regprocedure),
          'SETOF eventstore.event', 'read_stream returns SETOF eventstore.event');
SELECT is(pg_get_function_arguments('eventstore.read_stream(text,bigint,integer,boolean)'::regprocedure),
          'stream text, from_version bigint DEFAULT NULL::bigint, max_count integer DEFAULT NULL::integer, backward boolean DEFAULT false',
          'read_stream(stream, from_version DEFAULT NULL, max_count DEFAULT NULL, backward DEFAULT false)');
SELECT is(pg_get_function_result('eventstore.stream_version(text)'::regprocedure), 'bigint',
          'stream_version returns bigint');

-- Five events in rs-1, interleaved with events of similarly named streams.
SELECT global_position AS p1 FROM eventstore.append('rs-1', '[
    {"type": "E1", "data": {"n": 1}, "metadata": {"correlation_id": "c-1"}, "id": "7e000000-0000-4000-8000-000000000001"},
    {"type": "E2", "data": [2, "two"], "metadata": {"causation_id": "7e000000-0000-4000-8000-000000000001"}, "id": "7e000000-0000-4000-8000-000000000002"}]') \gset
SELECT eventstore.append('rs-10', '[{"type": "Other"}]') IS NOT NULL AS ignored \gset
SELECT eventstore.append('RS-1', '[{"type": "Other"}]') IS NOT NULL AS ignored \gset
SELECT eventstore.append('rs-', '[{"type": "Other"}]') IS NOT NULL AS ignored \gset
SELECT global_position AS p3 FROM eventstore.append_event('rs-1', 'E3', '"three"', '{"user_id": "u-1", "source": "test"}',
                                                      2, '7e000000-0000-4000-8000-000000000003') \gset
SELECT eventstore.append('rs-10', '[{"type": "Other"}]') IS NOT NULL AS ignored \gset
SELECT global_position AS p5 FROM eventstore.append('rs-1', '[
    {"type": "E4", "data": null, "id": "7e000000-0000-4000-8000-000000000004"},
    {"type": "E5", "data": {"nested": {"deep": [true, false, null, 1.5e3]}, "unicode": "héllo ✓"},
     "metadata": {"trace_id": "t-5", "tags": ["a", "b"]}, "id": "7e000000-0000-4000-8000-000000000005"}]', 3) \gset

-- Forward reads.
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1')$$,
    ARRAY[1, 2, 3, 4, 5]::bigint[], 'forward: every event of the stream, in version order');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', NULL, NULL, NULL)$$,
    ARRAY[1, 2, 3, 4, 5]::bigint[], 'explicit NULLs read like the defaults');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 1)$$,
    ARRAY[1, 2, 3, 4, 5]::bigint[], 'from_version 1 is the start');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 3)$$,
    ARRAY[3, 4, 5]::bigint[], 'from_version 3: versions 3..5');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 5)$$,
    ARRAY[5]::bigint[], 'from_version 5: the last event');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('rs-1', 6)$$, 'from_version past the end: no rows');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', max_count => 2)$$,
    ARRAY[1, 2]::bigint[], 'max_count 2: versions 1..2');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 2, 2)$$,
    ARRAY[2, 3]::bigint[], 'from_version 2, max_count 2: versions 2..3');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 4, 10)$$,
    ARRAY[4, 5]::bigint[], 'max_count larger than what is left');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('rs-1', max_count => 0)$$, 'max_count 0: no rows');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('rs-1', 2, 0, true)$$, 'max_count 0 backward: no rows');

-- Backward reads.
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', backward => true)$$,
    ARRAY[5, 4, 3, 2, 1]::bigint[], 'backward: from the last event down');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 3, NULL, true)$$,
    ARRAY[3, 2, 1]::bigint[], 'backward from_version 3: versions 3..1');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 4, 2, true)$$,
    ARRAY[4, 3]::bigint[], 'backward from_version 4, max_count 2: versions 4, 3');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', max_count => 1, backward => true)$$,
    ARRAY[5]::bigint[], 'backward max_count 1: the last event');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 99, NULL, true)$$,
    ARRAY[5, 4, 3, 2, 1]::bigint[], 'backward from past the end: from the last event');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 1, NULL, true)$$,
    ARRAY[1]::bigint[], 'backward from_version 1: the first event');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('rs-1', 2, NULL, false)$$,
    ARRAY[2, 3, 4, 5]::bigint[], 'backward false reads forward');

-- Only the named stream: no prefix, case or neighbour matches.
SELECT is((SELECT count(*) FROM eventstore.read_stream('rs-1') WHERE stream <> 'rs-1'), 0::bigint,
          'read_stream returns only events of the named stream');
SELECT results_eq($$SELECT stream COLLATE "default", stream_version FROM eventstore.read_stream('rs-10')$$,
    $$VALUES ('rs-10'::text, 1::bigint), ('rs-10', 2)$$, 'rs-10 is read on its own');
SELECT is(ARRAY[eventstore.stream_version('rs-1'), eventstore.stream_version('rs-10'),
                eventstore.stream_version('RS-1'), eventstore.stream_version('rs-'),
                eventstore.stream_version('rs')],
          ARRAY[5, 2, 1, 1, 0]::bigint[], 'stream_version of each stream');

-- Missing streams: no rows and version 0, not an error.
SELECT is_empty($$SELECT * FROM eventstore.read_stream('rs-missing')$$, 'a missing stream: no rows');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('rs-missing', 3, 5, true)$$,
    'a missing stream read backward with bounds: no rows');
SELECT is(eventstore.stream_version('rs-missing'), 0::bigint, 'a missing stream is at version 0');

-- Values round-trip.
SELECT results_eq(
    $$SELECT stream COLLATE "default", stream_version, event_id, event_type COLLATE "default", data, metadata FROM eventstore.read_stream('rs-1')$$,
    $$VALUES
      ('rs-1'::text, 1::bigint, '7e000000-0000-4000-8000-000000000001'::uuid, 'E1'::text,
       '{"n": 1}'::jsonb, '{"correlation_id": "c-1"}'::jsonb),
      ('rs-1', 2, '7e000000-0000-4000-8000-000000000002', 'E2',
       '[2, "two"]', '{"causation_id": "7e000000-0000-4000-8000-000000000001"}'),
      ('rs-1', 3, '7e000000-0000-4000-8000-000000000003', 'E3',
       '"three"', '{"user_id": "u-1", "source": "test"}'),
      ('rs-1', 4, '7e000000-0000-4000-8000-000000000004', 'E4', 'null', '{}'),
      ('rs-1', 5, '7e000000-0000-4000-8000-000000000005', 'E5',
       '{"nested": {"deep": [true, false, null, 1.5e3]}, "unicode": "héllo ✓"}',
       '{"trace_id": "t-5", "tags": ["a", "b"]}')$$,
    'stream, version, id, type, data and metadata round-trip');
SELECT results_eq(
    $$SELECT r FROM eventstore.read_stream('rs-1') r$$,
    $$SELECT ROW(e.global_position, e.stream, e.stream_version, e.event_id, e.event_type,
                 e.data, e.metadata, e.created_at)::eventstore.event
        FROM eventstore.events e WHERE e.stream = 'rs-1' ORDER BY e.stream_version$$,
    'read_stream rows are the stored rows, every column included');
SELECT is((SELECT pg_typeof(r)::text FROM eventstore.read_stream('rs-1', max_count => 1) r),
          'eventstore.event', 'each row is an eventstore.event');

-- Large (TOASTed) values round-trip too, by value and in a whole-row reference.
CREATE TEMP TABLE big_payload AS
    SELECT jsonb_build_object('blob', string_agg(md5(i::text), '' ORDER BY i)) AS data
      FROM generate_series(1, 3000) i;
SELECT lives_ok($$SELECT eventstore.append_event('rs-big', 'Big', (SELECT data FROM big_payload),
                                                 jsonb_build_object('m', repeat('m', 5000)))$$,
    'append an event with about 100kB of data');
SELECT ok((SELECT pg_column_size(data) < octet_length(data::text) OR pg_column_size(data) > 8000
             FROM eventstore.events WHERE stream = 'rs-big'),
    'setup: the stored data is compressed or out of line');
SELECT is((SELECT data FROM eventstore.read_stream('rs-big')), (SELECT data FROM big_payload),
    'large data reads back equal');
SELECT is((SELECT (r).metadata FROM eventstore.read_stream('rs-big') r), jsonb_build_object('m', repeat('m', 5000)),
    'large metadata reads back equal through a whole-row reference');
SELECT is((SELECT md5(r::text) FROM eventstore.read_stream('rs-big') r),
          (SELECT md5(ROW(e.*)::eventstore.event::text) FROM eventstore.events e WHERE e.stream = 'rs-big'),
    'the large event reads back as the stored row');

-- Positions: those returned by append, increasing with versions.
SELECT is((SELECT global_position FROM eventstore.read_stream('rs-1', 2, 1)), :p1::bigint,
          'version 2 has the position returned by its append');
SELECT is((SELECT global_position FROM eventstore.read_stream('rs-1', 3, 1)), :p3::bigint,
          'version 3 has the position returned by its append');
SELECT is((SELECT global_position FROM eventstore.read_stream('rs-1', 5, 1)), :p5::bigint,
          'version 5 has the position returned by its append');
SELECT ok((SELECT bool_and(step > 0) FROM (
              SELECT global_position - lag(global_position) OVER (ORDER BY stream_version) AS step
                FROM eventstore.read_stream('rs-1')) s),
          'positions increase with versions');
SELECT ok((SELECT bool_and(step > 0) FROM (
              SELECT global_position - lag(global_position) OVER (ORDER BY stream_version) AS step
                FROM eventstore.read_stream('rs-10')) s)
          AND (SELECT max(global_position) FROM eventstore.read_stream('rs-10')) > :p3
          AND (SELECT max(global_position) FROM eventstore.read_stream('rs-10')) < :p5,
          'interleaved appends to another stream got positions in between');

-- created_at: set, within this transaction.
SELECT ok((SELECT bool_and(created_at IS NOT NULL AND created_at >= now() AND created_at <= clock_timestamp())
             FROM eventstore.read_stream('rs-1')),
          'created_at is set to a time within the appending transaction');

-- Reads in the select list, and stream_version tracks appends at once.
SELECT results_eq($$SELECT (eventstore.read_stream('rs-1', 4)).event_type COLLATE "default"$$,
    ARRAY['E4', 'E5'], 'read_stream works in the select list');
SELECT lives_ok($$SELECT eventstore.append_event('rs-1', 'E6')$$, 'append a sixth event');
SELECT is(eventstore.stream_version('rs-1'), 6::bigint, 'stream_version sees it at once');
SELECT results_eq($$SELECT event_type COLLATE "default" FROM eventstore.read_stream('rs-1', backward => true, max_count => 1)$$,
    ARRAY['E6'], 'read_stream sees it at once');

SELECT * FROM finish();
ROLLBACK;
