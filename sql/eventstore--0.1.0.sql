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

-- Slots that follow the transaction (src/slot.c): created temporary and
-- made persistent when the transaction commits, dropped when it commits;
-- a rollback, also of a subtransaction, undoes either.
CREATE FUNCTION eventstore._create_slot(slot_name name, subscription text DEFAULT '') RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_create_slot'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore._create_slot(name, text) IS
'internal: create a logical slot of the eventstore plugin that is persistent once this transaction commits and gone if it aborts (subscription: the name for messages)';

CREATE FUNCTION eventstore._drop_slot_at_commit(slot_name name) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_drop_slot_at_commit'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore._drop_slot_at_commit(name) IS
'internal: drop a replication slot when this transaction commits (forgotten if it aborts)';

CREATE FUNCTION eventstore._flush_wal() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_flush_wal'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore._flush_wal() IS 'internal: flush WAL so a slot never moves past a commit that could be lost';

-- A subscription's slot decodes from its restart_lsn on every poll, and
-- restart_lsn only moves past a running-transactions record.  poll calls
-- this before each peek: when the slot's restart_lsn trails its
-- confirmed_flush_lsn by more than 256 kB, it logs one (rate-limited for
-- the whole server), so restart_lsn follows the acknowledgements.
CREATE FUNCTION eventstore._log_running_xacts(slot_name name) RETURNS pg_lsn
    AS 'MODULE_PATHNAME', 'eventstore_log_running_xacts'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore._log_running_xacts(name) IS 'internal: log a running-transactions record when the slot''s restart_lsn lags far behind its confirmed position, so decoding can move it; the record''s LSN, or NULL';

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
    -- Where to recreate the subscription from if its slot is lost: every
    -- matching event at or below it was acknowledged (or committed before
    -- the subscription began).  A sample (head_position, then the WAL insert
    -- position) taken by poll becomes it once the checkpoint's commit LSN
    -- reaches the sample's LSN: everything at or below the sampled head had
    -- committed before that LSN.
    recovery_position        bigint NOT NULL,
    recovery_sample_lsn      pg_lsn,
    recovery_sample_position bigint,
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
    head bigint;
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
    -- one creator of a name at a time: a second one must not take the
    -- first one's new slot for a leftover and drop it
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('eventstore subscription ' || create_subscription.name, 0));
    IF EXISTS (SELECT FROM eventstore.subscription AS s WHERE s.name = create_subscription.name) THEN
        RAISE EXCEPTION 'subscription "%" already exists', create_subscription.name USING ERRCODE = '42710';
    END IF;

    slot := pg_catalog.format('eventstore_%s_%s',
                              (SELECT d.oid FROM pg_catalog.pg_database d
                               WHERE d.datname = pg_catalog.current_database()),
                              create_subscription.name);
    -- temporary until this transaction commits, gone if it rolls back; a
    -- slot of that name left behind by a crash is dropped first
    -- what committed at or below it before the slot exists is not this
    -- subscription's: a recreation after a lost slot may start there
    head := eventstore.head_position();
    PERFORM eventstore._create_slot(slot, create_subscription.name);
    IF from_position IS NOT NULL THEN
        SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO seam
          FROM eventstore.global_position_seq AS q;
        seam := greatest(seam, from_position);
    END IF;
    INSERT INTO eventstore.subscription
        (name, slot_name, stream_prefix, event_types, from_position, seam_position, checkpoint,
         recovery_position)
    VALUES (create_subscription.name, slot, stream_prefix, event_types, from_position, seam,
            ROW('0/0', coalesce(from_position, 0), coalesce(from_position, 0))::eventstore.cursor,
            coalesce(from_position, head));
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
    peeked integer;
    window_rows integer := 2 * max_count + 100;   -- events, plus one progress line a transaction
    flushed pg_lsn;
