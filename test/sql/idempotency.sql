\unset ECHO
\i test/pgtap_setup.psql
-- Idempotent retries: resending events whose ids are stored in the same
-- stream at the same versions is a no-op returning the original result;
-- a retry whose expectation does not fit where they were written is ES001;
-- any other reuse of a stored id is ES003 (more in errors.sql).
BEGIN;
SELECT plan(34);

-- The original append of a batch of two events with ids.
SELECT stream_version AS v1, global_position AS p1
  FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "1d000000-0000-4000-8000-000000000002"}]', 0) \gset
SELECT is(:v1::bigint, 2::bigint, 'the original append wrote versions 1..2');
SELECT pg_temp.store_state() AS s1 \gset

-- Retry with the same expectation.
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "1d000000-0000-4000-8000-000000000002"}]', 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :v1, :p1),
    'a retry with the same expectation returns the original (version, position)');
SELECT is(pg_temp.store_state(), :'s1', '  and writes nothing');

-- Retry with the NULL expectation.
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "1d000000-0000-4000-8000-000000000002"}]')$$,
    format('VALUES (%s::bigint, %s::bigint)', :v1, :p1),
    'a retry with the NULL expectation returns the original result');
SELECT is(pg_temp.store_state(), :'s1', '  and writes nothing');

-- Ids compare as UUIDs, not as text.
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1D000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "{1d000000-0000-4000-8000-000000000002}"}]', 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :v1, :p1),
    'a retry with the ids spelled differently is still a retry');
SELECT is(pg_temp.store_state(), :'s1', '  and writes nothing');

-- Retries whose expectation does not fit where the events were written.
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"}]', 2)$$,
    'ES001', 'wrong expected version for stream "idem-1"',
    'a retry expecting the current version 2 (the events were written after 0): ES001');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"}]', -1)$$,
    'ES001', 'wrong expected version for stream "idem-1"',
    'a retry expecting an existing stream (it did not exist before them): ES001');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"}]', 1)$$,
    'ES001', 'wrong expected version for stream "idem-1"',
    'a retry expecting version 1: ES001');
SELECT is(pg_temp.store_state(), :'s1', '  none of the mismatched retries wrote anything');

-- Other events are appended; a late retry still returns the original result.
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('idem-1', '[{"type": "Later", "id": "1d000000-0000-4000-8000-000000000003"}]', 2)$$,
    ARRAY[3::bigint], 'another event is appended at version 3');
SELECT pg_temp.store_state() AS s2 \gset
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "1d000000-0000-4000-8000-000000000002"}]', 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :v1, :p1),
    'a retry after later appends returns the original result, not the current version');
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-1', '[
      {"type": "Opened", "data": {"n": 1}, "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "data": {"n": 2}, "id": "1d000000-0000-4000-8000-000000000002"}]')$$,
    format('VALUES (%s::bigint, %s::bigint)', :v1, :p1),
    'the same with the NULL expectation');
SELECT is(pg_temp.store_state(), :'s2', '  and they write nothing');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"}]', 3)$$,
    'ES001', NULL, 'a late retry expecting the current version 3: ES001');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append('idem-1', '[{"type": "Later", "id": "1d000000-0000-4000-8000-000000000003"}]', 2)$$,
    ARRAY[3::bigint], 'the retry of the later event returns its own version');
SELECT is(eventstore.stream_version('idem-1'), 3::bigint, 'the stream is still at version 3');

-- Not retries: the stored ids elsewhere or mixed with new events (ES003).
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-2', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"}]', 0)$$,
    'ES003', NULL, 'the same batch to another stream: ES003');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"},
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"}]')$$,
    'ES003', NULL, 'the same events in another order: ES003');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named", "id": "1d000000-0000-4000-8000-000000000002"},
      {"type": "New", "id": "1d000000-0000-4000-8000-000000000009"}]', 0)$$,
    'ES003', NULL, 'the batch with one more new event (partial retry): ES003');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append('idem-1', '[
      {"type": "Opened", "id": "1d000000-0000-4000-8000-000000000001"},
      {"type": "Named"}]', 0)$$,
    'ES003', NULL, 'the batch with the second id left out: ES003');
SELECT is(pg_temp.store_state(), :'s2', '  none of them wrote anything');
SELECT is(eventstore.stream_version('idem-2'), 0::bigint, '  idem-2 was not created');

-- append_event retries.
SELECT stream_version AS e1, global_position AS q1
  FROM eventstore.append_event('idem-3', 'Created', '{"k": 1}', event_id => '1d000000-0000-4000-8000-0000000000e1',
                               expected_version => 0) \gset
SELECT pg_temp.store_state() AS s3 \gset
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append_event('idem-3', 'Created', '{"k": 1}',
          event_id => '1d000000-0000-4000-8000-0000000000e1', expected_version => 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :e1, :q1),
    'append_event: a retry with the same expectation returns the original result');
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append_event('idem-3', 'Created', '{"k": 1}',
          event_id => '1d000000-0000-4000-8000-0000000000e1')$$,
    format('VALUES (%s::bigint, %s::bigint)', :e1, :q1),
    'append_event: a retry with the NULL expectation returns the original result');
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append('idem-3',
          '[{"type": "Created", "data": {"k": 1}, "id": "1d000000-0000-4000-8000-0000000000e1"}]', 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :e1, :q1),
    'append_event then a retry through append: the original result');
SELECT is(pg_temp.store_state(), :'s3', '  and they write nothing');
SELECT lives_ok($$SELECT eventstore.append_event('idem-3', 'Changed')$$, 'idem-3 moves on to version 2');
SELECT results_eq(
    $$SELECT stream_version, global_position FROM eventstore.append_event('idem-3', 'Created', '{"k": 1}',
          event_id => '1d000000-0000-4000-8000-0000000000e1', expected_version => 0)$$,
    format('VALUES (%s::bigint, %s::bigint)', :e1, :q1),
    'append_event: a late retry returns the original result');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append_event('idem-3', 'Created', '{"k": 1}',
          event_id => '1d000000-0000-4000-8000-0000000000e1', expected_version => 2)$$,
    'ES001', NULL, 'append_event: a retry with a mismatched expectation: ES001');
SELECT throws_ok(
    $$SELECT * FROM eventstore.append_event('idem-4', 'Created', '{"k": 1}',
          event_id => '1d000000-0000-4000-8000-0000000000e1')$$,
    'ES003', NULL, 'append_event: the id to another stream: ES003');
SELECT results_eq(
    $$SELECT stream_version, event_type COLLATE "default" FROM eventstore.read_stream('idem-3')$$,
    $$VALUES (1::bigint, 'Created'::text), (2, 'Changed')$$,
    'idem-3 holds each event once');
SELECT results_eq(
    $$SELECT stream_version, event_id FROM eventstore.read_stream('idem-1')$$,
    $$VALUES (1::bigint, '1d000000-0000-4000-8000-000000000001'::uuid),
             (2, '1d000000-0000-4000-8000-000000000002'), (3, '1d000000-0000-4000-8000-000000000003')$$,
    'idem-1 holds each event once');

SELECT * FROM finish();
ROLLBACK;
