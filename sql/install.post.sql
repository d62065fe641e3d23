
-- eventstore, a fresh install, after functions.sql: what ALTER DEFAULT
-- PRIVILEGES of the creating role granted on the new objects goes.  The
-- bookkeeping tables, the sequence and inline_projection() are no one's
-- but the extension's until an administrator grants them (README,
-- Privileges).  (Not in upgrades: grants made since are the
-- administrators' own.)
SELECT eventstore_internal.revoke_granted('TABLE', c.oid::pg_catalog.regclass::text, c.relacl, c.relowner)
  FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'eventstore'::pg_catalog.regnamespace AND c.relkind IN ('r', 'S');
SELECT eventstore_internal.revoke_granted('FUNCTION', 'eventstore_internal.inline_projection()', p.proacl, p.proowner)
  FROM pg_catalog.pg_proc AS p WHERE p.oid = 'eventstore_internal.inline_projection()'::pg_catalog.regprocedure;
