-- Fixture of bench/decoding.sh: workload generators, a timed peek, and
-- the consumers of the latency measurement.
DROP SCHEMA IF EXISTS decbench CASCADE;
CREATE SCHEMA decbench;

-- CPU time of this backend so far, in nanoseconds (Linux).
CREATE FUNCTION decbench.cpu_ns() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;

CREATE FUNCTION decbench.event_data(i bigint) RETURNS jsonb LANGUAGE sql IMMUTABLE
    AS $$ SELECT jsonb_build_object('amount', i * 7 % 1000, 'currency', 'EUR',
                                    'note', 'decoding benchmark payload', 'ref', i) $$;

CREATE FUNCTION decbench.event_metadata(i bigint) RETURNS jsonb LANGUAGE sql IMMUTABLE
    AS $$ SELECT jsonb_build_object('correlation_id', 'c-' || i, 'causation_id', 'c-' || (i - 1)) $$;

-- A JSON array of cnt events for eventstore.append.
CREATE FUNCTION decbench.batch(first bigint, cnt integer) RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_agg(jsonb_build_object('type', (ARRAY['Opened', 'Changed', 'Noted', 'Moved', 'Closed'])[i % 5 + 1],
                                        'data', decbench.event_data(i),
                                        'metadata', decbench.event_metadata(i)) ORDER BY i)
      FROM generate_series(first, first + cnt - 1) AS i
$$;

-- Workload (a): events i = worker, worker + nworkers, ... < n, one
-- append_event and one transaction each, to stream single-<i % 10000>.
CREATE PROCEDURE decbench.gen_single(n integer, worker integer, nworkers integer)
    LANGUAGE plpgsql
AS $$
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        CONTINUE WHEN i % nworkers <> worker;
        PERFORM eventstore.append_event('single-' || i % 10000,
                                        (ARRAY['Opened', 'Changed', 'Noted', 'Moved', 'Closed'])[i % 5 + 1],
                                        decbench.event_data(i), decbench.event_metadata(i));
        COMMIT;
    END LOOP;
END
$$;

-- Workload (b): transactions t = worker, worker + nworkers, ... < ntx, one
-- eventstore.append of per_tx events each, to stream batch-<t>.
CREATE PROCEDURE decbench.gen_batch(ntx integer, per_tx integer, worker integer, nworkers integer)
    LANGUAGE plpgsql
AS $$
BEGIN
    FOR t IN 0 .. ntx - 1 LOOP
        CONTINUE WHEN t % nworkers <> worker;
        PERFORM eventstore.append('batch-' || t, decbench.batch(t::bigint * per_tx, per_tx));
        COMMIT;
    END LOOP;
END
$$;

-- Decode a slot's pending changes up to upto without consuming them, and
-- time it.  The output rows are counted and their bytes summed; work_mem
-- is large so the output stays in memory for every plugin.
CREATE TYPE decbench.peek_result AS (out_rows bigint, out_bytes bigint,
                                     wall_ms double precision, cpu_ms double precision);
CREATE FUNCTION decbench.peek(slot name, upto pg_lsn, VARIADIC opts text[] DEFAULT '{}')
    RETURNS decbench.peek_result LANGUAGE plpgsql
    SET work_mem = '2GB'
AS $$
DECLARE
    res decbench.peek_result;
    t0 timestamptz := clock_timestamp();
    c0 bigint := decbench.cpu_ns();
BEGIN
    SELECT count(*), coalesce(sum(octet_length(p.data)), 0) INTO res.out_rows, res.out_bytes
      FROM pg_logical_slot_peek_changes(slot, upto, NULL, VARIADIC opts) AS p;
    res.wall_ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
    res.cpu_ms := (decbench.cpu_ns() - c0) / 1e6;
    RETURN res;
END
$$;

-- Latency: every consumer records, for each event it receives, the time
-- from the writer's clock_timestamp() (in the event's data, taken just
-- before the append) to the moment the poll returned it.
CREATE TABLE decbench.latency (
    consumer text NOT NULL,
    round    integer NOT NULL,
    position bigint NOT NULL,
    lat_ms   double precision NOT NULL
);
CREATE TABLE decbench.polls (
    consumer text NOT NULL,
    round    integer NOT NULL,
    polls    integer NOT NULL,
    empty_polls integer NOT NULL,
    events   bigint NOT NULL,
    poll_ms_sum double precision NOT NULL,   -- time in poll + acknowledge + commit
    poll_ms_max double precision NOT NULL,
    lag_kb_sum double precision,             -- sub: WAL between the slot's restart_lsn and
    lag_kb_max double precision,             -- confirmed_flush_lsn, which every peek decodes again
    cpu_ms   double precision NOT NULL       -- CPU time of the consumer backend over the loop
);
CREATE TABLE decbench.checkpoint (consumer text PRIMARY KEY, position bigint NOT NULL);

