# The projection worker is woken only when it has work (README
# "Projections", "Configuration").
#
# Rounds are counted from the worker's DEBUG1 line "eventstore worker: N
# projections due"; the naptime is an hour, so every round after the
# first comes from a wake-up.  Appends in a database with no async
# projection (none, then only an inline one) give the worker no round.
# An async projection created then is woken for at its commit, follows
# the appends (woken by them: no naptime would do it within an hour), and
# once it is dropped the appends give no round again.
#
# An async projection in a database that no worker serves warns at
# create_projection, naming the setting, and the projections view says
# so (served_by_worker).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('worker_wakeups', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '1h'
log_min_messages = debug1
log_statement = none
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE rm (position bigint PRIMARY KEY);
CREATE FUNCTION rm_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO rm VALUES (e.global_position) $$;
CREATE PROCEDURE load(n integer) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. n LOOP
		PERFORM eventstore.append_event('s-' || (i % 50), 'Tick');
		COMMIT;
	END LOOP;
END $$;
});
my $pid = worker_pid($node);
ok($pid, 'the projection worker runs');

# Rounds the worker has logged so far.
sub rounds { return worker_rounds($node, $pid); }

my $r = rounds();
$node->safe_psql('postgres', 'CALL load(2000)');
is(rounds(), $r, '2000 appends without projections: no round');

$node->safe_psql('postgres', q{
CREATE TABLE inline_rm (position bigint PRIMARY KEY);
CREATE FUNCTION inline_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO inline_rm VALUES (e.global_position) $$;
SELECT eventstore.create_projection('inl', 'inline_h(eventstore.event)', 'inline');
CALL load(2000);
});
is(rounds(), $r, '2000 appends with only an inline projection: no round');

my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT eventstore.create_projection('asy', 'rm_h(eventstore.event)')});
is($err, '', 'create_projection in a served database does not warn');
ok( $node->poll_query_until(
		'postgres', q{SELECT lag = 0 AND (SELECT count(*) = 4000 FROM rm) FROM eventstore.projections WHERE name = 'asy'}),
	'the async projection is woken for at its creation and catches up');
$node->safe_psql('postgres', 'CALL load(100)');
ok( $node->poll_query_until(
		'postgres', q{SELECT lag = 0 AND (SELECT count(*) = 4100 FROM rm) FROM eventstore.projections WHERE name = 'asy'}),
	'appends wake the worker for it');
is($node->safe_psql('postgres', q{SELECT served_by_worker FROM eventstore.projections WHERE name = 'asy'}),
	't', 'the projections view: the async projection is served');
is($node->safe_psql('postgres', q{SELECT served_by_worker IS NULL FROM eventstore.projections WHERE name = 'inl'}),
	't', '  and says nothing for an inline one');

# The drop wakes the worker at its commit; the round that follows finds
# no async projection.
$r = rounds();
$node->safe_psql('postgres', q{SELECT eventstore.drop_projection('asy')});
my $woken = 0;
for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	$woken = rounds() > $r and last;
	select(undef, undef, undef, 0.1);
}
ok($woken, 'drop_projection wakes the worker');
$r = rounds();
$node->safe_psql('postgres', 'CALL load(2000)');
is(rounds(), $r, 'after the drop, 2000 appends give no round');

# A database no worker serves.
$node->safe_psql('postgres', 'CREATE DATABASE unserved');
$node->safe_psql('unserved', q{
CREATE EXTENSION eventstore;
CREATE FUNCTION h(e eventstore.event) RETURNS void LANGUAGE sql AS $$ SELECT $$;
});
($ret, $out, $err) = $node->psql('unserved',
	q{SELECT eventstore.create_projection('p', 'h(eventstore.event)')});
is($ret, 0, 'create_projection in an unserved database succeeds');
like($err, qr/WARNING:  no projection worker serves database "unserved"/, '  with a warning');
like($err, qr/HINT:  .*eventstore\.worker_databases/, '  whose hint names the setting');
is($node->safe_psql('unserved', q{SELECT served_by_worker FROM eventstore.projections}),
	'f', 'the projections view: not served');
($ret, $out, $err) = $node->psql('unserved',
	q{SELECT eventstore.create_projection('q', 'h(eventstore.event)', 'inline')});
unlike($err, qr/WARNING/, 'an inline projection does not warn');

$node->safe_psql('postgres',
	q{ALTER SYSTEM SET eventstore.worker_databases = 'postgres, unserved'; SELECT pg_reload_conf()});
ok( $node->poll_query_until(
		'unserved', q{SELECT served_by_worker FROM eventstore.projections WHERE name = 'p'}),
	'listed and reloaded: served');

$node->stop;
done_testing();
