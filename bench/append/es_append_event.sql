-- eventstore: one event appended to a random stream of this client's share
-- of the nstreams streams (shares are disjoint: no two clients contend).
\set per :nstreams / :clients
\set sid :client_id * :per + random(1, :per)
\set c random(1, 1000000000)
SELECT * FROM eventstore.append_event('bench-' || :sid, 'Type',
    '{"amount": 42, "currency": "EUR", "note": "benchmark event payload"}',
    jsonb_build_object('correlation_id', 'c-' || :c, 'causation_id', 'p-' || :c));
