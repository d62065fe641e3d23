-- eventstore 0.1.0 -> 0.2.0: the stored state, to what the fenced blocks
-- of sql/eventstore.sql make.  The Makefile appends sql/eventstore.sql
-- without those blocks (every function, view and privilege as in a fresh
-- install) and then sql/migrate--0.1.0--0.2.0.post.sql.

-- Internal functions move out of the schema that application roles get
-- EXECUTE grants on.  The two trigger functions move (the triggers follow
-- them); the others are dropped and made anew by sql/eventstore.sql.
CREATE SCHEMA eventstore_internal;
COMMENT ON SCHEMA eventstore_internal IS 'eventstore: internal functions; never granted to application roles';
REVOKE ALL ON SCHEMA eventstore_internal FROM PUBLIC;

ALTER FUNCTION eventstore._assert_preloaded() SET SCHEMA eventstore_internal;
ALTER FUNCTION eventstore_internal._assert_preloaded() RENAME TO assert_preloaded;
ALTER FUNCTION eventstore._refuse_change() SET SCHEMA eventstore_internal;
ALTER FUNCTION eventstore_internal._refuse_change() RENAME TO refuse_change;
ALTER FUNCTION eventstore._inline_projection() SET SCHEMA eventstore_internal;
ALTER FUNCTION eventstore_internal._inline_projection() RENAME TO inline_projection;
-- (what 0.1.0's README had roles grant on them, GRANT ... ON ALL
-- FUNCTIONS IN SCHEMA eventstore, sql/eventstore.sql and the .post.sql
-- revoke)

-- The views gain columns (owner, search_path) and filter by owner.
DROP VIEW eventstore.subscriptions;
DROP VIEW eventstore.projections;

DROP FUNCTION eventstore._prevent_in_transaction_block(text);
DROP FUNCTION eventstore._create_slot(name, text);
DROP FUNCTION eventstore._drop_slot_at_commit(name);
DROP FUNCTION eventstore._flush_wal();
DROP FUNCTION eventstore._log_running_xacts(name);
DROP FUNCTION eventstore._subscription_options(eventstore.subscription);
DROP FUNCTION eventstore._subscription_lock(text);
DROP FUNCTION eventstore._call_handler(regprocedure, regrole, eventstore.event);
DROP FUNCTION eventstore._matches(eventstore.projection, eventstore.event);
DROP FUNCTION eventstore._apply_projection(eventstore.projection, integer, bigint, boolean);
DROP FUNCTION eventstore._projection_lock(text);
DROP FUNCTION eventstore._create_inline_trigger(eventstore.projection);
DROP FUNCTION eventstore._create_projection(text, regprocedure, text, text, text[], regrole);
DROP FUNCTION eventstore._worker_due();
DROP FUNCTION eventstore._worker_failed(text, text, integer);
DROP FUNCTION eventstore._worker_run(text, integer, integer);
DROP FUNCTION eventstore._first_failing(eventstore.projection, integer);
DROP FUNCTION eventstore._wake_worker();

-- Owners.  0.1.0 did not record who created a subscription or used a
-- consumer name: they go to the extension's owner (a superuser), who can
-- hand them to their consumers (see CHANGELOG.md, 0.2.0).  A projection's
-- checkpoint goes to the projection's owner.
ALTER TABLE eventstore.subscription ADD COLUMN owner regrole;
UPDATE eventstore.subscription SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension AS e
                                             WHERE e.extname = 'eventstore');
ALTER TABLE eventstore.subscription ALTER COLUMN owner SET NOT NULL;
COMMENT ON TABLE eventstore.subscription IS 'subscriptions: slot, filter, checkpoint and owner; use the functions, not this table';

ALTER TABLE eventstore.checkpoint ADD COLUMN owner regrole;
UPDATE eventstore.checkpoint AS c
   SET owner = coalesce((SELECT p.owner FROM eventstore.projection AS p WHERE p.name = c.projection),
                        (SELECT e.extowner FROM pg_catalog.pg_extension AS e WHERE e.extname = 'eventstore'));
-- every consumer name that has processed marks is registered
INSERT INTO eventstore.checkpoint (projection, position, owner)
SELECT DISTINCT m.consumer, 0, (SELECT e.extowner FROM pg_catalog.pg_extension AS e WHERE e.extname = 'eventstore')
  FROM eventstore.processed AS m
 WHERE pg_catalog.octet_length(m.consumer) BETWEEN 1 AND 255
ON CONFLICT DO NOTHING;
ALTER TABLE eventstore.checkpoint ALTER COLUMN owner SET NOT NULL;
COMMENT ON TABLE eventstore.checkpoint IS 'each consumer name: its owner and the last global position it processed';

-- Handlers no longer take the triggering session's search_path: 0.1.0's
-- projections get PostgreSQL's default (README: pin your own with
-- ALTER FUNCTION handler SET search_path).
ALTER TABLE eventstore.projection ADD COLUMN search_path text;
UPDATE eventstore.projection SET search_path = '"$user", public';
ALTER TABLE eventstore.projection ALTER COLUMN search_path SET NOT NULL;
COMMENT ON TABLE eventstore.projection IS 'projections: handler, owner, mode, filter and health; use the functions, not this table';

-- Async batches get a time limit in the worker (eventstore.handler_timeout,
-- or the projection's own: alter_projection).
ALTER TABLE eventstore.projection ADD COLUMN handler_timeout interval;
ALTER TABLE eventstore.projection ADD CONSTRAINT projection_handler_timeout_check CHECK (handler_timeout >= interval '0');