-- One consumer loop for secs seconds.  Each iteration is one transaction:
-- poll at most 1000 events, record their latencies, acknowledge (ack, or
-- the checkpoint row for the table readers), commit.  After an empty poll
-- it sleeps idle_ms before polling again; after a non-empty one it polls
-- again at once.
--   sub:     eventstore.poll / eventstore.ack on subscription 'lat'
--   readall: eventstore.read_all(checkpoint, 1000) (the gap-safe feed)
--   plain:   SELECT ... WHERE global_position > checkpoint ORDER BY
--            global_position LIMIT 1000 (not gap-safe: a baseline only)
CREATE PROCEDURE decbench.consume(kind text, rnd integer, secs double precision, idle_ms double precision)
    LANGUAGE plpgsql
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
    n bigint;
    polls integer := 0;
    empty integer := 0;
    total bigint := 0;
    last bigint;
    tp timestamptz;
    dt double precision;
    psum double precision := 0;
    pmax double precision := 0;
    lag double precision;
    lsum double precision;
    lmax double precision;
    c0 bigint;
BEGIN
    IF kind <> 'sub' THEN
        INSERT INTO decbench.checkpoint AS c VALUES (kind, (SELECT coalesce(max(global_position), 0) FROM eventstore.events))
            ON CONFLICT ON CONSTRAINT checkpoint_pkey DO UPDATE SET position = excluded.position;
        COMMIT;
    END IF;
    c0 := decbench.cpu_ns();
    LOOP
        tp := clock_timestamp();
        IF kind = 'sub' THEN
            WITH ins AS (
                INSERT INTO decbench.latency
                SELECT kind, rnd, p.global_position,
                       1000 * extract(epoch FROM clock_timestamp() - (p.data ->> 't')::timestamptz)
                  FROM eventstore.poll('lat', 1000) AS p
                RETURNING 1)
            SELECT count(*) INTO n FROM ins;
            IF n > 0 THEN
                PERFORM eventstore.ack('lat');
            END IF;
        ELSE
            SELECT c.position INTO last FROM decbench.checkpoint AS c
             WHERE c.consumer = kind FOR UPDATE;
            IF kind = 'readall' THEN
                WITH ins AS (
                    INSERT INTO decbench.latency
                    SELECT kind, rnd, p.global_position,
                           1000 * extract(epoch FROM clock_timestamp() - (p.data ->> 't')::timestamptz)
                      FROM eventstore.read_all(last, 1000) AS p
                    RETURNING position)
                SELECT count(*), max(ins.position) INTO n, last FROM ins;
            ELSE
                WITH ins AS (
                    INSERT INTO decbench.latency
                    SELECT kind, rnd, p.global_position,
                           1000 * extract(epoch FROM clock_timestamp() - (p.data ->> 't')::timestamptz)
                      FROM (SELECT * FROM eventstore.events AS e WHERE e.global_position > last
                             ORDER BY e.global_position LIMIT 1000) AS p
                    RETURNING position)
                SELECT count(*), max(ins.position) INTO n, last FROM ins;
            END IF;
            IF n > 0 THEN
                UPDATE decbench.checkpoint AS c SET position = last WHERE c.consumer = kind;
            END IF;
        END IF;
        COMMIT;
        dt := 1000 * extract(epoch FROM clock_timestamp() - tp);
        psum := psum + dt;
        pmax := greatest(pmax, dt);
        IF kind = 'sub' THEN
            SELECT pg_wal_lsn_diff(r.confirmed_flush_lsn, r.restart_lsn) / 1024 INTO lag
              FROM pg_replication_slots AS r
             WHERE r.slot_name = (SELECT s.slot_name FROM eventstore.subscription AS s WHERE s.name = 'lat');
            lsum := coalesce(lsum, 0) + lag;
            lmax := greatest(lmax, lag);
        END IF;
        polls := polls + 1;
        total := total + n;
        EXIT WHEN clock_timestamp() > deadline;
        IF n = 0 THEN
            empty := empty + 1;
            PERFORM pg_sleep(idle_ms / 1000.0);
        END IF;
    END LOOP;
    INSERT INTO decbench.polls VALUES (kind, rnd, polls, empty, total, psum, pmax, lsum, lmax,
                                       (decbench.cpu_ns() - c0) / 1e6);
    COMMIT;
END
$$;
