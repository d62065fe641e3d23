-- baseline: the same event written by one plain INSERT ... SELECT that
-- computes the next stream version with max() over the (stream,
-- stream_version) index.  Safe here only because clients never share a
-- stream; eventstore also serializes appenders of one stream.
\set per :nstreams / :clients
\set sid :client_id * :per + random(1, :per)
\set c random(1, 1000000000)
INSERT INTO bench.plain_events
SELECT nextval('bench.plain_position_seq'), 'bench-' || :sid,
       coalesce(max(stream_version), 0) + 1, gen_random_uuid(), 'Type',
       '{"amount": 42, "currency": "EUR", "note": "benchmark event payload"}',
       jsonb_build_object('correlation_id', 'c-' || :c, 'causation_id', 'p-' || :c),
       now()
FROM bench.plain_events WHERE stream = 'bench-' || :sid
RETURNING stream_version, global_position;
