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

-- Subscriptions on logical decoding ---------------------------------------
--
-- A subscription is a logical replication slot using the eventstore output
-- plugin plus a row with its filter and a transactional checkpoint.  The
-- cursor of a delivered event is (commit lsn, index in the transaction,
-- position); events delivered from history (the table) have lsn 0/0 and
-- their position as index, so cursors of one subscription always increase.
--
-- The seam: right after the slot is created, seam_position is set to the
-- last position allocated so far.  Positions above it were allocated after
-- the slot became consistent, so their transactions commit after it and
-- the slot delivers them.  Positions at or below it are delivered from the
-- table through the gap-safe feed, once the horizon has passed the seam;
-- the slot skips them.  So every matching event is delivered exactly once.

CREATE FUNCTION eventstore._prevent_in_transaction_block(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_prevent_in_transaction_block'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore._prevent_in_transaction_block(text) IS 'internal: errors inside a transaction block';

CREATE TYPE eventstore.cursor AS (
    lsn      pg_lsn,   -- commit LSN of the event's transaction; 0/0 for history
    seq      bigint,   -- index of the event in its transaction; its position for history
    position bigint    -- global position of the event
);
COMMENT ON TYPE eventstore.cursor IS 'where a subscription is: returned by poll with each event, passed to ack';

CREATE TABLE eventstore.subscription (
    name          text PRIMARY KEY,
    slot_name     name NOT NULL UNIQUE,
    stream_prefix text,
    event_types   text[],
    from_position bigint,
    seam_position bigint,                      -- NULL: no history
    checkpoint    eventstore.cursor NOT NULL,  -- last acknowledged
    polled        eventstore.cursor,           -- last polled by polled_xid
    polled_xid    xid8,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscription_name_check CHECK (name ~ '^[a-z0-9_]{1,40}$')
);
COMMENT ON TABLE eventstore.subscription IS 'subscriptions: slot, filter and checkpoint; use the functions, not this table';
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription', '');

-- Options for the output plugin from a subscription's filter.
CREATE FUNCTION eventstore._subscription_options(s eventstore.subscription) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['write-progress', 'on']
        || CASE WHEN s.stream_prefix IS NULL THEN '{}'::text[]
                ELSE ARRAY['stream-prefixes', s.stream_prefix] END
        || CASE WHEN s.event_types IS NULL THEN '{}'::text[]
                ELSE ARRAY['event-types', pg_catalog.array_to_string(s.event_types, ',')] END
$$;
COMMENT ON FUNCTION eventstore._subscription_options(eventstore.subscription) IS 'internal: output plugin options of a subscription';

-- The subscription row, locked for this transaction, or an error.
CREATE FUNCTION eventstore._subscription_lock(sub_name text) RETURNS eventstore.subscription
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    IF sub_name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO s FROM eventstore.subscription AS t WHERE t.name = sub_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', sub_name USING ERRCODE = '42704';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION eventstore._subscription_lock(text) IS 'internal: lock a subscription row';

CREATE FUNCTION eventstore.create_subscription(
    name text,
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL,
    from_position bigint DEFAULT NULL)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot name;
    seam bigint;
BEGIN
    PERFORM eventstore._prevent_in_transaction_block('eventstore.create_subscription()');
    IF create_subscription.name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF create_subscription.name !~ '^[a-z0-9_]{1,40}$' THEN
        RAISE EXCEPTION 'invalid subscription name "%"', create_subscription.name
            USING ERRCODE = '22023',
                  DETAIL = 'A subscription name is 1 to 40 characters: lower-case letters, digits and underscores.';
    END IF;
    IF stream_prefix IS NOT NULL AND (stream_prefix = '' OR pg_catalog.strpos(stream_prefix, ',') > 0
                                      OR pg_catalog.octet_length(stream_prefix) > 255) THEN
        RAISE EXCEPTION 'invalid stream_prefix "%"', stream_prefix
            USING ERRCODE = '22023', DETAIL = 'A prefix is 1 to 255 bytes without ",".';
    END IF;
    IF event_types IS NOT NULL AND (pg_catalog.cardinality(event_types) = 0
            OR EXISTS (SELECT FROM pg_catalog.unnest(event_types) AS t
                       WHERE t IS NULL OR t = '' OR pg_catalog.strpos(t, ',') > 0)) THEN
        RAISE EXCEPTION 'invalid event_types'
            USING ERRCODE = '22023', DETAIL = 'List at least one type; types must not be NULL, empty or contain ",".';
    END IF;
    IF from_position < 0 THEN
        RAISE EXCEPTION 'from_position must not be negative' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM eventstore.subscription AS s WHERE s.name = create_subscription.name) THEN
        RAISE EXCEPTION 'subscription "%" already exists', create_subscription.name USING ERRCODE = '42710';
    END IF;

    slot := pg_catalog.format('eventstore_%s_%s',
                              (SELECT d.oid FROM pg_catalog.pg_database d
                               WHERE d.datname = pg_catalog.current_database()),
                              create_subscription.name);
    -- a slot left behind by a crash between its creation and the commit
    IF EXISTS (SELECT FROM pg_catalog.pg_replication_slots r WHERE r.slot_name = slot) THEN
        PERFORM pg_catalog.pg_drop_replication_slot(slot);
    END IF;
    PERFORM pg_catalog.pg_create_logical_replication_slot(slot, 'eventstore');
    BEGIN
        IF from_position IS NOT NULL THEN
            SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO seam
              FROM eventstore.global_position_seq AS q;
            seam := greatest(seam, from_position);
        END IF;
        INSERT INTO eventstore.subscription
            (name, slot_name, stream_prefix, event_types, from_position, seam_position, checkpoint)
        VALUES (create_subscription.name, slot, stream_prefix, event_types, from_position, seam,
                ROW('0/0', coalesce(from_position, 0), coalesce(from_position, 0))::eventstore.cursor);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_catalog.pg_drop_replication_slot(slot);
        RAISE;
    END;
