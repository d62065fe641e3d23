-- Catch-up readers for bench/feed.sh.  feedbench.catchup(reader, what)
-- pages through the whole log from position 0, 1000 events a page, each
-- page continuing after the last position of the previous one, inside the
-- server (no client in the loop), until a page comes back empty.  It
-- returns the events and pages read, the wall time, the CPU time of this
-- backend (from /proc/self/schedstat, so time spent waiting for a CPU on a
-- busy machine is not counted) and its minor page faults.
--
-- Every page's rows are fully formed, as a consumer would get them: the
-- per-page query aggregates sum(pg_column_size(page.*)), which builds each
-- row from all eight columns.  The same on both sides.
--
-- reader: es        eventstore.read_all / read_category
--         plain     the equivalent SELECT on eventstore.events
--         plain_srf (diagnostic) the same SELECT behind a PL/pgSQL
--                   set-returning function (RETURN QUERY), which puts the
--                   page in a tuplestore first, as every set-returning
--                   function in FROM does
--         plain_head (diagnostic) plain, plus eventstore.head_position()
--                   once a page: the horizon computation alone
-- max_pages: stop after that many pages (NULL: at the end of the log).
-- what:   all | cat (category 'payment', 1/4 of the log)
--         | type1 (event_types {Noted}, 1/5) | type2 ({Noted,Moved}, 2/5)

CREATE TYPE feedbench.pass AS (events bigint, pages integer, bytes bigint,
                               wall_ms double precision, cpu_ms double precision,
                               minflt bigint);

-- CPU time of this backend so far, in nanoseconds (Linux).
CREATE FUNCTION feedbench.cpu_ns() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;

-- Minor page faults of this backend so far (Linux; field 10 of /proc/self/stat,
-- counted after the parenthesised command name).
CREATE FUNCTION feedbench.minflt() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT split_part(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ', 8)::bigint $$;

CREATE FUNCTION feedbench.plain_page(after bigint) RETURNS SETOF eventstore.event
    LANGUAGE plpgsql STABLE ROWS 1000
AS $$
BEGIN
    RETURN QUERY SELECT * FROM eventstore.events AS e
                  WHERE e.global_position > after ORDER BY e.global_position LIMIT 1000;
END
$$;

CREATE FUNCTION feedbench.catchup(reader text, what text, max_pages integer DEFAULT NULL)
    RETURNS feedbench.pass
    LANGUAGE plpgsql
AS $$
DECLARE
    cat CONSTANT text := 'payment';
    types text[] := CASE what WHEN 'type1' THEN '{Noted}'::text[] ELSE '{Noted,Moved}'::text[] END;
    last bigint := 0;
    n bigint;
    mx bigint;
    b bigint;
    h bigint;
    res feedbench.pass := ROW(0, 0, 0, 0, 0, 0);
    f0 bigint := feedbench.minflt();
    t0 timestamptz := clock_timestamp();
    c0 bigint := feedbench.cpu_ns();
BEGIN
    LOOP
        IF reader = 'es' AND what = 'all' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM eventstore.read_all(last, 1000) AS p;
        ELSIF reader = 'es' AND what = 'cat' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM eventstore.read_category(cat, last, 1000) AS p;
        ELSIF reader = 'es' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM eventstore.read_all(last, 1000, NULL, types) AS p;
        ELSIF reader IN ('plain', 'plain_head') AND what = 'all' THEN
            IF reader = 'plain_head' THEN
                h := eventstore.head_position();
            END IF;
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM (SELECT * FROM eventstore.events AS e
                     WHERE e.global_position > last ORDER BY e.global_position LIMIT 1000) AS p;
        ELSIF reader = 'plain_srf' AND what = 'all' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM feedbench.plain_page(last) AS p;
        ELSIF reader = 'plain' AND what = 'cat' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM (SELECT * FROM eventstore.events AS e
                     WHERE eventstore.category(e.stream) = cat AND e.global_position > last
                     ORDER BY e.global_position LIMIT 1000) AS p;
        ELSIF reader = 'plain' THEN
            SELECT count(*), max(p.global_position), sum(pg_column_size(p.*)) INTO n, mx, b
              FROM (SELECT * FROM eventstore.events AS e
                     WHERE e.event_type = ANY (types) AND e.global_position > last
                     ORDER BY e.global_position LIMIT 1000) AS p;
        ELSE
            RAISE EXCEPTION 'unknown reader % / what %', reader, what;
        END IF;
        EXIT WHEN n = 0;
        res.events := res.events + n;
        res.pages := res.pages + 1;
        res.bytes := res.bytes + b;
        last := mx;
        EXIT WHEN res.pages >= max_pages;
    END LOOP;
    res.wall_ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
    res.cpu_ms := (feedbench.cpu_ns() - c0) / 1e6;
    res.minflt := feedbench.minflt() - f0;
    RETURN res;
END
$$;

-- The registry's cost in one backend: n single-event appends, one
-- transaction each, to streams solo-<i % 10000>; CPU time of this backend.
-- Run it with eventstore.debug_skip_registry on and off.
CREATE PROCEDURE feedbench.append_loop(n integer, INOUT events bigint DEFAULT NULL,
                                       INOUT wall_ms double precision DEFAULT NULL,
                                       INOUT cpu_ms double precision DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    c0 bigint := feedbench.cpu_ns();
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM eventstore.append_event('solo-' || i % 10000, 'Ticked',
                                        '{"amount": 42, "currency": "EUR", "note": "registry benchmark"}', '{}');
        COMMIT;
    END LOOP;
    events := n;
    wall_ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
    cpu_ms := (feedbench.cpu_ns() - c0) / 1e6;
END
$$;
