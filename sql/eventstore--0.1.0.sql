\echo Use "CREATE EXTENSION eventstore" to load this file. \quit

CREATE SCHEMA eventstore;
COMMENT ON SCHEMA eventstore IS 'eventstore: streams of immutable events, a gap-safe global feed, subscriptions and projections';

-- Refuse to install unless the library was preloaded: the in-flight
-- registry behind the gap-safe feed lives in shared memory.
CREATE FUNCTION eventstore._assert_preloaded() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_assert_preloaded'
    LANGUAGE C VOLATILE PARALLEL SAFE;
SELECT eventstore._assert_preloaded();
COMMENT ON FUNCTION eventstore._assert_preloaded() IS 'internal: errors unless eventstore is in shared_preload_libraries';

-- The category of a stream: the part of its name before the first '-'.
CREATE FUNCTION eventstore.category(stream text) RETURNS text
    AS 'MODULE_PATHNAME', 'eventstore_category'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.category(text) IS 'category of a stream name: the part before the first "-" (the whole name when it has none)';

CREATE TYPE eventstore.event AS (
    global_position bigint,
    stream          text,
    stream_version  bigint,
    event_id        uuid,
    event_type      text,
    data            jsonb,
    metadata        jsonb,
    created_at      timestamptz
);
COMMENT ON TYPE eventstore.event IS 'one stored event, as every read function returns it';

-- Global positions.  CACHE 1 is required: the gap-safe feed relies on
-- positions being handed out in allocation order across all backends.
CREATE SEQUENCE eventstore.global_position_seq AS bigint MINVALUE 1 CACHE 1 NO CYCLE;
COMMENT ON SEQUENCE eventstore.global_position_seq IS 'allocates global positions; never touch it directly';

CREATE TABLE eventstore.events (
    global_position bigint      NOT NULL,
    stream          text        COLLATE "C" NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        COLLATE "C" NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (global_position),
    CONSTRAINT events_stream_version_key UNIQUE (stream, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_check CHECK (stream_version >= 1),
    CONSTRAINT events_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);
ALTER SEQUENCE eventstore.global_position_seq OWNED BY eventstore.events.global_position;
COMMENT ON TABLE eventstore.events IS 'the event log: append-only, written only by eventstore.append/append_event';

CREATE INDEX events_category_idx ON eventstore.events (eventstore.category(stream), global_position);
CREATE INDEX events_type_idx ON eventstore.events (event_type, global_position);
CREATE INDEX events_correlation_idx ON eventstore.events ((metadata ->> 'correlation_id'))
    WHERE metadata ? 'correlation_id';
CREATE INDEX events_causation_idx ON eventstore.events ((metadata ->> 'causation_id'))
    WHERE metadata ? 'causation_id';

-- pg_dump keeps the events and the position counter.
SELECT pg_catalog.pg_extension_config_dump('eventstore.events', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.global_position_seq', '');

-- Immutability: UPDATE, DELETE and TRUNCATE are refused for every role.
CREATE FUNCTION eventstore._refuse_change() RETURNS trigger
    AS 'MODULE_PATHNAME', 'eventstore_refuse_change'
    LANGUAGE C;
COMMENT ON FUNCTION eventstore._refuse_change() IS 'internal: trigger that keeps stored events immutable';
CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._refuse_change();
-- ALWAYS: session_replication_role = replica must not bypass them either.
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_no_truncate;

-- Append -----------------------------------------------------------------

CREATE FUNCTION eventstore.append(
    stream text,
    events jsonb,
    expected_version bigint DEFAULT NULL)
RETURNS TABLE (stream_version bigint, global_position bigint)
    AS 'MODULE_PATHNAME', 'eventstore_append'
    LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION eventstore.append(text, jsonb, bigint) IS
'atomically append a JSON array of events {type, data, metadata, id} to a stream; expected_version NULL = any, 0 = must not exist, -1 = must exist, n = must be at n';

CREATE FUNCTION eventstore.append_event(
    stream text,
    event_type text,
    data jsonb DEFAULT '{}',
    metadata jsonb DEFAULT '{}',
    expected_version bigint DEFAULT NULL,
    event_id uuid DEFAULT NULL)
RETURNS TABLE (stream_version bigint, global_position bigint)
    AS 'MODULE_PATHNAME', 'eventstore_append_event'
    LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION eventstore.append_event(text, text, jsonb, jsonb, bigint, uuid) IS
'append one event to a stream, with the same expected_version rules as append';

-- Reads ------------------------------------------------------------------

CREATE FUNCTION eventstore.read_stream(
    stream text,
    from_version bigint DEFAULT NULL,
    max_count integer DEFAULT NULL,
    backward boolean DEFAULT false)
RETURNS SETOF eventstore.event
    AS 'MODULE_PATHNAME', 'eventstore_read_stream'
    LANGUAGE C STABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION eventstore.read_stream(text, bigint, integer, boolean) IS
'events of one stream in version order (or reverse with backward), from from_version, at most max_count';

CREATE FUNCTION eventstore.stream_version(stream text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_stream_version'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.stream_version(text) IS 'current version of a stream: its number of events, 0 when it does not exist';

-- The gap-safe global feed ---------------------------------------------

CREATE FUNCTION eventstore.read_all(
    after_position bigint DEFAULT 0,
    max_count integer DEFAULT 1000,
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL)
RETURNS SETOF eventstore.event
    AS 'MODULE_PATHNAME', 'eventstore_read_all'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.read_all(bigint, integer, text, text[]) IS
'events after after_position in global order, up to the safe horizon: a reader that continues from its last position never skips an event';

CREATE FUNCTION eventstore.read_category(
    category text,
    after_position bigint DEFAULT 0,
    max_count integer DEFAULT 1000,
    consumer_group_member integer DEFAULT NULL,
    consumer_group_size integer DEFAULT NULL)
RETURNS SETOF eventstore.event
    AS 'MODULE_PATHNAME', 'eventstore_read_category'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.read_category(text, bigint, integer, integer, integer) IS
'events of the streams of one category in global order, up to the safe horizon, optionally only one consumer group member''s streams';

CREATE FUNCTION eventstore.head_position() RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_head_position'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION eventstore.head_position() IS
'the safe horizon: no event at or below it can still become visible';

CREATE FUNCTION eventstore.consumer_group_member(stream text, group_size integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'eventstore_consumer_group_member'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.consumer_group_member(text, integer) IS
'which member (0..group_size-1) of a consumer group receives a stream: FNV-1a 64-bit hash of the name, unsigned, modulo group_size';

-- Privileges: the functions read and write eventstore.events directly, so
-- EXECUTE on them is the access control.  Nothing is granted to PUBLIC;
-- see the README for the GRANTs an application role needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.category(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.consumer_group_member(text, integer) TO PUBLIC;
GRANT SELECT ON SEQUENCE eventstore.global_position_seq TO PUBLIC;
