-- bench/poll.sh: generators and consumer loops, run inside the server so
-- that the client adds nothing.  poll may run in a procedure (only
-- create_subscription refuses a transaction block); every loop commits
-- once per call, as a client in autocommit mode or with one transaction
-- per page would.
DROP SCHEMA IF EXISTS pollbench CASCADE;
CREATE SCHEMA pollbench;

-- CPU time of this backend so far, in nanoseconds (Linux).
CREATE FUNCTION pollbench.cpu_ns() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;

-- n events in transactions of tx events (one eventstore.append each) to
-- the streams <cat>-0 .. <cat>-999.
CREATE PROCEDURE pollbench.gen(cat text, n integer, tx integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    i integer := 0;
BEGIN
    WHILE i < n LOOP
        PERFORM eventstore.append(cat || '-' || (i / tx) % 1000,
                    (SELECT jsonb_agg(jsonb_build_object('type', 'Tick',
                                'data', jsonb_build_object('i', k, 'note', 'poll benchmark payload'),
                                'metadata', jsonb_build_object('correlation_id', 'c-' || k)) ORDER BY k)
                       FROM generate_series(i, least(i + tx, n) - 1) AS k));
        COMMIT;
        i := i + tx;
    END LOOP;
END
$$;

-- One row per timed loop.
CREATE TABLE pollbench.runs (
    part    text NOT NULL,      -- empty | catchup
    what    text NOT NULL,
    round   integer NOT NULL,
    calls   bigint NOT NULL,
    events  bigint NOT NULL,
    wall_ms double precision NOT NULL,
    cpu_ms  double precision NOT NULL
);

-- (a) calls that find nothing, for secs seconds, one transaction each:
--   poll:      count(*) FROM eventstore.poll(arg)
--   read_all:  count(*) FROM eventstore.read_all(head, 1000[, prefix])
--              (prefix = arg, NULL: unfiltered)
CREATE PROCEDURE pollbench.empty(what text, rnd integer, kind text, arg text, secs double precision)
    LANGUAGE plpgsql
AS $$
DECLARE
    h bigint := eventstore.head_position();
    deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
    t0 timestamptz;
    c0 bigint;
    k bigint;
    calls bigint := 0;
    total bigint := 0;
BEGIN
    COMMIT;
    t0 := clock_timestamp();
    c0 := pollbench.cpu_ns();
    LOOP
        IF kind = 'poll' THEN
            SELECT count(*) INTO k FROM eventstore.poll(arg);
        ELSE
            SELECT count(*) INTO k FROM eventstore.read_all(h, 1000, arg);
        END IF;
        COMMIT;
        calls := calls + 1;
        total := total + k;
        EXIT WHEN clock_timestamp() > deadline;
    END LOOP;
    INSERT INTO pollbench.runs VALUES ('empty', what, rnd, calls, total,
        1000 * extract(epoch FROM clock_timestamp() - t0), (pollbench.cpu_ns() - c0) / 1e6);
    COMMIT;
END
$$;

-- (b) latency: for each event a consumer receives, the time from the
-- writer's clock_timestamp() (in the event's data, taken in the append's
-- transaction) to the moment the poll / read returned it.
CREATE TABLE pollbench.latency (
    consumer text NOT NULL,
    round    integer NOT NULL,
    position bigint NOT NULL,
    lat_ms   double precision NOT NULL
);
CREATE TABLE pollbench.polls (
    consumer text NOT NULL,
    round    integer NOT NULL,
    polls    integer NOT NULL,
    empty_polls integer NOT NULL,
    events   bigint NOT NULL,
    poll_ms_sum double precision NOT NULL,
    poll_ms_max double precision NOT NULL,
    cpu_ms   double precision NOT NULL
);
-- the read_all consumers' checkpoints (a subscription keeps its own)
CREATE TABLE pollbench.checkpoint (consumer text PRIMARY KEY, position bigint NOT NULL);

-- One consumer loop for secs seconds; one transaction per iteration:
-- fetch at most 1000 events, record their latencies, acknowledge, commit;
-- after an empty fetch sleep idle_ms.
--   poll:     eventstore.poll(sub, 1000) + eventstore.ack(sub)
--   read_all: eventstore.read_all(checkpoint, 1000) + update of a checkpoint row
CREATE PROCEDURE pollbench.consume(kind text, rnd integer, sub text, secs double precision, idle_ms double precision)
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
    c0 bigint;
