
-- eventstore 0.1.0 -> 0.2.0, after functions.sql: inline projections'
-- triggers take the projection's search_path as a sixth argument.
SELECT eventstore_internal.create_inline_trigger(p)
  FROM eventstore.projection AS p
 WHERE p.mode = 'inline'
   AND EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                WHERE t.tgrelid = 'eventstore.events'::pg_catalog.regclass
                  AND t.tgname = 'es_projection_' || p.name);
