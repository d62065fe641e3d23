-- eventstore: the one source of the extension's SQL.  Its sections mirror
-- src/: each is named after the C files that implement it (src/README).
--
-- The Makefile builds both scripts of this version from it:
--   eventstore--<version>.sql         a fresh install: this whole file;
--   eventstore--0.1.0--<version>.sql  the upgrade: migrate--0.1.0--<version>.sql,
--                                     this file without its fenced blocks,
--                                     then migrate--0.1.0--<version>.post.sql.
-- A block between the lines "-- schema:begin" and "-- schema:end" is what a
-- fresh install makes once and an upgrade must not run again: schemas,
-- tables, types, the sequence, indexes, triggers, the functions an upgrade
-- keeps (or moves) instead of making anew, and the install's own grant
-- clean-up.  The migrate script brings an older install's stored state to
-- what these blocks make.  Everything outside the fences is CREATE OR
-- REPLACE (functions, views), COMMENT, GRANT or REVOKE, so it serves a
-- fresh install and an upgrade alike, and both end the same
-- (test/t/006_upgrade.pl compares them).
--
-- Order matters: LANGUAGE sql function bodies, views and argument types
-- are checked when they are created, so each section's fenced block (its
-- tables and types) comes before its functions, and sections come after
-- those whose objects they use.

-- Schemas -------------------------------------------------------------------

-- schema:begin
CREATE SCHEMA eventstore;
COMMENT ON SCHEMA eventstore IS 'eventstore: streams of immutable events, a gap-safe global feed, subscriptions and projections';

-- The functions behind the API, out of reach of every application role:
-- nothing in this schema is granted to anyone (GRANT ... ON ALL FUNCTIONS
-- IN SCHEMA eventstore does not reach it).  See "Privileges" in README.md.
CREATE SCHEMA eventstore_internal;
COMMENT ON SCHEMA eventstore_internal IS 'eventstore: internal functions; never granted to application roles';
REVOKE ALL ON SCHEMA eventstore_internal FROM PUBLIC;
-- schema:end

-- src/preload.c: refuse to install without the preloaded library ------------

-- Refuse to install unless the library was preloaded: the in-flight
-- registry behind the gap-safe feed lives in shared memory.
-- schema:begin
CREATE FUNCTION eventstore_internal.assert_preloaded() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_assert_preloaded'
    LANGUAGE C VOLATILE PARALLEL SAFE;
SELECT eventstore_internal.assert_preloaded();
-- schema:end
COMMENT ON FUNCTION eventstore_internal.assert_preloaded() IS 'internal: errors unless eventstore is in shared_preload_libraries';

-- src/stream.c: stream names ------------------------------------------------

-- The category of a stream: the part of its name before the first '-'.
-- schema:begin
CREATE FUNCTION eventstore.category(stream text) RETURNS text
    AS 'MODULE_PATHNAME', 'eventstore_category'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- schema:end
COMMENT ON FUNCTION eventstore.category(text) IS 'category of a stream name: the part before the first "-" (the whole name when it has none)';

-- src/append.c: the event log, append ---------------------------------------

-- schema:begin
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
-- schema:end

CREATE OR REPLACE FUNCTION eventstore.append(
    stream text,
    events jsonb,
    expected_version bigint DEFAULT NULL)
RETURNS TABLE (stream_version bigint, global_position bigint)
    AS 'MODULE_PATHNAME', 'eventstore_append'
    LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION eventstore.append(text, jsonb, bigint) IS
'atomically append a JSON array of events {type, data, metadata, id} to a stream; expected_version NULL = any, 0 = must not exist, -1 = must exist, n = must be at n';