END
$$;
COMMENT ON FUNCTION eventstore.create_subscription(text, text, text[], bigint) IS
'create a subscription (a logical replication slot plus a checkpoint); from_position NULL = only events committed from now on, 0 = all history first, n = history after n';

CREATE FUNCTION eventstore.poll(
    name text,
    max_count integer DEFAULT 1000)
RETURNS TABLE (global_position bigint, stream text, stream_version bigint, event_id uuid,
               event_type text, data jsonb, metadata jsonb, created_at timestamptz,
               cursor eventstore.cursor)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
    cur eventstore.cursor;
    slot record;
    e eventstore.event;
    r record;
    j jsonb;
    c eventstore.cursor;
    n integer := 0;
    progress pg_lsn;
BEGIN
    IF max_count IS NULL OR max_count < 1 THEN
        RAISE EXCEPTION 'max_count must be at least 1' USING ERRCODE = '22023';
    END IF;
    s := eventstore._subscription_lock(poll.name);
    -- a second poll in one transaction continues after the first
    cur := CASE WHEN s.polled_xid = pg_catalog.pg_current_xact_id() THEN s.polled ELSE s.checkpoint END;

    SELECT rs.wal_status, rs.confirmed_flush_lsn INTO slot
      FROM pg_catalog.pg_replication_slots AS rs WHERE rs.slot_name = s.slot_name;
    IF NOT FOUND OR slot.wal_status = 'lost' THEN
        RAISE EXCEPTION 'subscription "%" has lost its replication slot "%"', s.name, s.slot_name
            USING ERRCODE = '55000',
                  DETAIL = pg_catalog.format('The last acknowledged position is %s.', (s.checkpoint).position),
                  HINT = pg_catalog.format('Drop the subscription and create it again with from_position => %s; raise max_slot_wal_keep_size to keep more WAL for slow consumers.',
                                           (s.checkpoint).position);
    END IF;

    -- History: events at or below the seam, from the table.
    IF s.seam_position IS NOT NULL AND cur.lsn = '0/0' AND cur.seq < s.seam_position THEN
        FOR e IN SELECT * FROM eventstore.read_all(cur.seq, max_count, s.stream_prefix, s.event_types) AS a
                  WHERE a.global_position <= s.seam_position
        LOOP
            cur := ROW('0/0', e.global_position, e.global_position)::eventstore.cursor;
            global_position := e.global_position; stream := e.stream; stream_version := e.stream_version;
            event_id := e.event_id; event_type := e.event_type; data := e.data; metadata := e.metadata;
            created_at := e.created_at; cursor := cur;
            n := n + 1;
            RETURN NEXT;
        END LOOP;
        IF n = 0 AND eventstore.head_position() >= s.seam_position THEN
            -- history is complete: remember it, so later polls go live at once
            cur := ROW('0/0', s.seam_position, s.seam_position)::eventstore.cursor;
        END IF;
        IF n > 0 OR cur.seq < s.seam_position THEN
            UPDATE eventstore.subscription AS t
               SET polled = cur, polled_xid = pg_catalog.pg_current_xact_id()
             WHERE t.name = s.name;
            RETURN;
        END IF;
    END IF;

    -- Live: bring the slot to the committed checkpoint, then peek from there.
    IF (s.checkpoint).lsn > slot.confirmed_flush_lsn THEN
        PERFORM pg_catalog.pg_replication_slot_advance(s.slot_name, (s.checkpoint).lsn);
    END IF;
    FOR r IN SELECT p.data FROM pg_catalog.pg_logical_slot_peek_changes(
                 s.slot_name, NULL, max_count + 100, VARIADIC eventstore._subscription_options(s)) AS p
    LOOP
        j := r.data::jsonb;
        IF j ? 'progress' THEN
            progress := (j ->> 'progress')::pg_lsn;
            CONTINUE;
        END IF;
        c := ROW((j ->> 'lsn')::pg_lsn, (j ->> 'seq')::bigint, (j ->> 'position')::bigint)::eventstore.cursor;
        IF (c.lsn, c.seq) <= (cur.lsn, cur.seq) OR c.position <= s.seam_position THEN
            CONTINUE;   -- acknowledged already, or delivered from history
        END IF;
        cur := c;
        global_position := c.position; stream := j ->> 'stream'; stream_version := (j ->> 'version')::bigint;
        event_id := (j ->> 'id')::uuid; event_type := j ->> 'type'; data := j -> 'data';
        metadata := j -> 'metadata'; created_at := (j ->> 'created_at')::timestamptz; cursor := c;
        n := n + 1;
        RETURN NEXT;
        EXIT WHEN n >= max_count;
    END LOOP;

    -- Nothing to deliver and nothing pending: move the slot past the
    -- transactions decoded so far, so WAL does not pile up for an idle
    -- subscription whose filter matches nothing.
    IF n = 0 AND progress IS NOT NULL AND cur = s.checkpoint AND progress > slot.confirmed_flush_lsn
       AND (s.checkpoint).lsn <= progress THEN
        PERFORM pg_catalog.pg_replication_slot_advance(s.slot_name, progress);
    END IF;

    UPDATE eventstore.subscription AS t
       SET polled = cur, polled_xid = pg_catalog.pg_current_xact_id()
     WHERE t.name = s.name;
