-- Benchmark fixture: the eventstore extension and a plain baseline table
-- with the same columns, constraints and indexes, both prefilled with the
-- same rows (the same event ids too), so the indexes start identical.
--
-- psql variables: nstreams (streams of the append benchmarks),
-- prefill_per_stream (events per stream), read_streams, read_len.
\set ON_ERROR_STOP on

-- (run.sh has created the extension: it checks which build it got)

CREATE SCHEMA bench;

-- The same rule as eventstore.category: the part before the first '-'
-- (split_part returns the whole name when there is none).  A plain SQL
-- function, inlined into the index expression.
CREATE FUNCTION bench.category(stream text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT split_part(stream, '-', 1) $$;

CREATE SEQUENCE bench.plain_position_seq AS bigint MINVALUE 1 CACHE 1 NO CYCLE;

CREATE TABLE bench.plain_events (
    global_position bigint      NOT NULL,
    stream          text        COLLATE "C" NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        COLLATE "C" NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT plain_events_pkey PRIMARY KEY (global_position),
    CONSTRAINT plain_events_stream_version_key UNIQUE (stream, stream_version),
    CONSTRAINT plain_events_event_id_key UNIQUE (event_id),
    CONSTRAINT plain_events_stream_version_check CHECK (stream_version >= 1),
    CONSTRAINT plain_events_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX plain_events_category_idx ON bench.plain_events (bench.category(stream), global_position);
CREATE INDEX plain_events_type_idx ON bench.plain_events (event_type, global_position);
CREATE INDEX plain_events_correlation_idx ON bench.plain_events ((metadata ->> 'correlation_id'))
    WHERE metadata ? 'correlation_id';
CREATE INDEX plain_events_causation_idx ON bench.plain_events ((metadata ->> 'causation_id'))
    WHERE metadata ? 'causation_id';

-- The same statement-level immutability triggers as eventstore.events
-- (they never fire on INSERT; here only so the tables match).
CREATE FUNCTION bench.refuse_change() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'events are immutable'; END $$;
CREATE TRIGGER plain_events_immutable BEFORE UPDATE OR DELETE ON bench.plain_events
    FOR EACH STATEMENT EXECUTE FUNCTION bench.refuse_change();
CREATE TRIGGER plain_events_no_truncate BEFORE TRUNCATE ON bench.plain_events
    FOR EACH STATEMENT EXECUTE FUNCTION bench.refuse_change();

-- Prefill: nstreams streams 'bench-N' with prefill_per_stream events each,
-- then read_streams streams 'read-N' with read_len events each.  Rows are
-- interleaved (version-major), as concurrent writers would leave them, so
-- a stream's events are spread over the heap.  One set of rows, copied
-- into both tables with their own sequences.
CREATE TEMP TABLE fill AS
SELECT row_number() OVER (ORDER BY part, v, s) AS pos, stream, v AS version,
       gen_random_uuid() AS id, 'Prefilled' AS type,
       jsonb_build_object('amount', v, 'currency', 'EUR', 'note', 'benchmark prefill payload') AS data,
       jsonb_build_object('correlation_id', 'c-' || s || '-' || v,
                          'causation_id', 'c-' || s || '-' || (v - 1)) AS metadata
FROM (
    SELECT 1 AS part, s, v, 'bench-' || s AS stream
    FROM generate_series(1, :nstreams) s, generate_series(1, :prefill_per_stream) v
    UNION ALL
    SELECT 2, s, v, 'read-' || s
    FROM generate_series(1, :read_streams) s, generate_series(1, :read_len) v
) x;

INSERT INTO eventstore.events
SELECT pos, stream, version, id, type, data, metadata, now() FROM fill ORDER BY pos;
INSERT INTO bench.plain_events
SELECT pos, stream, version, id, type, data, metadata, now() FROM fill ORDER BY pos;
SELECT setval('eventstore.global_position_seq', (SELECT max(pos) FROM fill));
SELECT setval('bench.plain_position_seq', (SELECT max(pos) FROM fill));
DROP TABLE fill;

VACUUM (ANALYZE) eventstore.events;
VACUUM (ANALYZE) bench.plain_events;

-- Sanity: the eventstore API sees the prefilled streams.
SELECT eventstore.stream_version('bench-1') AS bench_1_version,
       eventstore.stream_version('read-1') AS read_1_version;

-- For the diagnostic variant plain_read_srf: the baseline read behind a
-- materializing set-returning function.
CREATE FUNCTION bench.read_stream_plpgsql(p_stream text) RETURNS SETOF bench.plain_events
    LANGUAGE plpgsql STABLE
    AS $$ BEGIN
        RETURN QUERY SELECT * FROM bench.plain_events WHERE stream = p_stream ORDER BY stream_version;
    END $$;