BEGIN
    IF max_count IS NULL OR max_count < 1 THEN
        RAISE EXCEPTION 'max_count must be at least 1' USING ERRCODE = '22023';
    END IF;
    -- Keep the slot's restart_lsn near its confirmed position, so the
    -- advance and the peek below do not decode the same WAL again and
    -- again.  Before the row lock: this transaction may have no xid yet,
    -- and then does not hold the new restart point back.
    PERFORM eventstore._log_running_xacts(t.slot_name)
       FROM eventstore.subscription AS t WHERE t.name = poll.name;
    s := eventstore._subscription_lock(poll.name);
    -- a second poll in one transaction continues after the first
    cur := CASE WHEN s.polled_xid = pg_catalog.pg_current_xact_id() THEN s.polled ELSE s.checkpoint END;

    SELECT rs.wal_status, rs.confirmed_flush_lsn INTO slot
      FROM pg_catalog.pg_replication_slots AS rs WHERE rs.slot_name = s.slot_name;
    IF NOT FOUND OR slot.wal_status = 'lost' THEN
        RAISE EXCEPTION 'subscription "%" has lost its replication slot "%"', s.name, s.slot_name
            USING ERRCODE = '55000',
                  DETAIL = pg_catalog.format('The last acknowledged position is %s; every matching event up to position %s was acknowledged (events commit out of position order).',
                                             (s.checkpoint).position, s.recovery_position),
                  HINT = pg_catalog.format('Drop the subscription and create it again with from_position => %s%s. Raise max_slot_wal_keep_size to keep more WAL for slow consumers.',
                                           s.recovery_position,
                                           CASE WHEN s.recovery_position < (s.checkpoint).position
                                                THEN pg_catalog.format('; events it delivers up to position %s may have been delivered before',
                                                                       (s.checkpoint).position)
                                                ELSE '' END);
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
        -- the checkpoint's commit must be durable before the slot moves
        PERFORM eventstore._flush_wal();
        PERFORM pg_catalog.pg_replication_slot_advance(s.slot_name, (s.checkpoint).lsn);
        slot.confirmed_flush_lsn := (s.checkpoint).lsn;
    END IF;
    -- A recovery sample (see the table): the head, then where WAL ends,
    -- flushed so that the peek below can decode everything before it.
    IF s.recovery_sample_lsn IS NULL THEN
        s.recovery_sample_position := eventstore.head_position();
        s.recovery_sample_lsn := pg_catalog.pg_current_wal_insert_lsn();
        PERFORM eventstore._flush_wal();
    END IF;
    flushed := pg_catalog.pg_current_wal_flush_lsn();
    -- Every decoded transaction ends with a progress line (its commit's end
    -- LSN).  While a peek finds only acknowledged or unwanted transactions,
    -- move the slot past them and peek again (a few times at most).
    FOR round IN 1..8 LOOP
        progress := NULL;
        peeked := 0;
        FOR r IN SELECT p.data FROM pg_catalog.pg_logical_slot_peek_changes(
                     s.slot_name, NULL, window_rows, VARIADIC eventstore._subscription_options(s)) AS p
        LOOP
            peeked := peeked + 1;
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
        -- Enough delivered, or the peek decoded everything there is: done.
        EXIT WHEN n >= max_count OR peeked < window_rows;
        IF n = 0 AND cur = s.checkpoint AND progress > slot.confirmed_flush_lsn THEN
            -- every transaction up to progress was acknowledged or
            -- unwanted: move the slot past it (WAL does not pile up for an
            -- idle subscription whose filter matches nothing) and go on
            PERFORM eventstore._flush_wal();
            PERFORM pg_catalog.pg_replication_slot_advance(s.slot_name, progress);
            slot.confirmed_flush_lsn := progress;
        ELSE
            -- the window was filled with events already delivered (polled in
            -- this transaction, or before a partial ack): look further
            window_rows := window_rows * 4;
        END IF;
    END LOOP;
    -- Nothing to deliver after the checkpoint, everything up to the flushed
    -- end of WAL decoded: every matching event that committed before the
    -- sample's LSN is acknowledged, so the sampled head is a recovery point.
    IF n = 0 AND peeked < window_rows AND cur = s.checkpoint AND s.recovery_sample_lsn <= flushed THEN
        s.recovery_position := greatest(s.recovery_position, s.recovery_sample_position);
        s.recovery_sample_lsn := NULL;
        s.recovery_sample_position := NULL;
    END IF;

    UPDATE eventstore.subscription AS t
       SET polled = cur, polled_xid = pg_catalog.pg_current_xact_id(),
           recovery_position = s.recovery_position,
           recovery_sample_lsn = s.recovery_sample_lsn,
           recovery_sample_position = s.recovery_sample_position
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
    IF s.polled IS NULL OR ((ack.cursor).lsn, (ack.cursor).seq) > ((s.polled).lsn, (s.polled).seq) THEN
        RAISE EXCEPTION 'cursor % is beyond what subscription "%" has delivered', ack.cursor, s.name
            USING ERRCODE = '22023',
                  DETAIL = format('The last cursor poll returned is %s.', coalesce(s.polled::text, 'none')),
                  HINT = 'Acknowledge a cursor that eventstore.poll returned.';
    END IF;
    IF ((ack.cursor).lsn, (ack.cursor).seq) > ((s.checkpoint).lsn, (s.checkpoint).seq) THEN
        IF (ack.cursor).lsn = '0/0' THEN
            -- history is read in position order, gap-safe
            s.recovery_position := greatest(s.recovery_position, (ack.cursor).position);
        ELSIF s.recovery_sample_lsn <= (ack.cursor).lsn THEN
            -- everything at or below the sampled head committed before
            -- the sample's LSN, so before this commit: acknowledged now
            s.recovery_position := greatest(s.recovery_position, s.recovery_sample_position);
            s.recovery_sample_lsn := NULL;
            s.recovery_sample_position := NULL;
        END IF;
        UPDATE eventstore.subscription AS t
           SET checkpoint = ack.cursor, recovery_position = s.recovery_position,
               recovery_sample_lsn = s.recovery_sample_lsn,
               recovery_sample_position = s.recovery_sample_position
         WHERE t.name = s.name;
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
    s := eventstore._subscription_lock(drop_subscription.name);
    DELETE FROM eventstore.subscription AS t WHERE t.name = s.name;
    -- dropped when this transaction commits, together with the row
    PERFORM eventstore._drop_slot_at_commit(s.slot_name);
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
       s.recovery_position,
       CASE WHEN r.slot_name IS NULL THEN NULL
            ELSE greatest(eventstore.head_position() - (s.checkpoint).position, 0)
       END AS lag_positions,
       CASE WHEN r.slot_name IS NULL THEN NULL
            ELSE (SELECT count(*) FROM eventstore.read_all((s.checkpoint).position, 10000,
                                                           s.stream_prefix, s.event_types))
       END AS lag_events,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn) AS lag_bytes,
       s.slot_name,
       coalesce(r.wal_status, 'lost') AS wal_status,
       r.active AS slot_active,
       s.created_at
  FROM eventstore.subscription AS s
  LEFT JOIN pg_catalog.pg_replication_slots AS r ON r.slot_name = s.slot_name;
