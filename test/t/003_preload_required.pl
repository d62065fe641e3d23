# eventstore needs shared_preload_libraries.
#
# On a server without it, CREATE EXTENSION fails with SQLSTATE 55000, a
# message and a hint naming shared_preload_libraries, leaves nothing
# behind, and does not disturb the session or the server.  With the
# setting added and the server restarted, the same CREATE EXTENSION
# succeeds.  An installed extension whose library is no longer preloaded
# refuses to append with the same error instead of appending without its
# shared-memory registry.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# test/eventstore.conf without shared_preload_libraries.
my $conf = slurp_file('test/eventstore.conf');
my $conf_without = join('', grep { !/^\s*shared_preload_libraries\b/ } split /^/, $conf);
unlike($conf_without, qr/shared_preload_libraries/, 'test settings without the preload');

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->append_conf('postgresql.conf', $conf_without);
$node->start;
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'server runs without shared_preload_libraries');

# What exists of the extension, in a form that differs if anything is left.
my $leftovers_sql = q{
SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'eventstore') || ' '
    || (SELECT count(*) FROM pg_namespace WHERE nspname = 'eventstore') || ' '
    || (SELECT count(*) FROM pg_proc WHERE probin LIKE '%eventstore%') || ' '
    || (SELECT count(*) FROM pg_class WHERE relname LIKE 'events%' OR relname = 'global_position_seq') || ' '
    || (SELECT count(*) FROM pg_type WHERE typname = 'event')
};
is($node->safe_psql('postgres', $leftovers_sql), '0 0 0 0 0', 'nothing of the extension before');

# Run CREATE EXTENSION and report the error fields.  The session goes on
# afterwards, so the backend did not crash.
my $fields = $node->safe_psql(
	'postgres', q{
DO $$
DECLARE
	st text; msg text; hint text;
BEGIN
	CREATE EXTENSION eventstore;
	RAISE NOTICE 'created';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	PERFORM set_config('es.sqlstate', st, false);
	PERFORM set_config('es.message', msg, false);
	PERFORM set_config('es.hint', hint, false);
END $$;
SELECT current_setting('es.sqlstate', true);
SELECT current_setting('es.message', true);
SELECT current_setting('es.hint', true);
});
my ($sqlstate, $message, $hint) = split /\n/, $fields;
is($sqlstate, '55000', 'CREATE EXTENSION fails with SQLSTATE 55000 (object not in prerequisite state)');
like($message, qr/shared_preload_libraries/, 'the message names shared_preload_libraries');
like($hint, qr/shared_preload_libraries/, 'the hint names shared_preload_libraries');
note "message: $message";
note "hint: $hint";

# The same through psql, as a user sees it.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nCREATE EXTENSION eventstore;");
isnt($ret, 0, 'psql reports the failure');
like($stderr, qr/ERROR:\s+55000:/, 'psql shows SQLSTATE 55000');
like($stderr, qr/HINT:.*shared_preload_libraries/, 'psql shows the hint');

is($node->safe_psql('postgres', $leftovers_sql), '0 0 0 0 0', 'nothing of the extension is left behind');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still accepts queries');

# With the preload, the same command works.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eventstore'");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
is( $node->safe_psql(
		'postgres',
		q{SELECT stream_version FROM eventstore.append_event('preload-1', 'Installed')}),
	'1',
	'after adding the preload and restarting, CREATE EXTENSION and append work');

# Installed, then the preload removed: appends are refused, nothing written.
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), '', 'preload removed again');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM eventstore.append_event('preload-1', 'Unregistered');");
isnt($ret, 0, 'append without the preload fails');
like($stderr, qr/ERROR:\s+55000:/, 'append without the preload fails with SQLSTATE 55000');
like($stderr, qr/HINT:.*shared_preload_libraries/, '... and the hint names shared_preload_libraries');

$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'eventstore'");
$node->restart;
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(stream_version || ':' || event_type, ',') FROM eventstore.read_stream('preload-1')}),
	'1:Installed',
	'the refused append wrote nothing');

$node->stop;
done_testing();
