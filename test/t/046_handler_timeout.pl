# A hanging handler does not stop its database's other async projections,
# and drop_projection/reset_projection of it never wait for it (README
# "Projections").
#
# eventstore.handler_timeout is 2 s here.  a_hang's handler sleeps for ever
# (and is first in the worker's order): each of its batches is canceled
# at the time limit, rolled back and recorded with a backoff, while b_ok,
# appended to afterwards, catches up.  c_stuck has a limit of its own of
# an hour (alter_projection), so only a cancel can free the worker from
# it: reset_projection and drop_projection of it return while the worker
# runs its batch, and b_ok goes on after.  No timing is asserted: the
# waits are polls bounded by the test suite's timeout.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('handler_timeout', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '100ms'
eventstore.handler_timeout = '2s'
log_statement = none
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE ok_rm (position bigint PRIMARY KEY);
CREATE FUNCTION hang_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$ SELECT pg_sleep(1000000) $$;
CREATE FUNCTION ok_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO ok_rm VALUES (e.global_position) $$;
SELECT eventstore.create_projection('a_hang', 'hang_h(eventstore.event)');
SELECT eventstore.create_projection('b_ok', 'ok_h(eventstore.event)');
SELECT eventstore.append_event('s-1', 'Tick');
});

# The worker is stuck in a_hang's handler ...
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'eventstore projection worker' AND wait_event = 'PgSleep'}),
	'the worker runs the hanging handler');

# ... and still b_ok applies events appended meanwhile.
$node->safe_psql('postgres', q{SELECT eventstore.append_event('s-2', 'Tick') FROM generate_series(1, 5)});
ok( $node->poll_query_until(
		'postgres', q{
SELECT lag = 0 AND (SELECT count(*) = 6 FROM ok_rm) FROM eventstore.projections WHERE name = 'b_ok'}),
	'b_ok catches up while a_hang hangs');

ok( $node->poll_query_until(
		'postgres', q{SELECT last_error IS NOT NULL FROM eventstore.projections WHERE name = 'a_hang'}),
	'a_hang records an error');
like($node->safe_psql('postgres', q{SELECT last_error FROM eventstore.projections WHERE name = 'a_hang'}),
	qr/time limit.*eventstore\.handler_timeout/, '  about the time limit');
is($node->safe_psql('postgres', q{SELECT checkpoint FROM eventstore.projections WHERE name = 'a_hang'}),
	'0', '  and stalls at its first event (no event skipped)');

# c_stuck: an hour's limit of its own; the worker stays in it.
$node->safe_psql(
	'postgres', q{
SELECT eventstore.drop_projection('a_hang');
SELECT eventstore.create_projection('c_stuck', 'hang_h(eventstore.event)');
SELECT eventstore.alter_projection('c_stuck', handler_timeout => '1h');
});
is($node->safe_psql('postgres', q{SELECT handler_timeout FROM eventstore.projections WHERE name = 'c_stuck'}),
	'01:00:00', 'alter_projection sets the time limit of c_stuck');
my $stuck = q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'eventstore projection worker' AND wait_event = 'PgSleep'
   AND now() - xact_start > interval '3 s'};
ok($node->poll_query_until('postgres', $stuck), 'the worker is stuck in c_stuck past the global limit');

# reset_projection and drop_projection return (an error would fail
# safe_psql; a wait would last an hour).
is( $node->safe_psql(
		'postgres', q{SELECT 'reset' FROM eventstore.reset_projection('c_stuck', 0)}),
	'reset', 'reset_projection of the stuck projection returns');
ok($node->poll_query_until('postgres', $stuck), 'the worker is stuck in c_stuck again');
is( $node->safe_psql(
		'postgres', q{SELECT FROM eventstore.drop_projection('c_stuck');
SELECT count(*) FROM eventstore.projections WHERE name = 'c_stuck'}),
	'0', 'drop_projection of the stuck projection returns and drops it');
is($node->safe_psql('postgres', q{SELECT count(*) FROM eventstore.projections WHERE last_error IS NOT NULL}),
	'0', 'the canceled batches recorded no error');

$node->safe_psql('postgres', q{SELECT eventstore.append_event('s-3', 'Tick')});
ok( $node->poll_query_until(
		'postgres', q{SELECT lag = 0 AND (SELECT count(*) = 7 FROM ok_rm) FROM eventstore.projections WHERE name = 'b_ok'}),
	'b_ok goes on after the drop');

$node->stop;
done_testing();
