# ALTER EXTENSION eventstore UPDATE from 0.1.0 (the only earlier version
# shipped): the upgraded database ends with exactly the functions, views,
# tables, triggers, comments and privileges of a fresh install, and its
# data goes on working.
#
# Database "old" gets 0.1.0, an application role granted the way 0.1.0's
# README said (ALL FUNCTIONS IN SCHEMA eventstore), a subscription, an
# async and an inline projection, a checkpoint and processed marks, and
# appends -- also once with 0.1.0's objects calling this version's library
# (the state between installing the library and updating the extension).
# Then UPDATE, and a catalog description of every object of the extension
# must equal that of database "fresh".
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('upgrade', "synchronous_commit = on\n");

$node->safe_psql('postgres', 'CREATE DATABASE old; CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION eventstore');
$node->safe_psql(
	'old', q{
CREATE EXTENSION eventstore VERSION '0.1.0';
CREATE ROLE app;
GRANT USAGE ON SCHEMA eventstore TO app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA eventstore TO app;
CREATE TABLE rm (projection text, position bigint);
CREATE FUNCTION h_async(e eventstore.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO rm VALUES ('async', e.global_position) $$;
CREATE FUNCTION h_inline(e eventstore.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO rm VALUES ('inline', e.global_position) $$;
SELECT eventstore.append_event('acct-1', 'Opened');
SELECT eventstore.create_projection('p_async', 'h_async(eventstore.event)', 'async');
SELECT eventstore.create_projection('p_inline', 'h_inline(eventstore.event)', 'inline');
SELECT eventstore.save_checkpoint('c_old', 1);
SELECT eventstore.mark_processed('m_old', '00000000-0000-4000-8000-000000000001');
});
$node->safe_psql('old', q{SELECT eventstore.create_subscription('sub_old', from_position => 0)});
$node->safe_psql('old', q{SELECT eventstore.append_event('acct-1', 'Deposited')});
is($node->safe_psql('old', q{SELECT count(*) FROM rm WHERE projection = 'inline'}), '2',
	"0.1.0's inline projection runs on this library before the update");
is($node->safe_psql('old', q{SELECT eventstore.run_projection('p_async')}), '2',
	"  and so does run_projection");

$node->safe_psql('old', 'ALTER EXTENSION eventstore UPDATE');
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'eventstore'}),
	'0.2.0', 'updated to 0.2.0');