COMMENT ON VIEW eventstore.subscriptions IS
'subscriptions with their filter, checkpoint, recovery position (every matching event up to it acknowledged: where to recreate a subscription whose slot was lost), lag (positions behind head_position; matching events after the checkpoint, counted up to 10000; WAL bytes behind) and slot health (wal_status lost = the slot is gone)';

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

-- Checkpoints, snapshots, idempotent consumers ---------------------------

CREATE TABLE eventstore.checkpoint (
    projection text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoint_projection_check CHECK (octet_length(projection) BETWEEN 1 AND 255),
    CONSTRAINT checkpoint_position_check CHECK (position >= 0)
);
COMMENT ON TABLE eventstore.checkpoint IS 'the last global position each projection or consumer processed';
SELECT pg_catalog.pg_extension_config_dump('eventstore.checkpoint', '');

CREATE FUNCTION eventstore.get_checkpoint(projection text) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF projection IS NULL THEN
        RAISE EXCEPTION 'projection must not be NULL' USING ERRCODE = '22004';
    END IF;
    RETURN coalesce((SELECT c.position FROM eventstore.checkpoint AS c
                      WHERE c.projection = get_checkpoint.projection), 0);
END
$$;
COMMENT ON FUNCTION eventstore.get_checkpoint(text) IS 'the checkpoint of a projection or consumer; 0 when none was saved';

CREATE FUNCTION eventstore.save_checkpoint(
    projection text,
    "position" bigint,
    expected_position bigint DEFAULT NULL)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actual bigint;
BEGIN
    IF projection IS NULL OR position IS NULL THEN
        RAISE EXCEPTION 'projection and position must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF octet_length(projection) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'invalid projection name' USING ERRCODE = '22023',
            DETAIL = 'A projection name is 1 to 255 bytes.';
    END IF;
    IF position < 0 OR expected_position < 0 THEN
        RAISE EXCEPTION 'positions must not be negative' USING ERRCODE = '22023';
    END IF;
    IF expected_position IS NULL THEN
        INSERT INTO eventstore.checkpoint AS c (projection, position) VALUES (save_checkpoint.projection, save_checkpoint.position)
        ON CONFLICT ON CONSTRAINT checkpoint_pkey
        DO UPDATE SET position = EXCLUDED.position, updated_at = now();
        RETURN;
    END IF;
    -- compare and set: the update re-checks the row a concurrent saver committed
    UPDATE eventstore.checkpoint AS c SET position = save_checkpoint.position, updated_at = now()
     WHERE c.projection = save_checkpoint.projection AND c.position = expected_position;
    IF FOUND THEN
        RETURN;
    END IF;
    IF expected_position = 0 THEN
        INSERT INTO eventstore.checkpoint (projection, position) VALUES (save_checkpoint.projection, save_checkpoint.position)
        ON CONFLICT ON CONSTRAINT checkpoint_pkey DO NOTHING;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    actual := eventstore.get_checkpoint(projection);
    RAISE EXCEPTION 'checkpoint of "%" is not at the expected position', projection
        USING ERRCODE = 'ES004',
              DETAIL = format('Expected position %s, but the checkpoint is at %s.', expected_position, actual);
