-- Loader for bench/feed.sh: eventstore.append in batches of 1000 events per
-- transaction (100 streams x 10 events), through eventstore.append itself
-- (the registry and every index are maintained as in production).
--
-- Streams: <category>-<n>, n = 1..nstreams, category = one of four by n % 4
-- (order, payment, shipment, customer).  Event types cycle over five by
-- version (Opened, Changed, Noted, Moved, Closed: 20% each).  Loading goes
-- in rounds of 10 events per stream, so each category's events are spread
-- over the whole log (blocks of 10 consecutive positions per stream), as
-- with real interleaved traffic.
DROP SCHEMA IF EXISTS feedbench CASCADE;
CREATE SCHEMA feedbench;

CREATE OR REPLACE FUNCTION feedbench.stream_name(n integer) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT (ARRAY['order', 'payment', 'shipment', 'customer'])[n % 4 + 1] || '-' || n $$;

CREATE OR REPLACE FUNCTION feedbench.batch(n integer, first_version integer, cnt integer) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'type', (ARRAY['Opened', 'Changed', 'Noted', 'Moved', 'Closed'])[v % 5 + 1],
               'data', jsonb_build_object('amount', v * 7 % 1000, 'currency', 'EUR',
                                          'note', 'feed benchmark payload', 'ref', n),
               'metadata', jsonb_build_object('correlation_id', 'c-' || n || '-' || v,
                                              'causation_id', 'c-' || n || '-' || (v - 1)))
           ORDER BY v)
      FROM generate_series(first_version, first_version + cnt - 1) AS v
$$;

-- Append rounds x per_round events to every stream n in [lo, hi] with
-- n % nworkers = worker, committing every streams_per_tx streams.
CREATE OR REPLACE PROCEDURE feedbench.load(lo integer, hi integer, rounds integer, per_round integer,
                                           worker integer, nworkers integer, streams_per_tx integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    k integer := 0;
BEGIN
    FOR r IN 0 .. rounds - 1 LOOP
        FOR n IN lo .. hi LOOP
            CONTINUE WHEN n % nworkers <> worker;
            PERFORM eventstore.append(feedbench.stream_name(n), feedbench.batch(n, r * per_round + 1, per_round),
                                      r * per_round);
            k := k + 1;
            IF k % streams_per_tx = 0 THEN
                COMMIT;
            END IF;
        END LOOP;
    END LOOP;
    COMMIT;
END
$$;