CREATE OR REPLACE FUNCTION eventstore.append_event(
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

-- src/immutable.c: events are immutable -------------------------------------

-- schema:begin
-- Immutability: UPDATE, DELETE and TRUNCATE are refused for every role.
CREATE FUNCTION eventstore_internal.refuse_change() RETURNS trigger
    AS 'MODULE_PATHNAME', 'eventstore_refuse_change'
    LANGUAGE C;
CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore_internal.refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore_internal.refuse_change();
-- ALWAYS: session_replication_role = replica must not bypass them either.
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_no_truncate;
-- schema:end
COMMENT ON FUNCTION eventstore_internal.refuse_change() IS 'internal: trigger that keeps stored events immutable';

-- src/read.c: reading a stream ----------------------------------------------

CREATE OR REPLACE FUNCTION eventstore.read_stream(
    stream text,
    from_version bigint DEFAULT NULL,
    max_count integer DEFAULT NULL,
    backward boolean DEFAULT false)
RETURNS SETOF eventstore.event
    AS 'MODULE_PATHNAME', 'eventstore_read_stream'
    LANGUAGE C STABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION eventstore.read_stream(text, bigint, integer, boolean) IS
'events of one stream in version order (or reverse with backward), from from_version, at most max_count';

CREATE OR REPLACE FUNCTION eventstore.stream_version(stream text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_stream_version'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.stream_version(text) IS 'current version of a stream: its number of events, 0 when it does not exist';

-- src/feed.c: the gap-safe global feed --------------------------------------

CREATE OR REPLACE FUNCTION eventstore.read_all(
    after_position bigint DEFAULT 0,
    max_count integer DEFAULT 1000,
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL)
RETURNS SETOF eventstore.event
    AS 'MODULE_PATHNAME', 'eventstore_read_all'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.read_all(bigint, integer, text, text[]) IS
'events after after_position in global order, up to the safe horizon: a reader that continues from its last position never skips an event';

CREATE OR REPLACE FUNCTION eventstore.read_category(
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

CREATE OR REPLACE FUNCTION eventstore.head_position() RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_head_position'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION eventstore.head_position() IS
'the safe horizon: no event at or below it can still become visible';

CREATE OR REPLACE FUNCTION eventstore.consumer_group_member(stream text, group_size integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'eventstore_consumer_group_member'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.consumer_group_member(text, integer) IS
'which member (0..group_size-1) of a consumer group receives a stream: FNV-1a 64-bit hash of the name, unsigned, modulo group_size';

-- src/caller.c: who acts, owners --------------------------------------------

-- Who acts: functions that touch owned objects (subscriptions,
-- projections, consumer names) are C entry points (src/caller.c) that call
-- their twin in eventstore_internal -- same name, the caller's role
-- (current_user, which no handler, worker or SECURITY DEFINER function can
-- forge) passed first -- as the twin's owner, the extension's owner.  The
-- twins decide on that role; check_owner() is the rule.

-- The rule for every owned object: its owner's members (pg_has_role
-- MEMBER; superusers are members of every role) may use it, no one else.
CREATE OR REPLACE FUNCTION eventstore_internal.check_owner(caller regrole, owner regrole,
                                                           kind text, object_name text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(caller, owner, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for % "%"', kind, object_name
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The %s is owned by role %s; only that role, its members and superusers may use it.',
                                             kind, owner);
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.check_owner(regrole, regrole, text, text) IS
'internal: 42501 unless caller is a member of owner';

-- A consumer name (checkpoint, processed marks, a projection's name)
-- belongs to the role that first used it: claim it, or check it is ours.
CREATE OR REPLACE FUNCTION eventstore_internal.claim_consumer(caller regrole, consumer text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o regrole;
BEGIN
    IF consumer IS NULL THEN
        RAISE EXCEPTION 'consumer name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.octet_length(consumer) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'invalid consumer name' USING ERRCODE = '22023',
            DETAIL = 'A consumer or projection name is 1 to 255 bytes.';
    END IF;
    SELECT c.owner INTO o FROM eventstore.checkpoint AS c WHERE c.projection = consumer;
    IF NOT FOUND THEN
        -- a concurrent claim of the same name: ON CONFLICT waits for it
        INSERT INTO eventstore.checkpoint AS c (projection, position, owner)
        VALUES (consumer, 0, caller) ON CONFLICT ON CONSTRAINT checkpoint_pkey DO NOTHING;
        SELECT c.owner INTO o FROM eventstore.checkpoint AS c WHERE c.projection = consumer;
    END IF;
    PERFORM eventstore_internal.check_owner(caller, o, 'consumer', consumer);
END
$$;
COMMENT ON FUNCTION eventstore_internal.claim_consumer(regrole, text) IS
'internal: make caller the owner of a new consumer name, or 42501 unless it owns it';

-- src/subscription.c, src/slot.c, src/poll.c: subscriptions -----------------

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

-- schema:begin
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
    -- the role that created it: only its members (and superusers) poll,
    -- ack and drop it
    owner         regrole NOT NULL,
    CONSTRAINT subscription_name_check CHECK (name ~ '^[a-z0-9_]{1,40}$')
);
COMMENT ON TABLE eventstore.subscription IS 'subscriptions: slot, filter, checkpoint and owner; use the functions, not this table';
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription', '');
-- schema:end

CREATE OR REPLACE FUNCTION eventstore_internal.prevent_in_transaction_block(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_prevent_in_transaction_block'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.prevent_in_transaction_block(text) IS 'internal: errors inside a transaction block';

-- Slots that follow the transaction (src/slot.c): created temporary and
-- made persistent when the transaction commits, dropped when it commits;
-- a rollback, also of a subtransaction, undoes either.
CREATE OR REPLACE FUNCTION eventstore_internal.create_slot(slot_name name, subscription text DEFAULT '') RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_create_slot'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.create_slot(name, text) IS
'internal: create a logical slot of the eventstore plugin that is persistent once this transaction commits and gone if it aborts (subscription: the name for messages)';

CREATE OR REPLACE FUNCTION eventstore_internal.drop_slot_at_commit(slot_name name) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_drop_slot_at_commit'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.drop_slot_at_commit(name) IS
'internal: drop a replication slot when this transaction commits (forgotten if it aborts)';

CREATE OR REPLACE FUNCTION eventstore_internal.flush_wal() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_flush_wal'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore_internal.flush_wal() IS 'internal: flush WAL so a slot never moves past a commit that could be lost';

-- A subscription's slot decodes from its restart_lsn on every poll, and
-- restart_lsn only moves past a running-transactions record.  poll calls
-- this before each peek: when the slot's restart_lsn trails its
-- confirmed_flush_lsn by more than 256 kB, it logs one (rate-limited for
-- the whole server), so restart_lsn follows the acknowledgements.
CREATE OR REPLACE FUNCTION eventstore_internal.log_running_xacts(slot_name name) RETURNS pg_lsn
    AS 'MODULE_PATHNAME', 'eventstore_log_running_xacts'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.log_running_xacts(name) IS 'internal: log a running-transactions record when the slot''s restart_lsn lags far behind its confirmed position, so decoding can move it; the record''s LSN, or NULL';

-- The subscription row, locked for this transaction, or an error; its
-- owner is checked before the row is locked.
CREATE OR REPLACE FUNCTION eventstore_internal.subscription_lock(caller regrole, sub_name text) RETURNS eventstore.subscription
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    IF sub_name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO s FROM eventstore.subscription AS t WHERE t.name = sub_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', sub_name USING ERRCODE = '42704';
    END IF;
    PERFORM eventstore_internal.check_owner(caller, s.owner, 'subscription', s.name);
    SELECT * INTO s FROM eventstore.subscription AS t WHERE t.name = sub_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', sub_name USING ERRCODE = '42704';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION eventstore_internal.subscription_lock(regrole, text) IS 'internal: check the owner of a subscription and lock its row';

CREATE OR REPLACE FUNCTION eventstore.create_subscription(
    name text,
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL,
    from_position bigint DEFAULT NULL)
RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.create_subscription(text, text, text[], bigint) IS
'create a subscription owned by the calling role (a logical replication slot plus a checkpoint); from_position NULL = only events committed from now on, 0 = all history first, n = history after n';

CREATE OR REPLACE FUNCTION eventstore_internal.create_subscription(
    caller regrole,
    name text,
    stream_prefix text,
    event_types text[],
    from_position bigint)
RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot name;
    seam bigint;
    head bigint;
    reserve integer;
    free_slots integer;
BEGIN
    PERFORM eventstore_internal.prevent_in_transaction_block('eventstore.create_subscription()');
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
            OR pg_catalog.array_ndims(event_types) <> 1
            OR EXISTS (SELECT FROM pg_catalog.unnest(event_types) AS t
                       WHERE t IS NULL OR t = '' OR pg_catalog.strpos(t, ',') > 0)) THEN
        RAISE EXCEPTION 'invalid event_types'
            USING ERRCODE = '22023', DETAIL = 'List at least one type, in a one-dimensional array; types must not be NULL, empty or contain ",".';
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
    -- what committed at or below it before the slot exists is not this
    -- subscription's: a recreation after a lost slot may start there
    head := eventstore.head_position();
    -- temporary until this transaction commits, gone if it rolls back; a
    -- slot of that name left behind by a crash is dropped first
    PERFORM eventstore_internal.create_slot(slot, create_subscription.name);
    -- The slots the store keeps for others: a role that is not a
    -- superuser may not take the last eventstore.reserved_replication_slots
    -- of max_replication_slots.  Counted after creating ours, so two
    -- creators racing for the last free slot both see each other (and at
    -- worst both fail); the error rolls our slot back.
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.oid = caller) THEN
        reserve := pg_catalog.current_setting('eventstore.reserved_replication_slots')::integer;
        free_slots := pg_catalog.current_setting('max_replication_slots')::integer
                      - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots)::integer;
        IF free_slots < reserve THEN
            RAISE EXCEPTION 'cannot create subscription "%": too few replication slots are free', create_subscription.name
                USING ERRCODE = '53400',
                      DETAIL = pg_catalog.format('%s of max_replication_slots = %s would be free; eventstore.reserved_replication_slots keeps %s for superusers.',
                                                 free_slots, pg_catalog.current_setting('max_replication_slots'), reserve),
                      HINT = 'Drop subscriptions that are no longer used, or ask an administrator to raise max_replication_slots.';
        END IF;
    END IF;
    IF from_position IS NOT NULL THEN
        SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO seam
          FROM eventstore.global_position_seq AS q;
        seam := greatest(seam, from_position);
    END IF;
    INSERT INTO eventstore.subscription
        (name, slot_name, stream_prefix, event_types, from_position, seam_position, checkpoint,
         recovery_position, owner)
    VALUES (create_subscription.name, slot, stream_prefix, event_types, from_position, seam,
            ROW('0/0', coalesce(from_position, 0), coalesce(from_position, 0))::eventstore.cursor,
            coalesce(from_position, head), caller);
END
$$;
COMMENT ON FUNCTION eventstore_internal.create_subscription(regrole, text, text, text[], bigint) IS
'internal: create_subscription for caller';

CREATE OR REPLACE FUNCTION eventstore.poll(
    name text,
    max_count integer DEFAULT 1000)
RETURNS TABLE (global_position bigint, stream text, stream_version bigint, event_id uuid,
               event_type text, data jsonb, metadata jsonb, created_at timestamptz,
               cursor eventstore.cursor)
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.poll(text, integer) IS
'the next events of a subscription after its checkpoint (or after what this transaction already polled), in commit order, each with its cursor';

CREATE OR REPLACE FUNCTION eventstore_internal.poll(
    caller regrole,
    name text,
    max_count integer)
RETURNS TABLE (global_position bigint, stream text, stream_version bigint, event_id uuid,
               event_type text, data jsonb, metadata jsonb, created_at timestamptz,
               cursor eventstore.cursor)
    AS 'MODULE_PATHNAME', 'eventstore_poll'
    LANGUAGE C VOLATILE
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore_internal.poll(regrole, text, integer) IS 'internal: poll for caller';

CREATE OR REPLACE FUNCTION eventstore_internal.polled_empty(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'eventstore_polled_empty'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.polled_empty(text) IS 'internal: did this transaction poll the subscription and find nothing';

CREATE OR REPLACE FUNCTION eventstore.ack(name text, cursor eventstore.cursor) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.ack(text, eventstore.cursor) IS
'acknowledge a subscription''s events up to and including cursor (transactional; never moves back)';

CREATE OR REPLACE FUNCTION eventstore_internal.ack(caller regrole, name text, cursor eventstore.cursor) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    IF ack.cursor IS NULL OR (ack.cursor).lsn IS NULL OR (ack.cursor).seq IS NULL THEN
        RAISE EXCEPTION 'cursor must not be NULL' USING ERRCODE = '22004';
    END IF;
    s := eventstore_internal.subscription_lock(caller, ack.name);
    IF s.polled IS NULL OR ((ack.cursor).lsn, (ack.cursor).seq) > ((s.polled).lsn, (s.polled).seq) THEN
        RAISE EXCEPTION 'cursor % is beyond what subscription "%" has delivered', ack.cursor, s.name
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('The last cursor poll returned is %s.', coalesce(s.polled::text, 'none')),
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
COMMENT ON FUNCTION eventstore_internal.ack(regrole, text, eventstore.cursor) IS 'internal: ack(name, cursor) for caller';

CREATE OR REPLACE FUNCTION eventstore.ack(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.ack(text) IS
'acknowledge everything this transaction polled from the subscription';

CREATE OR REPLACE FUNCTION eventstore_internal.ack(caller regrole, name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    s := eventstore_internal.subscription_lock(caller, ack.name);
    IF s.polled_xid IS DISTINCT FROM pg_catalog.pg_current_xact_id() THEN
        IF eventstore_internal.polled_empty(s.name) THEN
            RETURN;   -- it polled and found nothing: nothing to acknowledge
        END IF;
        RAISE EXCEPTION 'this transaction has not polled subscription "%"', s.name
            USING ERRCODE = '55000',
                  HINT = 'Call eventstore.poll and eventstore.ack(name) in one transaction, or pass the cursor to acknowledge (clients in autocommit mode: eventstore.ack(name, cursor)).';
    END IF;
    PERFORM eventstore_internal.ack(caller, s.name, s.polled);
END
$$;
COMMENT ON FUNCTION eventstore_internal.ack(regrole, text) IS 'internal: ack(name) for caller';

CREATE OR REPLACE FUNCTION eventstore.drop_subscription(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.drop_subscription(text) IS 'drop a subscription and its replication slot';

CREATE OR REPLACE FUNCTION eventstore_internal.drop_subscription(caller regrole, name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s eventstore.subscription;
BEGIN
    s := eventstore_internal.subscription_lock(caller, drop_subscription.name);
    DELETE FROM eventstore.subscription AS t WHERE t.name = s.name;
    -- dropped when this transaction commits, together with the row
    PERFORM eventstore_internal.drop_slot_at_commit(s.slot_name);
END
$$;
COMMENT ON FUNCTION eventstore_internal.drop_subscription(regrole, text) IS 'internal: drop_subscription for caller';

-- Each role sees the subscriptions it owns (is a member of the owner of);
-- superusers see all.  A security barrier: a caller's leaky function in a
-- WHERE clause over the view never sees the rows the filter hides.
CREATE OR REPLACE VIEW eventstore.subscriptions WITH (security_barrier) AS
SELECT s.name,
       s.owner,
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
  LEFT JOIN pg_catalog.pg_replication_slots AS r ON r.slot_name = s.slot_name
 WHERE pg_catalog.pg_has_role(s.owner, 'MEMBER');
COMMENT ON VIEW eventstore.subscriptions IS
'the subscriptions the current role owns (all, for a superuser), with their filter, checkpoint, recovery position (every matching event up to it acknowledged: where to recreate a subscription whose slot was lost), lag (positions behind head_position; matching events after the checkpoint, counted up to 10000; WAL bytes behind) and slot health (wal_status lost = the slot is gone)';

-- Native logical replication: a publication of the events table, inserts
-- only, for CREATE SUBSCRIPTION on another cluster or pgoutput tools.
-- Runs as the caller: only the owner of eventstore.events (or a
-- superuser) may publish it.
CREATE OR REPLACE FUNCTION eventstore.create_publication(name text DEFAULT 'eventstore_events') RETURNS void
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

-- Checkpoints, snapshots, idempotent consumers (entry points: src/caller.c) ---

-- A consumer name (a projection's, or any name given to save_checkpoint
-- or mark_processed) belongs to the role that first used it: its row here
-- records that owner, and position 0 until a checkpoint is saved.

-- schema:begin
CREATE TABLE eventstore.checkpoint (
    projection text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    owner      regrole NOT NULL,
    CONSTRAINT checkpoint_projection_check CHECK (octet_length(projection) BETWEEN 1 AND 255),
    CONSTRAINT checkpoint_position_check CHECK (position >= 0)
);
COMMENT ON TABLE eventstore.checkpoint IS 'each consumer name: its owner and the last global position it processed';
SELECT pg_catalog.pg_extension_config_dump('eventstore.checkpoint', '');

CREATE TABLE eventstore.snapshot (
    stream     text COLLATE "C" PRIMARY KEY,
    version    bigint NOT NULL,
    state      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshot_version_check CHECK (version >= 1)
);
COMMENT ON TABLE eventstore.snapshot IS 'the latest snapshot of each aggregate stream';
SELECT pg_catalog.pg_extension_config_dump('eventstore.snapshot', '');

CREATE TABLE eventstore.processed (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT processed_pkey PRIMARY KEY (consumer, event_id)
);
COMMENT ON TABLE eventstore.processed IS 'events each idempotent consumer has processed';
SELECT pg_catalog.pg_extension_config_dump('eventstore.processed', '');
-- schema:end

CREATE OR REPLACE FUNCTION eventstore.get_checkpoint(projection text) RETURNS bigint
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

CREATE OR REPLACE FUNCTION eventstore.save_checkpoint(
    projection text,
    "position" bigint,
    expected_position bigint DEFAULT NULL)
RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.save_checkpoint(text, bigint, bigint) IS
'save a checkpoint of a consumer name the calling role owns (or claims), transactionally; with expected_position it is a compare-and-set that fails with ES004 on mismatch';

CREATE OR REPLACE FUNCTION eventstore_internal.save_checkpoint(
    caller regrole,
    projection text,
    "position" bigint,
    expected_position bigint)
RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF projection IS NULL OR position IS NULL THEN
        RAISE EXCEPTION 'projection and position must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF position < 0 OR expected_position < 0 THEN
        RAISE EXCEPTION 'positions must not be negative' USING ERRCODE = '22023';
    END IF;
    -- a new name starts at 0 (what get_checkpoint says of a name never saved)
    PERFORM eventstore_internal.claim_consumer(caller, projection);
    -- compare and set: the update re-checks the row a concurrent saver committed
    UPDATE eventstore.checkpoint AS c SET position = save_checkpoint.position, updated_at = now()
     WHERE c.projection = save_checkpoint.projection
       AND (expected_position IS NULL OR c.position = expected_position);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'checkpoint of "%" is not at the expected position', projection
            USING ERRCODE = 'ES004',
                  DETAIL = pg_catalog.format('Expected position %s, but the checkpoint is at %s.',
                                             expected_position, eventstore.get_checkpoint(projection));
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.save_checkpoint(regrole, text, bigint, bigint) IS 'internal: save_checkpoint for caller';

CREATE OR REPLACE FUNCTION eventstore.save_snapshot(stream text, version bigint, state jsonb) RETURNS void
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

CREATE OR REPLACE FUNCTION eventstore.load_snapshot(stream text) RETURNS TABLE (version bigint, state jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.version, t.state FROM eventstore.snapshot AS t WHERE t.stream = load_snapshot.stream
$$;
COMMENT ON FUNCTION eventstore.load_snapshot(text) IS
'the latest snapshot of a stream (no row when none): then read_stream(stream, from_version => version + 1)';

CREATE OR REPLACE FUNCTION eventstore.mark_processed(consumer text, event_id uuid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.mark_processed(text, uuid) IS
'true the first time a consumer (a name the calling role owns or claims) marks an event, false after; transactional, so a rolled-back handler can retry';

CREATE OR REPLACE FUNCTION eventstore_internal.mark_processed(caller regrole, consumer text, event_id uuid) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF consumer IS NULL OR event_id IS NULL THEN
        RAISE EXCEPTION 'consumer and event_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM eventstore_internal.claim_consumer(caller, consumer);
    INSERT INTO eventstore.processed (consumer, event_id) VALUES (mark_processed.consumer, mark_processed.event_id)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION eventstore_internal.mark_processed(regrole, text, uuid) IS 'internal: mark_processed for caller';

-- src/projection.c, src/projection_batch.c, src/worker.c: projections -------

-- A handler is handler(e eventstore.event) RETURNS void.  It runs as the
-- projection's owner (the role that created it), in a security-restricted
-- operation, with the handler's own SET search_path or else the
-- search_path its owner had when creating the projection (search_path),
-- never with the extension owner's rights nor the triggering session's
-- search_path.  Inline projections are an AFTER INSERT trigger on
-- eventstore.events; async ones are run by the background worker.

-- schema:begin
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
    search_path   text NOT NULL,
    handler_timeout interval,   -- async: a batch's time limit; NULL: eventstore.handler_timeout
    CONSTRAINT projection_name_check CHECK (name ~ '^[a-z0-9_]{1,40}$'),
    CONSTRAINT projection_mode_check CHECK (mode IN ('inline', 'async')),
    CONSTRAINT projection_handler_timeout_check CHECK (handler_timeout >= interval '0')
);
COMMENT ON TABLE eventstore.projection IS 'projections: handler, owner, mode, filter and health; use the functions, not this table';
SELECT pg_catalog.pg_extension_config_dump('eventstore.projection', '');
-- schema:end

CREATE OR REPLACE FUNCTION eventstore_internal.call_handler(handler regprocedure, owner regrole,
                                                            search_path text, e eventstore.event) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_call_handler'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.call_handler(regprocedure, regrole, text, eventstore.event) IS
'internal: call a projection handler as its owner, in a security-restricted operation, with the projection''s search_path';

CREATE OR REPLACE FUNCTION eventstore_internal.check_handler(handler regprocedure, owner regrole) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_check_handler'
    LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION eventstore_internal.check_handler(regprocedure, regrole) IS
'internal: 42501 unless owner may run handler (USAGE on its schema, EXECUTE on it, and its own search_path, if any, ends with pg_temp); checked again at every call';

-- The trigger function of every inline projection.  EXECUTE on it is the
-- privilege to create inline projections (as for any trigger, its creator
-- needs EXECUTE on the trigger function): an administrator grants it.
CREATE OR REPLACE FUNCTION eventstore_internal.inline_projection() RETURNS trigger
    AS 'MODULE_PATHNAME', 'eventstore_inline_projection'
    LANGUAGE C;
COMMENT ON FUNCTION eventstore_internal.inline_projection() IS
'internal: AFTER INSERT trigger of an inline projection; EXECUTE on it is the privilege to create inline projections';

-- An inline projection's history, at create_projection and
-- reset_projection, while appends are locked out: every matching event
-- after its checkpoint, this transaction's own included, through the C
-- batch (src/projection_batch.c).  A failing handler fails it.
CREATE OR REPLACE FUNCTION eventstore_internal.apply_history(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_apply_history'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.apply_history(text) IS 'internal: apply an inline projection''s history';

-- The projection row, locked for this transaction, or an error; its owner
-- is checked before the row is locked.
CREATE OR REPLACE FUNCTION eventstore_internal.projection_lock(caller regrole, projection_name text,
                                                               cancel_worker boolean DEFAULT false) RETURNS eventstore.projection
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF projection_name IS NULL THEN
        RAISE EXCEPTION 'projection name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM eventstore.projection AS t WHERE t.name = projection_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" does not exist', projection_name USING ERRCODE = '42704';
    END IF;
    PERFORM eventstore_internal.check_owner(caller, p.owner, 'projection', p.name);
    IF cancel_worker THEN
        -- never wait for the worker: it skips the projection until this
        -- transaction ends and abandons a batch of it that is running
        PERFORM eventstore_internal.worker_cancel(p.name);
    END IF;
    SELECT * INTO p FROM eventstore.projection AS t WHERE t.name = projection_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" does not exist', projection_name USING ERRCODE = '42704';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION eventstore_internal.projection_lock(regrole, text, boolean) IS 'internal: check the owner of a projection and lock its row (cancel_worker: without waiting for the worker''s batch)';

-- 42501 unless caller may create (or re-arm) inline projections.
CREATE OR REPLACE FUNCTION eventstore_internal.check_inline_privilege(caller regrole, projection_name text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.has_function_privilege(caller, 'eventstore_internal.inline_projection()', 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied to create inline projection "%"', projection_name
            USING ERRCODE = '42501',
                  DETAIL = 'An inline projection runs inside every matching append, of every role.',
                  HINT = 'An administrator grants it: GRANT EXECUTE ON FUNCTION eventstore_internal.inline_projection() TO role. Async projections need no such grant.';
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.check_inline_privilege(regrole, text) IS 'internal: the privilege to create inline projections';

-- (Re)create the AFTER INSERT trigger of an inline projection.  Its
-- arguments carry OIDs, so it is always made from the projection row.
CREATE OR REPLACE FUNCTION eventstore_internal.create_inline_trigger(p eventstore.projection) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM eventstore_internal.drop_inline_trigger(p.name);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON eventstore.events FOR EACH ROW '
                   'EXECUTE FUNCTION eventstore_internal.inline_projection(%L, %L, %L, %L, %L, %L)',
                   'es_projection_' || p.name, p.name, p.handler::oid, p.owner::oid,
                   coalesce(p.stream_prefix, ''), coalesce(array_to_string(p.event_types, ','), ''),
                   p.search_path);
END
$$;
COMMENT ON FUNCTION eventstore_internal.create_inline_trigger(eventstore.projection) IS 'internal: the trigger of an inline projection';

-- Drop the trigger of an inline projection, if it has one (silently:
-- DROP TRIGGER IF EXISTS would tell the client it was not there).
CREATE OR REPLACE FUNCTION eventstore_internal.drop_inline_trigger(projection_name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                WHERE t.tgrelid = 'eventstore.events'::regclass
                  AND t.tgname = 'es_projection_' || projection_name) THEN
        EXECUTE format('DROP TRIGGER %I ON eventstore.events', 'es_projection_' || projection_name);
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.drop_inline_trigger(text) IS 'internal: drop the trigger of an inline projection';

CREATE OR REPLACE FUNCTION eventstore.create_projection(
    name text,
    handler regprocedure,
    mode text DEFAULT 'async',
    stream_prefix text DEFAULT NULL,
    event_types text[] DEFAULT NULL)
RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller_with_path'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.create_projection(text, regprocedure, text, text, text[]) IS
'create a projection owned by the calling role: handler(e eventstore.event) runs as that role for every matching event (a batch handler(events eventstore.event[]) for each batch, async only), inline (in the appending transaction; history is applied now; needs the inline privilege) or async (by the background worker, from position 0); names in the handler resolve with its own SET search_path, else the search_path of this call';

CREATE OR REPLACE FUNCTION eventstore_internal.create_projection(
    caller regrole,
    caller_search_path text,
    name text,
    handler regprocedure,
    mode text,
    stream_prefix text,
    event_types text[])
RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
    create_projection_name text := create_projection.name;
    batch boolean;
BEGIN
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
    -- a handler takes one event, or a batch handler the batch's events
    SELECT f.proargtypes[0] = 'eventstore.event[]'::regtype INTO batch
      FROM pg_catalog.pg_proc AS f
     WHERE f.oid = handler AND f.pronargs = 1 AND f.prokind = 'f'
       AND f.proargtypes[0] IN ('eventstore.event'::regtype, 'eventstore.event[]'::regtype)
       AND f.prorettype = 'void'::regtype;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function % cannot be a projection handler', handler
            USING ERRCODE = '22023',
                  HINT = 'A handler is a function handler(e eventstore.event) RETURNS void, or a batch handler handler(events eventstore.event[]) RETURNS void.';
    END IF;
    -- an inline projection runs in the appending statement's row trigger
    IF batch AND mode = 'inline' THEN
        RAISE EXCEPTION 'an inline projection cannot have a batch handler'
            USING ERRCODE = '0A000',
                  DETAIL = pg_catalog.format('Function %s takes eventstore.event[]; an inline projection runs its handler for each appended event.', handler),
                  HINT = 'Make the projection async, or give it a handler(e eventstore.event).';
    END IF;
    PERFORM eventstore_internal.check_handler(handler, caller);
    IF stream_prefix IS NOT NULL AND (stream_prefix = '' OR strpos(stream_prefix, ',') > 0) THEN
        RAISE EXCEPTION 'invalid stream_prefix "%"', stream_prefix
            USING ERRCODE = '22023', DETAIL = 'A prefix is not empty and has no ",".';
    END IF;
    IF event_types IS NOT NULL AND (cardinality(event_types) = 0 OR array_ndims(event_types) <> 1
            OR EXISTS (SELECT FROM unnest(event_types) AS t WHERE t IS NULL OR t = '' OR strpos(t, ',') > 0)) THEN
        RAISE EXCEPTION 'invalid event_types'
            USING ERRCODE = '22023', DETAIL = 'List at least one type, in a one-dimensional array; types must not be NULL, empty or contain ",".';
    END IF;
    IF mode = 'inline' THEN
        PERFORM eventstore_internal.check_inline_privilege(caller, create_projection_name);
    END IF;
    IF EXISTS (SELECT FROM eventstore.projection AS t WHERE t.name = create_projection_name) THEN
        RAISE EXCEPTION 'projection "%" already exists', create_projection_name USING ERRCODE = '42710';
    END IF;

    -- the projection's checkpoint: a consumer name of the caller's, at 0
    PERFORM eventstore_internal.claim_consumer(caller, create_projection_name);
    UPDATE eventstore.checkpoint AS c SET position = 0, updated_at = now()
     WHERE c.projection = create_projection_name;
    INSERT INTO eventstore.projection (name, handler, owner, mode, stream_prefix, event_types, search_path)
    VALUES (create_projection_name, handler, caller, mode, stream_prefix, event_types,
            coalesce(caller_search_path, ''))
    RETURNING * INTO p;

    IF mode = 'inline' THEN
        -- Creating the trigger waits for every in-flight append and holds
        -- new ones until commit, so catching up here misses nothing.
        PERFORM eventstore_internal.create_inline_trigger(p);
        PERFORM eventstore_internal.apply_history(p.name);
    ELSE
        PERFORM eventstore_internal.wake_worker();
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.create_projection(regrole, text, text, regprocedure, text, text, text[]) IS
'internal: create_projection for caller';

CREATE OR REPLACE FUNCTION eventstore.run_projection(name text, max_count integer DEFAULT 1000) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.run_projection(text, integer) IS
'apply one batch of an async projection in the caller''s transaction; returns the number of events applied';

-- One batch in C (src/projection_batch.c): projection_lock (the owner
-- checked, the row lock serializes runners: no event is applied twice),
-- the checkpoint locked (a REPEATABLE READ runner whose snapshot predates
-- another runner's checkpoint fails with 40001 instead of re-applying
-- events), the events after it through the gap-safe feed, the handler,
-- the checkpoint moved once.  Inline projections are always up to date:
-- 0.  A failing handler fails it, its CONTEXT naming the event.
CREATE OR REPLACE FUNCTION eventstore_internal.run_projection(caller regrole, name text, max_count integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_run_projection'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore_internal.run_projection(regrole, text, integer) IS 'internal: run_projection for caller';

CREATE OR REPLACE FUNCTION eventstore.reset_projection(name text, "position" bigint DEFAULT 0) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.reset_projection(text, bigint) IS
'move a projection''s checkpoint (0: rebuild from the start) and clear its error; the caller clears the read model first';

CREATE OR REPLACE FUNCTION eventstore_internal.reset_projection(caller regrole, name text, "position" bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF position IS NULL OR position < 0 THEN
        RAISE EXCEPTION 'position must be a non-negative number' USING ERRCODE = '22023';
    END IF;
    p := eventstore_internal.projection_lock(caller, reset_projection.name, true);
    IF p.mode = 'inline' THEN
        PERFORM eventstore_internal.check_inline_privilege(caller, p.name);
    END IF;
    UPDATE eventstore.checkpoint AS c SET position = reset_projection.position, updated_at = now()
     WHERE c.projection = p.name;
    UPDATE eventstore.projection AS t SET last_error = NULL, error_count = 0, retry_at = NULL
     WHERE t.name = p.name;
    IF p.mode = 'inline' THEN
        -- replay now, holding appends back as create_projection does; the
        -- trigger is made anew (pg_restore does not bring it back)
        PERFORM eventstore_internal.create_inline_trigger(p);
        PERFORM eventstore_internal.apply_history(p.name);
    ELSE
        PERFORM eventstore_internal.wake_worker();
    END IF;
END
$$;
COMMENT ON FUNCTION eventstore_internal.reset_projection(regrole, text, bigint) IS 'internal: reset_projection for caller';

CREATE OR REPLACE FUNCTION eventstore.drop_projection(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.drop_projection(text) IS 'drop a projection (its read model tables are yours to drop)';

CREATE OR REPLACE FUNCTION eventstore_internal.drop_projection(caller regrole, name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    p := eventstore_internal.projection_lock(caller, drop_projection.name, true);
    IF p.mode = 'inline' THEN
        PERFORM eventstore_internal.drop_inline_trigger(p.name);
    END IF;
    DELETE FROM eventstore.projection AS t WHERE t.name = p.name;
    DELETE FROM eventstore.checkpoint AS c WHERE c.projection = p.name;
END
$$;
COMMENT ON FUNCTION eventstore_internal.drop_projection(regrole, text) IS 'internal: drop_projection for caller';

CREATE OR REPLACE FUNCTION eventstore.alter_projection(name text, handler_timeout interval) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_as_caller'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore.alter_projection(text, interval) IS
'set the time limit of an async projection''s batches in the worker (NULL: eventstore.handler_timeout, 0: none); a running batch is canceled and run again';

CREATE OR REPLACE FUNCTION eventstore_internal.alter_projection(caller regrole, name text, handler_timeout interval) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p eventstore.projection;
BEGIN
    IF handler_timeout < interval '0' THEN
        RAISE EXCEPTION 'handler_timeout must not be negative' USING ERRCODE = '22023';
    END IF;
    p := eventstore_internal.projection_lock(caller, alter_projection.name, true);
    UPDATE eventstore.projection AS t SET handler_timeout = alter_projection.handler_timeout
     WHERE t.name = p.name;
END
$$;
COMMENT ON FUNCTION eventstore_internal.alter_projection(regrole, text, interval) IS 'internal: alter_projection for caller';

-- Readable by anyone (as SHOW eventstore.worker_databases is): the
-- projections view shows it.
CREATE OR REPLACE FUNCTION eventstore.worker_serves() RETURNS boolean
    AS 'MODULE_PATHNAME', 'eventstore_worker_serves'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION eventstore.worker_serves() IS 'is this database listed in eventstore.worker_databases (its async projections are run by the background worker)?';

-- Each role sees the projections it owns (is a member of the owner of);
-- superusers see all (a security barrier, as eventstore.subscriptions).
CREATE OR REPLACE VIEW eventstore.projections WITH (security_barrier) AS
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
       p.search_path,
       p.handler_timeout,
       CASE WHEN p.mode = 'async' THEN eventstore.worker_serves() END AS served_by_worker
  FROM eventstore.projection AS p
 WHERE pg_catalog.pg_has_role(p.owner, 'MEMBER');
COMMENT ON VIEW eventstore.projections IS
'the projections the current role owns (all, for a superuser), with their checkpoint, lag (positions behind head_position), health (last_error, error_count, retry_at) and the search_path their handlers run with';

-- Called by the background worker, one projection at a time, each in its
-- own transaction: a batch, or the error recorded with a backoff.
-- Projections with errors run last, so a slow or hanging one delays the
-- healthy ones' batches of a round as little as possible.  timeout_ms is
-- NULL for the setting eventstore.handler_timeout.
CREATE OR REPLACE FUNCTION eventstore_internal.worker_due() RETURNS TABLE (name text, timeout_ms integer)
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
COMMENT ON FUNCTION eventstore_internal.worker_due() IS 'internal: async projections due to run, in the order to run them, with their time limits';

CREATE OR REPLACE FUNCTION eventstore_internal.worker_failed(name text, message text, naptime_ms integer) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE eventstore.projection AS t
       SET last_error = message, error_count = t.error_count + 1, last_error_at = now(),
           retry_at = now() + least(naptime_ms * power(2, least(t.error_count, 16)), 300000) * interval '1 millisecond'
     WHERE t.name = worker_failed.name
$$;
COMMENT ON FUNCTION eventstore_internal.worker_failed(text, text, integer) IS 'internal: record a failed batch and when to retry';

-- One batch for the worker, in C (src/projection_batch.c; the worker
-- calls it directly, this is for tests).  A failing handler does not lose
-- the events before it: they are applied and checkpointed, the failing
-- one is not, and the error is recorded with a retry time
-- (worker_failed).  The projection stalls at the failing event, never
-- skips it.  A projection whose row is locked (someone runs it now) is
-- skipped: 0.
CREATE OR REPLACE FUNCTION eventstore_internal.worker_run(name text, max_count integer, naptime_ms integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'eventstore_worker_run'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventstore_internal.worker_run(text, integer, integer) IS 'internal: one batch of an async projection for the worker';

CREATE OR REPLACE FUNCTION eventstore_internal.wake_worker() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_wake_worker'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore_internal.wake_worker() IS 'internal: wake this database''s projection worker at commit; warns when no worker serves the database';

CREATE OR REPLACE FUNCTION eventstore_internal.worker_cancel(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_worker_cancel'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eventstore_internal.worker_cancel(text) IS
'internal: the worker skips this projection until the transaction ends, and abandons its running batch of it';

-- Privileges ----------------------------------------------------------------

-- The C functions read and write eventstore.events directly, so EXECUTE
-- on them is the access control, and the functions over owned objects
-- check the owner themselves.  PUBLIC gets exactly category() and
-- consumer_group_member(); nothing in eventstore_internal is granted to
-- anyone.  README.md ("Privileges") lists the GRANTs for a writer, a
-- reader, a consumer and an administrator.  These statements also put an
-- upgraded install's grants right.
--
-- Internal functions are revoked from PUBLIC and from every role: ALTER
-- DEFAULT PRIVILEGES of the role that
-- creates the extension would otherwise grant the internal functions (and
-- so every owner's identity) to whomever it names.  The one internal
-- function that is granted on purpose, inline_projection(), is stripped
-- once, when it is made or moved (the fresh install's block below, the
-- 0.1.0 upgrade's .post.sql), never here.
CREATE OR REPLACE FUNCTION eventstore_internal.revoke_granted(kind text, object_name text, acl aclitem[], owner oid)
RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grantee oid;
BEGIN
    FOR grantee IN SELECT DISTINCT a.grantee FROM pg_catalog.aclexplode(acl) AS a
                    WHERE a.grantee <> owner AND a.grantee <> 0 LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %I', kind, object_name,
                                  pg_catalog.pg_get_userbyid(grantee));
    END LOOP;
END
$$;
COMMENT ON FUNCTION eventstore_internal.revoke_granted(text, text, aclitem[], oid) IS
'internal: revoke from every role but the owner what acl grants on an object of the extension (kind FUNCTION, TABLE or SCHEMA; object_name as SQL)';
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore_internal FROM PUBLIC;
REVOKE ALL ON SCHEMA eventstore, eventstore_internal FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore.category(text), eventstore.consumer_group_member(text, integer),
                          eventstore.worker_serves() TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA eventstore FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA eventstore FROM PUBLIC;
SELECT eventstore_internal.revoke_granted('FUNCTION', p.oid::pg_catalog.regprocedure::text, p.proacl, p.proowner)
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = 'eventstore_internal'::pg_catalog.regnamespace
   AND p.oid <> 'eventstore_internal.inline_projection()'::pg_catalog.regprocedure;
SELECT eventstore_internal.revoke_granted('SCHEMA', 'eventstore_internal', n.nspacl, n.nspowner)
  FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'eventstore_internal';

-- A fresh install only: what ALTER DEFAULT PRIVILEGES of the creating
-- role granted on the new objects goes.  The bookkeeping tables, the
-- sequence and inline_projection() are no one's but the extension's until
-- an administrator grants them (README, Privileges).  (Not in upgrades:
-- grants made since are the administrators' own.)
-- schema:begin
SELECT eventstore_internal.revoke_granted('TABLE', c.oid::pg_catalog.regclass::text, c.relacl, c.relowner)
  FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'eventstore'::pg_catalog.regnamespace AND c.relkind IN ('r', 'S');
SELECT eventstore_internal.revoke_granted('FUNCTION', 'eventstore_internal.inline_projection()', p.proacl, p.proowner)
  FROM pg_catalog.pg_proc AS p WHERE p.oid = 'eventstore_internal.inline_projection()'::pg_catalog.regprocedure;
-- schema:end