END
$$;
COMMENT ON FUNCTION eventstore.save_checkpoint(text, bigint, bigint) IS
'save a checkpoint, transactionally; with expected_position it is a compare-and-set that fails with ES004 on mismatch';

CREATE TABLE eventstore.snapshot (
    stream     text COLLATE "C" PRIMARY KEY,
    version    bigint NOT NULL,
    state      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshot_version_check CHECK (version >= 1)
);
COMMENT ON TABLE eventstore.snapshot IS 'the latest snapshot of each aggregate stream';
SELECT pg_catalog.pg_extension_config_dump('eventstore.snapshot', '');

CREATE FUNCTION eventstore.save_snapshot(stream text, version bigint, state jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current bigint;
BEGIN
    IF stream IS NULL OR version IS NULL OR state IS NULL THEN
        RAISE EXCEPTION 'stream, version and state must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF octet_length(stream) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'invalid stream name' USING ERRCODE = '22023',
            DETAIL = 'A stream name must be 1 to 255 bytes long.';
    END IF;
    current := eventstore.stream_version(stream);
    IF version < 1 OR version > current THEN
        RAISE EXCEPTION 'cannot snapshot stream "%" at version %', stream, version
            USING ERRCODE = '22023',
                  DETAIL = format('The stream is at version %s; a snapshot is of a version between 1 and that.', current);
    END IF;
    -- keep the newest: an older snapshot never replaces a newer one
    INSERT INTO eventstore.snapshot AS t (stream, version, state)
    VALUES (save_snapshot.stream, save_snapshot.version, save_snapshot.state)
    ON CONFLICT ON CONSTRAINT snapshot_pkey
    DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, created_at = now()
     WHERE t.version <= EXCLUDED.version;
END
$$;
COMMENT ON FUNCTION eventstore.save_snapshot(text, bigint, jsonb) IS
'store the state of an aggregate as of a stream version (kept unless a newer snapshot exists)';

CREATE FUNCTION eventstore.load_snapshot(stream text) RETURNS TABLE (version bigint, state jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.version, t.state FROM eventstore.snapshot AS t WHERE t.stream = load_snapshot.stream
$$;
COMMENT ON FUNCTION eventstore.load_snapshot(text) IS
'the latest snapshot of a stream (no row when none): then read_stream(stream, from_version => version + 1)';

CREATE TABLE eventstore.processed (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT processed_pkey PRIMARY KEY (consumer, event_id)
);
COMMENT ON TABLE eventstore.processed IS 'events each idempotent consumer has processed';
SELECT pg_catalog.pg_extension_config_dump('eventstore.processed', '');

CREATE FUNCTION eventstore.mark_processed(consumer text, event_id uuid) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF consumer IS NULL OR event_id IS NULL THEN
        RAISE EXCEPTION 'consumer and event_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    INSERT INTO eventstore.processed (consumer, event_id) VALUES (mark_processed.consumer, mark_processed.event_id)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION eventstore.mark_processed(text, uuid) IS
'true the first time a consumer marks an event, false after; transactional, so a rolled-back handler can retry';

-- Projections -----------------------------------------------------------
--
-- A handler is handler(e eventstore.event) RETURNS void.  It always runs
-- as the projection's owner (the session user that created it), never
-- with the extension owner's rights.  Inline projections are an AFTER
-- INSERT trigger on eventstore.events; async ones are run by the
-- background worker (eventstore.worker_databases) through run_projection.

CREATE TABLE eventstore.projection (
    name          text PRIMARY KEY,
    handler       regprocedure NOT NULL,
    owner         regrole NOT NULL,
    mode          text NOT NULL,
    stream_prefix text,
    event_types   text[],
    last_error    text,
    error_count   integer NOT NULL DEFAULT 0,
    last_error_at timestamptz,
    retry_at      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    handler_timeout interval,   -- async: a batch's time limit; NULL: eventstore.handler_timeout
    CONSTRAINT projection_name_check CHECK (name ~ '^[a-z0-9_]{1,40}$'),
    CONSTRAINT projection_mode_check CHECK (mode IN ('inline', 'async')),
    CONSTRAINT projection_handler_timeout_check CHECK (handler_timeout >= interval '0')
);
COMMENT ON TABLE eventstore.projection IS 'projections: handler, mode, filter and health; use the functions, not this table';
SELECT pg_catalog.pg_extension_config_dump('eventstore.projection', '');

CREATE FUNCTION eventstore._call_handler(handler regprocedure, owner regrole, e eventstore.event) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_call_handler'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore._call_handler(regprocedure, regrole, eventstore.event) IS
'internal: call a projection handler as its owner';

CREATE FUNCTION eventstore._inline_projection() RETURNS trigger
    AS 'MODULE_PATHNAME', 'eventstore_inline_projection'
    LANGUAGE C;
COMMENT ON FUNCTION eventstore._inline_projection() IS 'internal: AFTER INSERT trigger of an inline projection';

-- Does event e pass a projection's filter?
CREATE FUNCTION eventstore._matches(p eventstore.projection, e eventstore.event) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (p.stream_prefix IS NULL OR starts_with(e.stream, p.stream_prefix))
       AND (p.event_types IS NULL OR e.event_type = ANY (p.event_types))
$$;
COMMENT ON FUNCTION eventstore._matches(eventstore.projection, eventstore.event) IS 'internal: projection filter';

-- Apply a projection to the events after its checkpoint, at most
-- max_count, and move the checkpoint: one transaction, so exactly once.
CREATE FUNCTION eventstore._apply_projection(p eventstore.projection, max_count integer,
                                             up_to bigint DEFAULT NULL,
                                             whole_table boolean DEFAULT false) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e eventstore.event;
    start bigint := eventstore.get_checkpoint(p.name);
    pos bigint := start;
    -- the horizon never goes down, so read_all below reads at least this far
    head bigint := eventstore.head_position();
    n bigint := 0;
BEGIN
    -- whole_table: an inline projection's history, read while appends are
    -- locked out, includes what this very transaction appended (which the
    -- feed does not show before it commits).
    FOR e IN SELECT * FROM eventstore.read_all(pos, max_count, p.stream_prefix, p.event_types) AS a
              WHERE NOT whole_table AND (up_to IS NULL OR a.global_position <= up_to)
             UNION ALL
             SELECT t.global_position, t.stream, t.stream_version, t.event_id, t.event_type,
                    t.data, t.metadata, t.created_at
               FROM eventstore.events AS t
              WHERE whole_table AND t.global_position > pos
                AND (p.stream_prefix IS NULL OR starts_with(t.stream, p.stream_prefix))
                AND (p.event_types IS NULL OR t.event_type = ANY (p.event_types))
             ORDER BY 1 LOOP
        PERFORM eventstore._call_handler(p.handler, p.owner, e);
        pos := e.global_position;
        n := n + 1;
    END LOOP;
    -- A batch that was not full applied every matching event up to head:
    -- move past the events the filter skips and the gaps, so lag reaches 0.
    IF up_to IS NULL AND NOT whole_table AND (max_count IS NULL OR n < max_count) AND head > pos THEN
        pos := head;
    END IF;
    IF pos <> start THEN
        PERFORM eventstore.save_checkpoint(p.name, pos);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION eventstore._apply_projection(eventstore.projection, integer, bigint, boolean) IS 'internal: one batch of a projection';

-- The projection row, locked for this transaction, or an error.
CREATE FUNCTION eventstore._projection_lock(projection_name text) RETURNS eventstore.projection
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF projection_name IS NULL THEN
        RAISE EXCEPTION 'projection name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM eventstore.projection AS t WHERE t.name = projection_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" does not exist', projection_name USING ERRCODE = '42704';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION eventstore._projection_lock(text) IS 'internal: lock a projection row';

-- (Re)create the AFTER INSERT trigger of an inline projection.  Its
-- arguments carry OIDs, so it is always made from the projection row.
CREATE FUNCTION eventstore._create_inline_trigger(p eventstore.projection) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON eventstore.events', 'es_projection_' || p.name);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON eventstore.events FOR EACH ROW '
                   'EXECUTE FUNCTION eventstore._inline_projection(%L, %L, %L, %L, %L)',
                   'es_projection_' || p.name, p.name, p.handler::oid, p.owner::oid,
                   coalesce(p.stream_prefix, ''), coalesce(array_to_string(p.event_types, ','), ''));
END
$$;
COMMENT ON FUNCTION eventstore._create_inline_trigger(eventstore.projection) IS 'internal: the trigger of an inline projection';

-- The work of create_projection, as the extension owner.  owner is the
-- role the caller acts as; only a role the session could SET ROLE to is
-- accepted, so calling this directly grants nothing new.
CREATE FUNCTION eventstore._create_projection(
    name text,
    handler regprocedure,
    mode text,
    stream_prefix text,
    event_types text[],
    owner regrole)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
    create_projection_name text := _create_projection.name;
BEGIN
    IF owner IS NULL OR NOT pg_catalog.pg_has_role(session_user, owner, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to create a projection owned by %', owner
            USING ERRCODE = '42501';
    END IF;
    -- granted to PUBLIC: EXECUTE on create_projection is what decides
    IF NOT pg_catalog.has_function_privilege(owner,
            'eventstore.create_projection(text, regprocedure, text, text, text[])', 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function eventstore.create_projection'
            USING ERRCODE = '42501';
    END IF;
    IF create_projection_name IS NULL OR handler IS NULL OR mode IS NULL THEN
        RAISE EXCEPTION 'name, handler and mode must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF create_projection_name !~ '^[a-z0-9_]{1,40}$' THEN
        RAISE EXCEPTION 'invalid projection name "%"', create_projection_name
            USING ERRCODE = '22023',
                  DETAIL = 'A projection name is 1 to 40 characters: lower-case letters, digits and underscores.';
    END IF;
    IF mode NOT IN ('inline', 'async') THEN
        RAISE EXCEPTION 'invalid projection mode "%"', mode
            USING ERRCODE = '22023', HINT = 'The mode is ''inline'' or ''async''.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_proc AS f
                    WHERE f.oid = handler AND f.pronargs = 1 AND f.prokind = 'f'
                      AND f.proargtypes[0] = 'eventstore.event'::regtype
                      AND f.prorettype = 'void'::regtype) THEN
        RAISE EXCEPTION 'function % cannot be a projection handler', handler
            USING ERRCODE = '22023',
                  HINT = 'A handler is a function handler(e eventstore.event) RETURNS void.';
    END IF;
    IF NOT pg_catalog.has_function_privilege(owner, handler, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function %', handler USING ERRCODE = '42501';
    END IF;
    IF stream_prefix IS NOT NULL AND (stream_prefix = '' OR strpos(stream_prefix, ',') > 0) THEN
        RAISE EXCEPTION 'invalid stream_prefix "%"', stream_prefix
            USING ERRCODE = '22023', DETAIL = 'A prefix is not empty and has no ",".';
    END IF;
    IF event_types IS NOT NULL AND (cardinality(event_types) = 0
            OR EXISTS (SELECT FROM unnest(event_types) AS t WHERE t IS NULL OR t = '' OR strpos(t, ',') > 0)) THEN
        RAISE EXCEPTION 'invalid event_types'
            USING ERRCODE = '22023', DETAIL = 'List at least one type; types must not be NULL, empty or contain ",".';
    END IF;
    IF EXISTS (SELECT FROM eventstore.projection AS t WHERE t.name = create_projection_name) THEN
        RAISE EXCEPTION 'projection "%" already exists', create_projection_name USING ERRCODE = '42710';
    END IF;

    INSERT INTO eventstore.projection (name, handler, owner, mode, stream_prefix, event_types)
    VALUES (create_projection_name, handler, owner, mode, stream_prefix, event_types)
    RETURNING * INTO p;
    PERFORM eventstore.save_checkpoint(p.name, 0);

    IF mode = 'inline' THEN
        -- Creating the trigger waits for every in-flight append and holds
        -- new ones until commit, so catching up here misses nothing.
        PERFORM eventstore._create_inline_trigger(p);
        PERFORM eventstore._apply_projection(p, NULL, NULL, true);
    ELSE
        PERFORM eventstore._wake_worker();
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore._create_projection(text, regprocedure, text, text, text[], regrole) IS
'internal: create_projection as the extension owner';

CREATE FUNCTION eventstore.create_projection(
    name text,
    handler regprocedure,
    mode text DEFAULT 'async',
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL)
RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT eventstore._create_projection(name, handler, mode, stream_prefix, event_types,
                                         current_user::regrole)
$$;
COMMENT ON FUNCTION eventstore.create_projection(text, regprocedure, text, text, text[]) IS
'create a projection: handler(e eventstore.event) runs as the calling role for every matching event, inline (in the appending transaction; history is applied now) or async (by the background worker, from position 0)';

CREATE FUNCTION eventstore.run_projection(name text, max_count integer DEFAULT 1000) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF max_count < 0 THEN
        RAISE EXCEPTION 'max_count must not be negative' USING ERRCODE = '22023';
    END IF;
    -- the row lock serializes runners: no event is applied twice
    p := eventstore._projection_lock(run_projection.name);
    IF p.mode = 'inline' THEN
        RETURN 0;   -- inline projections are always up to date
    END IF;
    -- and a REPEATABLE READ runner whose snapshot predates another
    -- runner's checkpoint fails here (40001) instead of re-applying events
    PERFORM FROM eventstore.checkpoint AS c WHERE c.projection = p.name FOR UPDATE;
    RETURN eventstore._apply_projection(p, max_count);
END
$$;
COMMENT ON FUNCTION eventstore.run_projection(text, integer) IS
'apply one batch of an async projection in the caller''s transaction; returns the number of events applied';

CREATE FUNCTION eventstore.reset_projection(name text, "position" bigint DEFAULT 0) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF position IS NULL OR position < 0 THEN
        RAISE EXCEPTION 'position must be a non-negative number' USING ERRCODE = '22023';
    END IF;
    PERFORM eventstore._worker_cancel(reset_projection.name);  -- never wait for the worker
    p := eventstore._projection_lock(reset_projection.name);
    PERFORM eventstore.save_checkpoint(p.name, position);
    UPDATE eventstore.projection AS t SET last_error = NULL, error_count = 0, retry_at = NULL
     WHERE t.name = p.name;
    IF p.mode = 'inline' THEN
        -- replay now, holding appends back as create_projection does; the
        -- trigger is made anew (pg_restore does not bring it back)
        PERFORM eventstore._create_inline_trigger(p);
        PERFORM eventstore._apply_projection(p, NULL, NULL, true);
    ELSE
        PERFORM eventstore._wake_worker();
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore.reset_projection(text, bigint) IS
'move a projection''s checkpoint (0: rebuild from the start) and clear its error; the caller clears the read model first';

CREATE FUNCTION eventstore.drop_projection(name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    PERFORM eventstore._worker_cancel(drop_projection.name);   -- never wait for the worker
    p := eventstore._projection_lock(drop_projection.name);
    IF p.mode = 'inline' THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON eventstore.events', 'es_projection_' || p.name);
    END IF;
    DELETE FROM eventstore.projection AS t WHERE t.name = p.name;
    DELETE FROM eventstore.checkpoint AS c WHERE c.projection = p.name;
END
$$;
COMMENT ON FUNCTION eventstore.drop_projection(text) IS 'drop a projection (its read model tables are yours to drop)';

CREATE FUNCTION eventstore.alter_projection(name text, handler_timeout interval) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF handler_timeout < interval '0' THEN
        RAISE EXCEPTION 'handler_timeout must not be negative' USING ERRCODE = '22023';
    END IF;
    PERFORM eventstore._worker_cancel(alter_projection.name);  -- never wait for the worker
    p := eventstore._projection_lock(alter_projection.name);
    IF NOT pg_catalog.pg_has_role(current_user, p.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for projection %', p.name USING ERRCODE = '42501';
    END IF;
    UPDATE eventstore.projection AS t SET handler_timeout = alter_projection.handler_timeout
     WHERE t.name = p.name;
END
$$;
COMMENT ON FUNCTION eventstore.alter_projection(text, interval) IS
'set the time limit of an async projection''s batches in the worker (NULL: eventstore.handler_timeout, 0: none); a running batch is canceled and run again';

CREATE FUNCTION eventstore._worker_serves() RETURNS boolean
    AS 'MODULE_PATHNAME', 'eventstore_worker_serves'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION eventstore._worker_serves() IS 'internal: is this database listed in eventstore.worker_databases?';

CREATE VIEW eventstore.projections AS
SELECT p.name,
       p.mode,
       p.handler,
       p.owner,
       p.stream_prefix,
       p.event_types,
       CASE WHEN p.mode = 'inline' THEN eventstore.head_position()
            ELSE eventstore.get_checkpoint(p.name) END AS checkpoint,
       CASE WHEN p.mode = 'inline' THEN 0
            ELSE greatest(eventstore.head_position() - eventstore.get_checkpoint(p.name), 0) END AS lag,
       p.last_error,
       p.error_count,
       p.last_error_at,
       p.retry_at,
       p.handler_timeout,
       CASE WHEN p.mode = 'async' THEN eventstore._worker_serves() END AS served_by_worker
  FROM eventstore.projection AS p;
COMMENT ON VIEW eventstore.projections IS
'projections with their checkpoint, lag (positions behind head_position) and health (last_error, error_count, retry_at)';

-- Called by the background worker, one projection at a time, each in its
-- own transaction: a batch, or the error recorded with a backoff.
-- Projections with errors run last, so a slow or hanging one delays the
-- healthy ones' batches of a round as little as possible.  timeout_ms is
-- NULL for the setting eventstore.handler_timeout.
CREATE FUNCTION eventstore._worker_due() RETURNS TABLE (name text, timeout_ms integer)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.name,
           CASE WHEN t.handler_timeout IS NOT NULL
                THEN least(extract(epoch FROM t.handler_timeout) * 1000, 2147483647)::integer END
      FROM eventstore.projection AS t
     WHERE t.mode = 'async' AND (t.retry_at IS NULL OR t.retry_at <= now())
     ORDER BY t.error_count > 0, t.name
$$;
COMMENT ON FUNCTION eventstore._worker_due() IS 'internal: async projections due to run, in the order to run them, with their time limits';

CREATE FUNCTION eventstore._worker_failed(name text, message text, naptime_ms integer) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE eventstore.projection AS t
       SET last_error = message, error_count = t.error_count + 1, last_error_at = now(),
           retry_at = now() + least(naptime_ms * power(2, least(t.error_count, 16)), 300000) * interval '1 millisecond'
     WHERE t.name = _worker_failed.name
$$;
COMMENT ON FUNCTION eventstore._worker_failed(text, text, integer) IS 'internal: record a failed batch and when to retry';

-- One batch for the worker.  A failing handler does not lose the events
-- before it: they are applied and checkpointed, the failing one is not,
-- and the error is recorded with a retry time.  The projection stalls at
-- the failing event, never skips it.
CREATE FUNCTION eventstore._worker_run(name text, max_count integer, naptime_ms integer) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
    n bigint;
    failed_at bigint;
    message text;
BEGIN
    SELECT * INTO p FROM eventstore.projection AS t
     WHERE t.name = _worker_run.name AND t.mode = 'async' FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;   -- dropped, or someone runs it right now
    END IF;
    BEGIN
        n := eventstore._apply_projection(p, max_count);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
        -- which event failed?  the first one the batch did not get past
        failed_at := eventstore._first_failing(p, max_count);
        n := 0;
        IF failed_at IS NOT NULL THEN
            n := eventstore._apply_projection(p, max_count, failed_at - 1);
        END IF;
        PERFORM eventstore._worker_failed(p.name, message, naptime_ms);
        RETURN n;
    END;
    IF p.error_count > 0 OR p.retry_at IS NOT NULL THEN
        UPDATE eventstore.projection AS t SET last_error = NULL, error_count = 0, retry_at = NULL
         WHERE t.name = p.name;
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION eventstore._worker_run(text, integer, integer) IS 'internal: one batch of an async projection for the worker';

-- The position of the first event of the next batch whose handler fails
-- (each tried in a subtransaction that is always rolled back).
CREATE FUNCTION eventstore._first_failing(p eventstore.projection, max_count integer) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e eventstore.event;
BEGIN
    FOR e IN SELECT * FROM eventstore.read_all(eventstore.get_checkpoint(p.name), max_count,
                                               p.stream_prefix, p.event_types) LOOP
        BEGIN
            PERFORM eventstore._call_handler(p.handler, p.owner, e);
            RAISE EXCEPTION USING ERRCODE = 'ES999';   -- undo, go on
        EXCEPTION
            WHEN SQLSTATE 'ES999' THEN NULL;
            WHEN OTHERS THEN RETURN e.global_position;
        END;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION eventstore._first_failing(eventstore.projection, integer) IS 'internal: find the event a projection fails on';

CREATE FUNCTION eventstore._wake_worker() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_wake_worker'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore._wake_worker() IS 'internal: wake this database''s projection worker at commit; warns when no worker serves the database';

CREATE FUNCTION eventstore._worker_cancel(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_worker_cancel'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore._worker_cancel(text) IS
'internal: the worker skips this projection until the transaction ends, and abandons its running batch of it';

-- Privileges: the functions read and write eventstore.events directly, so
-- EXECUTE on them is the access control.  Nothing is granted to PUBLIC;
-- see the README for the GRANTs an application role needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.category(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.consumer_group_member(text, integer) TO PUBLIC;
-- checks EXECUTE on eventstore.create_projection itself
GRANT EXECUTE ON FUNCTION eventstore._create_projection(text, regprocedure, text, text, text[], regrole) TO PUBLIC;
GRANT SELECT ON SEQUENCE eventstore.global_position_seq TO PUBLIC;
REVOKE ALL ON eventstore.subscription, eventstore.checkpoint, eventstore.snapshot,
    eventstore.processed, eventstore.projection FROM PUBLIC;
