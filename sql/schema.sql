-- eventstore: the tables, types and sequence of a fresh install (the
-- stored state).  The Makefile builds eventstore--<version>.sql from this
-- file, sql/functions.sql and sql/install.post.sql; an upgrade script is a
-- migrate--*.sql file, the same sql/functions.sql and its .post.sql, so a
-- fresh install and an upgraded one end with the same functions, views
-- and privileges (test/t/006_upgrade.pl compares them).

CREATE SCHEMA eventstore;
COMMENT ON SCHEMA eventstore IS 'eventstore: streams of immutable events, a gap-safe global feed, subscriptions and projections';

-- The functions behind the API, out of reach of every application role:
-- nothing in this schema is granted to anyone (GRANT ... ON ALL FUNCTIONS
-- IN SCHEMA eventstore does not reach it).  See "Privileges" in README.md.
CREATE SCHEMA eventstore_internal;
COMMENT ON SCHEMA eventstore_internal IS 'eventstore: internal functions; never granted to application roles';
REVOKE ALL ON SCHEMA eventstore_internal FROM PUBLIC;

-- Refuse to install unless the library was preloaded: the in-flight
-- registry behind the gap-safe feed lives in shared memory.
CREATE FUNCTION eventstore_internal.assert_preloaded() RETURNS void
    AS 'MODULE_PATHNAME', 'eventstore_assert_preloaded'
    LANGUAGE C VOLATILE PARALLEL SAFE;
SELECT eventstore_internal.assert_preloaded();

-- The category of a stream: the part of its name before the first '-'.
CREATE FUNCTION eventstore.category(stream text) RETURNS text
    AS 'MODULE_PATHNAME', 'eventstore_category'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

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

-- The trigger function of inline projections; EXECUTE on it is the
-- privilege to create them (sql/functions.sql).  Granted by
-- administrators only: nothing a default privilege gave is kept
-- (sql/install.post.sql).
CREATE FUNCTION eventstore_internal.inline_projection() RETURNS trigger
    AS 'MODULE_PATHNAME', 'eventstore_inline_projection'
    LANGUAGE C;

-- Subscriptions ----------------------------------------------------------
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

-- Checkpoints, snapshots, idempotent consumers ---------------------------
--
-- A consumer name (a projection's, or any name given to save_checkpoint
-- or mark_processed) belongs to the role that first used it: its row here
-- records that owner, and position 0 until a checkpoint is saved.

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

-- Projections -----------------------------------------------------------
--
-- A handler is handler(e eventstore.event) RETURNS void.  It runs as the
-- projection's owner (the role that created it), in a security-restricted
-- operation, with the handler's own SET search_path or else the
-- search_path its owner had when creating the projection (search_path),
-- never with the extension owner's rights nor the triggering session's
-- search_path.  Inline projections are an AFTER INSERT trigger on
-- eventstore.events; async ones are run by the background worker.

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
