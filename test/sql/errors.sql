\unset ECHO
\i test/pgtap_setup.psql
-- Every error of append, append_event, read_stream and stream_version, with
-- its SQLSTATE; after each refused call, proof that nothing was written
-- (the whole events table is unchanged) and that the session still works.
BEGIN;
SELECT plan(152);

-- Two tests for a statement that must fail: it fails with this SQLSTATE and
-- message, and afterwards the session works and the events table is exactly
-- the baseline.
CREATE FUNCTION pg_temp.refused(sql text, code text, msg text, description text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT throws_ok(sql, code::char(5), msg, description);
    RETURN NEXT is(pg_temp.store_state(), current_setting('eventstore_test.baseline'),
                   '  ... and nothing was written');
END
$$;

-- Run a statement that must fail; return its error's detail (or a marker).
CREATE FUNCTION pg_temp.error_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN '(no error)';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN coalesce(nullif(d, ''), '(no detail)');
END
$$;

SELECT lives_ok($$SELECT eventstore.append('err-1', '[
    {"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"},
    {"type": "B", "id": "5e7a9a9e-0000-4000-8000-000000000002"}]', 0)$$,
    'setup: err-1 at version 2');
SELECT set_config('eventstore_test.baseline', pg_temp.store_state(), true) IS NOT NULL AS ignored \gset

-- ES001: wrong expected version, each mode, append and append_event -------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"}]', 0)$$,
    'ES001', 'wrong expected version for stream "err-1"', 'ES001: expected 0, stream exists');
SELECT matches(pg_temp.error_detail($$SELECT eventstore.append('err-1', '[{"type": "X"}]', 0)$$),
    'version 0.*version 2', '  detail gives expected 0 and actual 2');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', expected_version => 0)$$,
    'ES001', 'wrong expected version for stream "err-1"', 'ES001: append_event, expected 0, stream exists');

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-none', '[{"type": "X"}]', -1)$$,
    'ES001', 'wrong expected version for stream "err-none"', 'ES001: expected -1, stream missing');
SELECT matches(pg_temp.error_detail($$SELECT eventstore.append('err-none', '[{"type": "X"}]', -1)$$),
    'exist.*version 0', '  detail says the stream should exist and is at 0');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-none', 'X', expected_version => -1)$$,
    'ES001', 'wrong expected version for stream "err-none"', 'ES001: append_event, expected -1, stream missing');

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"}]', 1)$$,
    'ES001', 'wrong expected version for stream "err-1"', 'ES001: expected 1, stream at 2');
SELECT matches(pg_temp.error_detail($$SELECT eventstore.append('err-1', '[{"type": "X"}]', 7)$$),
    '\m7\M.*\m2\M', '  detail gives expected 7 and actual 2');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-none', '[{"type": "X"}, {"type": "Y"}]', 1)$$,
    'ES001', 'wrong expected version for stream "err-none"', 'ES001: expected 1, stream missing');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', expected_version => 3)$$,
    'ES001', 'wrong expected version for stream "err-1"', 'ES001: append_event, expected 3, stream at 2');

-- ES003: an event id reused in a different place ---------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-2', '[{"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"}]')$$,
    'ES003', NULL, 'ES003: an id of err-1 appended to another stream');
SELECT matches(pg_temp.error_detail($$SELECT eventstore.append('err-2', '[{"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"}]')$$),
    '"err-1".*\m1\M', '  detail names where the id is stored');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-2', 'A', event_id => '5e7a9a9e-0000-4000-8000-000000000002')$$,
    'ES003', NULL, 'ES003: append_event with an id of err-1 to another stream');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[
        {"type": "B", "id": "5e7a9a9e-0000-4000-8000-000000000002"},
        {"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"}]')$$,
    'ES003', NULL, 'ES003: the stored ids of err-1 at other versions (swapped)');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[
        {"type": "N"},
        {"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"}]')$$,
    'ES003', NULL, 'ES003: a stored id behind a new event in the same stream');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[
        {"type": "A", "id": "5e7a9a9e-0000-4000-8000-000000000001"},
        {"type": "B", "id": "5e7a9a9e-0000-4000-8000-000000000002"},
        {"type": "C", "id": "5e7a9a9e-0000-4000-8000-000000000003"}]', 0)$$,
    'ES003', NULL, 'ES003: partial retry (the stored batch plus a new event)');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-3', '[
        {"type": "A", "id": "5e7a9a9e-0000-4000-8000-00000000000a"},
        {"type": "B", "id": "5E7A9A9E-0000-4000-8000-00000000000A"}]')$$,
    'ES003', NULL, 'ES003: one id twice in a batch (spelled differently)');