BEGIN
    IF kind = 'read_all' THEN
        INSERT INTO pollbench.checkpoint AS c VALUES (kind, eventstore.head_position())
            ON CONFLICT ON CONSTRAINT checkpoint_pkey DO UPDATE SET position = excluded.position;
    END IF;
    COMMIT;
    c0 := pollbench.cpu_ns();
    LOOP
        tp := clock_timestamp();
        IF kind = 'poll' THEN
            WITH ins AS (
                INSERT INTO pollbench.latency
                SELECT kind, rnd, p.global_position,
                       1000 * extract(epoch FROM clock_timestamp() - (p.data ->> 't')::timestamptz)
                  FROM eventstore.poll(sub, 1000) AS p
                RETURNING 1)
            SELECT count(*) INTO n FROM ins;
            IF n > 0 THEN
                PERFORM eventstore.ack(sub);
            END IF;
        ELSE
            SELECT c.position INTO last FROM pollbench.checkpoint AS c WHERE c.consumer = kind FOR UPDATE;
            WITH ins AS (
                INSERT INTO pollbench.latency
                SELECT kind, rnd, p.global_position,
                       1000 * extract(epoch FROM clock_timestamp() - (p.data ->> 't')::timestamptz)
                  FROM eventstore.read_all(last, 1000) AS p
                RETURNING position)
            SELECT count(*), max(ins.position) INTO n, last FROM ins;
            IF n > 0 THEN
                UPDATE pollbench.checkpoint AS c SET position = last WHERE c.consumer = kind;
            END IF;
        END IF;
        COMMIT;
        dt := 1000 * extract(epoch FROM clock_timestamp() - tp);
        psum := psum + dt;
        pmax := greatest(pmax, dt);
        polls := polls + 1;
        total := total + n;
        EXIT WHEN clock_timestamp() > deadline;
        IF n = 0 THEN
            empty := empty + 1;
            PERFORM pg_sleep(idle_ms / 1000.0);
        END IF;
    END LOOP;
    INSERT INTO pollbench.polls VALUES (kind, rnd, polls, empty, total, psum, pmax,
                                        (pollbench.cpu_ns() - c0) / 1e6);
    COMMIT;
END
$$;

-- (c) catch-up in pages of page events, one transaction per page, until a
-- page comes back empty:
--   poll:     count(*) FROM eventstore.poll(sub, page) + eventstore.ack(sub)
--   read_all: count(*), max(position) FROM eventstore.read_all(checkpoint, page)
--             + update of a checkpoint row (from position arg)
CREATE PROCEDURE pollbench.catchup(what text, rnd integer, kind text, sub text, from_pos bigint, page integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz;
    c0 bigint;
    n bigint;
    m bigint;
    last bigint;
    calls bigint := 0;
    total bigint := 0;
BEGIN
    INSERT INTO pollbench.checkpoint AS c VALUES ('catchup', from_pos)
        ON CONFLICT ON CONSTRAINT checkpoint_pkey DO UPDATE SET position = excluded.position;
    COMMIT;
    t0 := clock_timestamp();
    c0 := pollbench.cpu_ns();
    LOOP
        IF kind = 'poll' THEN
            SELECT count(*) INTO n FROM eventstore.poll(sub, page);
            IF n > 0 THEN
                PERFORM eventstore.ack(sub);
            END IF;
        ELSE
            SELECT c.position INTO last FROM pollbench.checkpoint AS c WHERE c.consumer = 'catchup' FOR UPDATE;
            SELECT count(*), max(a.global_position) INTO n, m FROM eventstore.read_all(last, page) AS a;
            IF n > 0 THEN
                UPDATE pollbench.checkpoint AS c SET position = m WHERE c.consumer = 'catchup';
            END IF;
        END IF;
        COMMIT;
        calls := calls + 1;
        total := total + n;
        EXIT WHEN n = 0;
    END LOOP;
    INSERT INTO pollbench.runs VALUES ('catchup', what, rnd, calls, total,
        1000 * extract(epoch FROM clock_timestamp() - t0), (pollbench.cpu_ns() - c0) / 1e6);
    COMMIT;
END
$$;
