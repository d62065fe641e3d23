-- Helpers for bench/projection.sh (issue 5): the read model, its handler,
-- and server-side timers so no client round trip is inside a measurement.
DROP SCHEMA IF EXISTS projbench CASCADE;
CREATE SCHEMA projbench;

-- Read model filled by the async projection, and the baseline's twin.
CREATE TABLE public.rm (event_id uuid PRIMARY KEY, stream text, version bigint, type text);
CREATE TABLE public.rm2 (event_id uuid PRIMARY KEY, stream text, version bigint, type text);

CREATE FUNCTION public.h(e eventstore.event) RETURNS void LANGUAGE sql
AS $$ INSERT INTO public.rm VALUES (e.event_id, e.stream, e.stream_version, e.event_type) $$;

-- The same read model from a batch handler: one INSERT ... SELECT a batch.
CREATE FUNCTION public.hb(events eventstore.event[]) RETURNS void LANGUAGE sql
AS $$ INSERT INTO public.rm SELECT e.event_id, e.stream, e.stream_version, e.event_type FROM unnest(events) AS e $$;

-- Create projection p with handler (async: the background worker runs it
-- from position 0) and poll its lag every 10 ms until it is 0; seconds from just before
-- the create (the create commits in its own transaction first).
CREATE PROCEDURE projbench.run_projection(timeout_s integer, handler text DEFAULT 'public.h(eventstore.event)',
                                          INOUT secs double precision DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    l bigint;
    err text;
BEGIN
    PERFORM eventstore.create_projection('p', handler::regprocedure);
    COMMIT;
    LOOP
        SELECT p.lag, p.last_error INTO l, err FROM eventstore.projections AS p WHERE p.name = 'p';
        IF err IS NOT NULL THEN
            RAISE EXCEPTION 'projection p failed: %', err;
        END IF;
        EXIT WHEN l = 0;
        IF clock_timestamp() - t0 > make_interval(secs => timeout_s) THEN
            RAISE EXCEPTION 'projection p still % behind after % s', l, timeout_s;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- The baseline: the same rows into a table of the same shape by one
-- hand-written INSERT ... SELECT in log order; seconds.
CREATE PROCEDURE projbench.baseline(INOUT secs double precision DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz;
BEGIN
    TRUNCATE public.rm2;
    COMMIT;
    t0 := clock_timestamp();
    INSERT INTO public.rm2 SELECT event_id, stream, stream_version, event_type
      FROM eventstore.events ORDER BY global_position;
    COMMIT;
    secs := extract(epoch FROM clock_timestamp() - t0);
END
$$;