# Every object of the extension, described: definitions, owners, ACLs,
# settings and comments.  Inline projections' triggers are data, not
# objects of the extension, and are compared separately.
my $describe = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'eventstore'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend AS d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT string_agg(line, E'\n' ORDER BY line COLLATE "C") FROM (
    SELECT 'function ' || p.oid::regprocedure || ' owner ' || p.proowner::regrole
           || ' acl ' || coalesce(p.proacl::text, '-') || ' definer ' || p.prosecdef
           || ' config ' || coalesce(p.proconfig::text, '-')
           || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
           || E'\n' || CASE WHEN p.prokind = 'a' THEN '' ELSE pg_get_functiondef(p.oid) END AS line
      FROM members AS m JOIN pg_proc AS p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    SELECT 'relation ' || c.oid::regclass || ' kind ' || c.relkind::text || ' owner ' || c.relowner::regrole
           || ' acl ' || coalesce(c.relacl::text, '-')
           || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
           || coalesce(E'\n' || pg_get_viewdef(c.oid), '')
           || coalesce((SELECT string_agg(E'\n  column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                          || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                                          || coalesce(' collate ' || co.collname, ''), '' ORDER BY a.attnum)
                          FROM pg_attribute AS a
                          LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                          LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 100
                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
           || coalesce((SELECT string_agg(E'\n  constraint ' || x.conname || ' ' || pg_get_constraintdef(x.oid), ''
                                          ORDER BY x.conname)
                          FROM pg_constraint AS x WHERE x.conrelid = c.oid), '')
           || coalesce((SELECT string_agg(E'\n  index ' || pg_get_indexdef(i.indexrelid), '' ORDER BY 1)
                          FROM pg_index AS i WHERE i.indrelid = c.oid), '')
           || coalesce((SELECT string_agg(E'\n  trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text, ''
                                          ORDER BY t.tgname)
                          FROM pg_trigger AS t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
                           AND t.tgname NOT LIKE 'es\_projection\_%'), '')
      FROM members AS m JOIN pg_class AS c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    SELECT 'schema ' || n.nspname || ' owner ' || n.nspowner::regrole || ' acl ' || coalesce(n.nspacl::text, '-')
           || ' comment ' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
      FROM members AS m JOIN pg_namespace AS n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    SELECT 'type ' || t.oid::regtype || ' comment ' || coalesce(obj_description(t.oid, 'pg_type'), '-')
      FROM members AS m JOIN pg_type AS t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT 'config ' || array_to_string(ARRAY(SELECT x::regclass::text FROM unnest(e.extconfig) AS x), ', ')
      FROM pg_extension AS e WHERE e.extname = 'eventstore'
) AS d
};
my $fresh = $node->safe_psql('fresh', $describe);
my $old = $node->safe_psql('old', $describe);
# the app role of "old" is not in "fresh": its grants are compared below
$old =~ s/app=\w*\/\w+,?//g;
$old =~ s/,\}/}/g;
ok(length($fresh) > 10000, 'the description covers the extension (' . length($fresh) . ' characters)');
is($old, $fresh, 'the updated database has exactly the objects of a fresh install');
if ($old ne $fresh)
{
	my @o = split /\n/, $old;
	my @f = split /\n/, $fresh;
	for my $i (0 .. $#f)
	{
		if (!defined $o[$i] || $o[$i] ne $f[$i])
		{
			diag("first difference at line $i:\n  updated: " . ($o[$i] // '(none)') . "\n  fresh:   $f[$i]");
			last;
		}
	}
}

# The grants of 0.1.0's README: the public API stays callable, nothing internal.
is($node->safe_psql('old', q{
	SELECT string_agg(p.proname, ' ' ORDER BY p.proname) FROM pg_proc AS p
	 WHERE p.pronamespace = 'eventstore_internal'::regnamespace AND has_function_privilege('app', p.oid, 'EXECUTE')}),
	'', "the 0.1.0-style application role can execute nothing internal");
is($node->safe_psql('old', q{SELECT has_function_privilege('app', 'eventstore.poll(text, integer)', 'EXECUTE')}),
	't', '  and keeps its grants on the API');

# The data goes on: 0.1.0's objects belong to the extension's owner now.
is($node->safe_psql('old', q{SELECT string_agg(name || ':' || owner, ' ' ORDER BY name) FROM eventstore.subscriptions}),
	'sub_old:postgres', "the subscription is the extension owner's");
is($node->safe_psql('old', q{SELECT string_agg(projection || ':' || owner, ' ' ORDER BY projection) FROM eventstore.checkpoint}),
	'c_old:postgres m_old:postgres p_async:postgres p_inline:postgres',
	'every consumer name has an owner');
is($node->safe_psql('old', q{SELECT string_agg(name || ':' || search_path, ' ' ORDER BY name) FROM eventstore.projections}),
	'p_async:"$user", public p_inline:"$user", public', "projections get PostgreSQL's default search_path");
$node->safe_psql('old', q{SELECT eventstore.append_event('acct-1', 'Deposited')});
is($node->safe_psql('old', q{SELECT count(*) FROM rm WHERE projection = 'inline'}), '3',
	'the inline projection applies a new event (its trigger was made anew)');
is($node->safe_psql('old', q{SELECT tgnargs FROM pg_trigger WHERE tgname = 'es_projection_p_inline'}), '6',
	'  with the search_path argument');
is($node->safe_psql('old', q{SELECT eventstore.run_projection('p_async')}), '1', 'the async projection goes on');
is($node->safe_psql('old', q{BEGIN;
	SELECT count(*) FROM eventstore.poll('sub_old');
	SELECT count(*) FROM eventstore.poll('sub_old');
	SELECT eventstore.ack('sub_old');
	COMMIT}), "1\n2\n", 'the subscription delivers its history, then the live events');
is($node->safe_psql('old', q{SELECT eventstore.mark_processed('m_old', '00000000-0000-4000-8000-000000000001')}),
	'f', 'processed marks survive');

done_testing();
