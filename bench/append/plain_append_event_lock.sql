-- variant: the baseline plus a per-stream transaction advisory lock, the
-- cost of the serialization eventstore does (in one statement the lock is
-- taken after the statement's snapshot, so this is a cost model only, not
-- a correct way to serialize appends).
\set per :nstreams / :clients
\set sid :client_id * :per + random(1, :per)
\set c random(1, 1000000000)
WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended('bench-' || :sid, 0)))
INSERT INTO bench.plain_events
SELECT nextval('bench.plain_position_seq'), 'bench-' || :sid,
       coalesce(max(stream_version), 0) + 1, gen_random_uuid(), 'Type',
       '{"amount": 42, "currency": "EUR", "note": "benchmark event payload"}',
       jsonb_build_object('correlation_id', 'c-' || :c, 'causation_id', 'p-' || :c),
       now()
FROM bench.plain_events WHERE stream = 'bench-' || :sid AND (SELECT true FROM l)
RETURNING stream_version, global_position;