END
$$;
COMMENT ON FUNCTION eventstore.poll(text, integer) IS
'the next events of a subscription after its checkpoint (or after what this transaction already polled), in commit order, each with its cursor';

CREATE FUNCTION eventstore.ack(name text, cursor eventstore.cursor) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    IF ack.cursor IS NULL OR (ack.cursor).lsn IS NULL OR (ack.cursor).seq IS NULL THEN
        RAISE EXCEPTION 'cursor must not be NULL' USING ERRCODE = '22004';
    END IF;
    s := eventstore._subscription_lock(ack.name);
    IF ((ack.cursor).lsn, (ack.cursor).seq) > ((s.checkpoint).lsn, (s.checkpoint).seq) THEN
        UPDATE eventstore.subscription AS t SET checkpoint = ack.cursor WHERE t.name = s.name;
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore.ack(text, eventstore.cursor) IS
'acknowledge a subscription''s events up to and including cursor (transactional; never moves back)';

CREATE FUNCTION eventstore.ack(name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    s := eventstore._subscription_lock(ack.name);
    IF s.polled_xid IS DISTINCT FROM pg_catalog.pg_current_xact_id() THEN
        RAISE EXCEPTION 'this transaction has not polled subscription "%"', s.name
            USING ERRCODE = '55000',
                  HINT = 'Call eventstore.poll and eventstore.ack(name) in one transaction, or pass the cursor to acknowledge.';
    END IF;
    PERFORM eventstore.ack(s.name, s.polled);
END
$$;
COMMENT ON FUNCTION eventstore.ack(text) IS
'acknowledge everything this transaction polled from the subscription';

CREATE FUNCTION eventstore.drop_subscription(name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    PERFORM eventstore._prevent_in_transaction_block('eventstore.drop_subscription()');
    s := eventstore._subscription_lock(drop_subscription.name);
    DELETE FROM eventstore.subscription AS t WHERE t.name = s.name;
    IF EXISTS (SELECT FROM pg_catalog.pg_replication_slots AS r WHERE r.slot_name = s.slot_name) THEN
        PERFORM pg_catalog.pg_drop_replication_slot(s.slot_name);
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore.drop_subscription(text) IS 'drop a subscription and its replication slot';

CREATE VIEW eventstore.subscriptions AS
SELECT s.name,
       s.stream_prefix,
       s.event_types,
       s.from_position,
       s.checkpoint,
       (s.checkpoint).position AS checkpoint_position,
       CASE WHEN r.slot_name IS NULL THEN NULL
            ELSE greatest(eventstore.head_position() - (s.checkpoint).position, 0)
       END AS lag_positions,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn) AS lag_bytes,
       s.slot_name,
       coalesce(r.wal_status, 'lost') AS wal_status,
       r.active AS slot_active,
       s.created_at
  FROM eventstore.subscription AS s
  LEFT JOIN pg_catalog.pg_replication_slots AS r ON r.slot_name = s.slot_name;
COMMENT ON VIEW eventstore.subscriptions IS
'subscriptions with their filter, checkpoint, lag (positions behind head_position, WAL bytes behind) and slot health (wal_status lost = the slot is gone)';

-- Native logical replication: a publication of the events table, inserts
-- only, for CREATE SUBSCRIPTION on another cluster or pgoutput tools.
CREATE FUNCTION eventstore.create_publication(name text DEFAULT 'eventstore_events') RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE eventstore.events WITH (publish = %L)',
                              create_publication.name, 'insert');
END
$$;
COMMENT ON FUNCTION eventstore.create_publication(text) IS
'create a publication of eventstore.events (inserts only) for PostgreSQL logical replication';

-- Privileges: the functions read and write eventstore.events directly, so
-- EXECUTE on them is the access control.  Nothing is granted to PUBLIC;
-- see the README for the GRANTs an application role needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.category(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.consumer_group_member(text, integer) TO PUBLIC;
GRANT SELECT ON SEQUENCE eventstore.global_position_seq TO PUBLIC;
REVOKE ALL ON eventstore.subscription FROM PUBLIC;
