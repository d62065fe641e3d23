# Several databases of one cluster, each with the extension, never see
# each other's events, versions or positions: each has its own stream
# namespace, its own positions starting at 1, its own stream locks (an
# open append in one database does not block the same stream name in the
# other) and its own gap-safe horizon (an in-flight append in one
# database does not hold back head_position in the other).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dbs');
$node->init;
$node->append_conf('postgresql.conf', slurp_file('test/eventstore.conf'));
$node->append_conf('postgresql.conf', 'log_statement = none');
$node->start;

for my $db (qw(db_one db_two))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
}

# Same stream name in both databases.
is( $node->safe_psql(
		'db_one', q{
SELECT string_agg(stream_version || '@' || global_position, ' ' ORDER BY global_position)
FROM (SELECT (eventstore.append_event('order-1', 'Created')).*
      UNION ALL SELECT (eventstore.append_event('order-1', 'Paid')).*
      UNION ALL SELECT (eventstore.append_event('order-2', 'Created')).*) x
}),
	'1@1 2@2 1@3',
	'db_one: versions and positions start at 1');

is( $node->safe_psql(
		'db_two', q{SELECT stream_version || '@' || global_position FROM eventstore.append_event('order-1', 'Imported')}),
	'1@1',
	'db_two: the same stream name starts at version 1, position 1');

is( $node->safe_psql(
		'db_one', q{SELECT string_agg(stream_version || ':' || event_type, ',') FROM eventstore.read_stream('order-1')}),
	'1:Created,2:Paid',
	'db_one reads only its own events of order-1');
is( $node->safe_psql(
		'db_two', q{SELECT string_agg(stream_version || ':' || event_type, ',') FROM eventstore.read_stream('order-1')}),
	'1:Imported',
	'db_two reads only its own events of order-1');
is($node->safe_psql('db_two', q{SELECT eventstore.stream_version('order-2')}),
	'0', 'db_two does not see db_one\'s stream order-2');
is($node->safe_psql('db_two', q{SELECT count(*) FROM eventstore.events}),
	'1', 'db_two\'s table holds only its own event');
is( $node->safe_psql(
		'db_two', q{SELECT string_agg(global_position || ':' || stream, ',') FROM eventstore.read_all(0)}),
	'1:order-1',
	'db_two\'s global feed holds only its own event');
is( $node->safe_psql(
		'db_one', q{SELECT string_agg(global_position || ':' || stream, ',') FROM eventstore.read_all(0)}),
	'1:order-1,2:order-1,3:order-2',
	'db_one\'s global feed holds only its own events');

# An expectation is checked against the database's own stream.
my ($ret, $stdout, $stderr) = $node->psql('db_two',
	q{SELECT * FROM eventstore.append_event('order-1', 'Shipped', expected_version => 2)});
like($stderr, qr/wrong expected version/, 'db_two: expected version 2 fails, its order-1 is at 1');

# An open append in db_one: holds order-1's lock and position 4 there.
my $open = $node->background_psql('db_one');
$open->query_safe(q{BEGIN});
is( $open->query_safe(
		q{SELECT stream_version || '@' || global_position FROM eventstore.append_event('order-1', 'Refunded')}),
	'3@4',
	'db_one: an append is in flight');

# The same stream name in db_two does not wait for it (a lock wait would
# hit lock_timeout and fail the query).
is( $node->safe_psql(
		'db_two', q{
SET lock_timeout = '60s';
SELECT stream_version FROM eventstore.append_event('order-1', 'Shipped')}),
	'2',
	'db_two: appending to its order-1 does not wait for db_one\'s open append');

# The in-flight append holds back db_one's horizon, not db_two's.
is( $node->safe_psql(
		'db_two', q{SELECT eventstore.head_position() = max(global_position) FROM eventstore.events}),
	't', 'db_two: head_position is not held back by db_one\'s in-flight append');
is($node->safe_psql('db_one', q{SELECT eventstore.head_position()}),
	'3', 'db_one: head_position stays below the in-flight position 4');

$open->query_safe(q{COMMIT});
$open->quit;
is($node->safe_psql('db_one', q{SELECT eventstore.head_position()}),
	'4', 'db_one: head_position advances after the commit');
is( $node->safe_psql(
		'db_one', q{SELECT max(global_position) || ' ' || eventstore.stream_version('order-1') FROM eventstore.events}),
	'4 3',
	'db_one: its own positions and versions continue independently');
is( $node->safe_psql(
		'db_two', q{SELECT count(*) || ' ' || eventstore.stream_version('order-1') FROM eventstore.events}),
	'2 2',
	'db_two: its own positions and versions continue independently');

# Dropping the extension in one database leaves the other intact.
$node->safe_psql('db_two', 'DROP EXTENSION eventstore');
is( $node->safe_psql('db_one', q{SELECT count(*) FROM eventstore.read_stream('order-1')}),
	'3', 'db_one keeps its events when db_two drops the extension');

$node->stop;
done_testing();