-- 22004: NULL arguments ----------------------------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append(NULL, '[{"type": "X"}]')$$,
    '22004', 'stream must not be NULL', 'append: NULL stream');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', NULL)$$,
    '22004', 'events must not be NULL', 'append: NULL events');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event(NULL, 'X')$$,
    '22004', 'stream must not be NULL', 'append_event: NULL stream');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', NULL)$$,
    '22004', 'event_type must not be NULL', 'append_event: NULL event_type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', NULL)$$,
    '22004', 'data must not be NULL', 'append_event: NULL data');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', '{}', NULL)$$,
    '22004', 'metadata must not be NULL', 'append_event: NULL metadata');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream(NULL)$$,
    '22004', 'stream must not be NULL', 'read_stream: NULL stream');
SELECT * FROM pg_temp.refused($$SELECT eventstore.stream_version(NULL)$$,
    '22004', 'stream must not be NULL', 'stream_version: NULL stream');

-- 22023: bad stream names --------------------------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('', '[{"type": "X"}]')$$,
    '22023', 'invalid stream name', 'append: empty stream name');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append(repeat('s', 256), '[{"type": "X"}]')$$,
    '22023', 'invalid stream name', 'append: 256-byte stream name');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('', 'X')$$,
    '22023', 'invalid stream name', 'append_event: empty stream name');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event(repeat('é', 128), 'X')$$,
    '22023', 'invalid stream name', 'append_event: 128 two-byte characters (256 bytes)');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream('')$$,
    '22023', 'invalid stream name', 'read_stream: empty stream name');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream(repeat('s', 256))$$,
    '22023', 'invalid stream name', 'read_stream: 256-byte stream name');
SELECT * FROM pg_temp.refused($$SELECT eventstore.stream_version('')$$,
    '22023', 'invalid stream name', 'stream_version: empty stream name');

-- 22023: malformed events --------------------------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '{"type": "X"}')$$,
    '22023', 'events must be a JSON array of event objects', 'events is an object, not an array');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '"X"')$$,
    '22023', 'events must be a JSON array of event objects', 'events is a scalar');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', 'null')$$,
    '22023', 'events must be a JSON array of event objects', 'events is JSON null');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[]')$$,
    '22023', 'events must not be an empty array', 'events is an empty array');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[1]')$$,
    '22023', 'event 1 must be a JSON object', 'an element is a number');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"}, null]')$$,
    '22023', 'event 2 must be a JSON object', 'the second element is null');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[[{"type": "X"}]]')$$,
    '22023', 'event 1 must be a JSON object', 'an element is an array');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{}]')$$,
    '22023', 'event 1 has no "type"', 'an event without type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"}, {"data": {"type": "Y"}}]')$$,
    '22023', 'event 2 has no "type"', 'the second event has no type (a nested one does not count)');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": ""}]')$$,
    '22023', 'invalid event type in event 1', 'an empty type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', jsonb_build_array(jsonb_build_object('type', repeat('t', 256))))$$,
    '22023', 'invalid event type in event 1', 'a 256-byte type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": 1}]')$$,
    '22023', '"type" of event 1 must be a JSON string', 'a numeric type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": null}]')$$,
    '22023', '"type" of event 1 must be a JSON string', 'a null type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": ["X"]}]')$$,
    '22023', '"type" of event 1 must be a JSON string', 'an array type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "dta": {}}]')$$,
    '22023', 'unknown key "dta" in event 1', 'an unknown key (a typo) is refused');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "metadata": []}]')$$,
    '22023', 'metadata of event 1 must be a JSON object', 'metadata is an array');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "metadata": "m"}]')$$,
    '22023', 'metadata of event 1 must be a JSON object', 'metadata is a string');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "metadata": null}]')$$,
    '22023', 'metadata of event 1 must be a JSON object', 'metadata is null');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "id": 12}]')$$,
    '22023', '"id" of event 1 must be a UUID string', 'a numeric id');

-- 22023: bad arguments of append_event -------------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', '')$$,
    '22023', 'invalid event type in event 1', 'append_event: an empty type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', repeat('t', 256))$$,
    '22023', 'invalid event type in event 1', 'append_event: a 256-byte type');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', '{}', '[]')$$,
    '22023', 'metadata of event 1 must be a JSON object', 'append_event: metadata is an array');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', '{}', '"m"')$$,
    '22023', 'metadata of event 1 must be a JSON object', 'append_event: metadata is a string');

-- 22023: versions and counts out of range ----------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"}]', -2)$$,
    '22023', 'invalid expected_version -2', 'append: expected_version -2');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', expected_version => -9223372036854775808)$$,
    '22023', 'invalid expected_version -9223372036854775808', 'append_event: expected_version at the bigint minimum');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream('err-1', 0)$$,
    '22023', 'from_version must be at least 1', 'read_stream: from_version 0');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream('err-1', -1, NULL, true)$$,
    '22023', 'from_version must be at least 1', 'read_stream: from_version -1 backward');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.read_stream('err-1', max_count => -1)$$,
    '22023', 'max_count must not be negative', 'read_stream: max_count -1');

-- 22P02 / 22P05: malformed JSON and UUID text ------------------------------

SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X"]')$$,
    '22P02', NULL, 'malformed JSON');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "data": "\u0000"}]')$$,
    '22P05', NULL, 'JSON with a \u0000 escape');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "id": "5e7a9a9e-0000"}]')$$,
    '22P02', 'invalid input syntax for type uuid: "5e7a9a9e-0000"', 'a malformed id string');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', '[{"type": "X", "id": ""}]')$$,
    '22P02', NULL, 'an empty id string');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'X', event_id => 'nope')$$,
    '22P02', NULL, 'append_event: a malformed event_id');

-- 54000: events over eventstore.max_event_size ----------------------------

SELECT is(current_setting('eventstore.max_event_size'), '1MB', 'eventstore.max_event_size defaults to 1MB');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'Big', jsonb_build_object('p', repeat('x', 1024 * 1024)))$$,
    '54000', 'event 1 is too large', 'append_event: data over 1MB');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'Big', '{}', jsonb_build_object('p', repeat('x', 1024 * 1024)))$$,
    '54000', 'event 1 is too large', 'append_event: metadata over 1MB');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', jsonb_build_array(
        jsonb_build_object('type', 'Small'),
        jsonb_build_object('type', 'Big', 'data', jsonb_build_object('p', repeat('x', 1024 * 1024)))))$$,
    '54000', 'event 2 is too large', 'append: the second event of a batch over 1MB');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', jsonb_build_array(jsonb_build_object('type', 'Big',
        'data', jsonb_build_object('p', repeat('x', 600 * 1024)),
        'metadata', jsonb_build_object('p', repeat('x', 600 * 1024)))))$$,
    '54000', 'event 1 is too large', 'append: data and metadata each under 1MB, together over');

-- A lower limit: exactly at the limit is accepted, one byte more is not.
SELECT * FROM pg_temp.refused($$SET LOCAL eventstore.max_event_size = 1000$$, '22023', NULL,
    'a limit under the 1kB minimum is refused');
SET LOCAL eventstore.max_event_size = '2kB';
SELECT is(current_setting('eventstore.max_event_size'), '2kB', 'SET lowers the limit to 2kB');
-- data of n bytes as stored: {"p": "x...x"} plus metadata {}.
CREATE FUNCTION pg_temp.data_of_size(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('p', repeat('x', n - pg_column_size(jsonb_build_object('p', ''))))
$$;
SELECT is(pg_column_size(pg_temp.data_of_size(2040)) + pg_column_size('{}'::jsonb), 2048,
          'setup: data of 2040 bytes plus metadata {} is 2048 bytes');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append_event('err-1', 'Big', pg_temp.data_of_size(2041))$$,
    '54000', 'event 1 is too large', 'append_event: one byte over the lowered limit');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', jsonb_build_array(
        jsonb_build_object('type', 'Big', 'data', pg_temp.data_of_size(2041))))$$,
    '54000', 'event 1 is too large', 'append: one byte over the lowered limit');
SELECT * FROM pg_temp.refused($$SELECT * FROM eventstore.append('err-1', jsonb_build_array(
        jsonb_build_object('type', 'Big', 'data', pg_temp.data_of_size(1020),
                           'metadata', pg_temp.data_of_size(1029))))$$,
    '54000', 'event 1 is too large', 'append: data plus metadata one byte over the lowered limit');
SELECT matches(pg_temp.error_detail($$SELECT eventstore.append_event('err-1', 'Big', pg_temp.data_of_size(2041))$$),
    '\m2049\M.*\m2048\M', '  detail gives the size and the limit');
SELECT results_eq($$SELECT stream_version FROM eventstore.append_event('err-1', 'AtLimit', pg_temp.data_of_size(2040), expected_version => 2)$$,
    ARRAY[3::bigint], 'append_event: an event of exactly the limit is accepted');
SELECT results_eq($$SELECT stream_version FROM eventstore.append('err-1', jsonb_build_array(
        jsonb_build_object('type', 'AtLimit', 'data', pg_temp.data_of_size(1020),
                           'metadata', pg_temp.data_of_size(1028)),
        jsonb_build_object('type', 'AtLimit', 'data', pg_temp.data_of_size(2040))), 3)$$,
    ARRAY[5::bigint], 'append: a batch of events of exactly the limit is accepted');
SELECT isnt(pg_temp.store_state(), current_setting('eventstore_test.baseline'),
    'the state check sees the accepted appends (it would see a wrongful write)');
SET LOCAL eventstore.max_event_size = '1MB';

-- The session still works after all of the above.
SELECT results_eq($$SELECT stream_version FROM eventstore.append('err-1', '[{"type": "C"}]', 5)$$,
    ARRAY[6::bigint], 'after every refusal, an exact append succeeds');
SELECT results_eq($$SELECT stream_version, event_type COLLATE "default" FROM eventstore.read_stream('err-1')$$,
    $$VALUES (1::bigint, 'A'::text), (2, 'B'), (3, 'AtLimit'), (4, 'AtLimit'), (5, 'AtLimit'), (6, 'C')$$,
    'err-1 holds exactly the accepted events');

SELECT * FROM finish();
ROLLBACK;
