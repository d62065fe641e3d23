
-- eventstore 0.1.0 -> 0.2.0, after sql/eventstore.sql.
-- inline_projection() keeps no grant of 0.1.0's (GRANT ... ON ALL
-- FUNCTIONS IN SCHEMA eventstore reached it there): it is the inline
-- privilege now.
SELECT eventstore_internal.revoke_granted('FUNCTION', 'eventstore_internal.inline_projection()', p.proacl, p.proowner)
  FROM pg_catalog.pg_proc AS p WHERE p.oid = 'eventstore_internal.inline_projection()'::pg_catalog.regprocedure;

-- Inline projections' triggers take the projection's search_path as a
-- sixth argument.
SELECT eventstore_internal.create_inline_trigger(p)
  FROM eventstore.projection AS p
 WHERE p.mode = 'inline'
   AND EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                WHERE t.tgrelid = 'eventstore.events'::pg_catalog.regclass
                  AND t.tgname = 'es_projection_' || p.name);

-- Creating an inline projection is an administrator's grant now; those
-- 0.1.0 let any role create go on running.  Say which.
DO $$
DECLARE
    names text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (owner %s)', p.name, p.owner), ', ' ORDER BY p.name)
      INTO names
      FROM eventstore.projection AS p
     WHERE p.mode = 'inline'
       AND NOT pg_catalog.has_function_privilege(p.owner, 'eventstore_internal.inline_projection()', 'EXECUTE');
    IF names IS NOT NULL THEN
        RAISE WARNING 'inline projections whose owners may no longer create them: %', names
            USING DETAIL = 'They keep running inside every matching append.',
                  HINT = 'Drop those you did not mean to allow, or grant their owners EXECUTE ON FUNCTION eventstore_internal.inline_projection().';
    END IF;
END
$$;
