# DROP EXTENSION eventstore drops the replication slots of its
# subscriptions when it commits, as DROP SUBSCRIPTION drops its slot: no
# slot is left holding WAL with nothing that names it.
#
#   1. ROLLBACK of a DROP EXTENSION, and of a savepoint around one, keeps
#      the slots, and the subscriptions still poll.
#   2. A slot in use by pg_recvlogical makes the DROP EXTENSION fail at
#      commit (55006): the extension and every slot stay.
#   3. DROP EXTENSION drops the subscriptions' slots and only those.
#   4. DROP DATABASE takes a subscription's slot along (PostgreSQL drops
#      the inactive logical slots of a dropped database).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;

my $node = eventstore_node('dropext', qq(
synchronous_commit = on
log_statement = none
), allows_streaming => 'logical');

$node->safe_psql('postgres', q{
CREATE EXTENSION eventstore;
SELECT pg_create_logical_replication_slot('not_a_subscription', 'eventstore');
});
$node->safe_psql('postgres', "SELECT eventstore.create_subscription('$_')") for qw(one two);
my $dboid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'postgres'");
my $slots_before = "eventstore_${dboid}_one,eventstore_${dboid}_two,not_a_subscription";

sub slots
{
	return $node->safe_psql('postgres',
		'SELECT string_agg(slot_name, \',\' ORDER BY slot_name) FROM pg_replication_slots');
}

# 1. rollbacks
$node->safe_psql('postgres', 'BEGIN; DROP EXTENSION eventstore; ROLLBACK;');
is(slots(), $slots_before, 'ROLLBACK of DROP EXTENSION keeps the slots');
$node->safe_psql('postgres',
	'BEGIN; SAVEPOINT s; DROP EXTENSION eventstore; ROLLBACK TO s; COMMIT;');
is(slots(), $slots_before, 'so does ROLLBACK TO a savepoint before it');
$node->safe_psql('postgres', q{SELECT eventstore.append_event('drop-1', 'E')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM eventstore.poll('one')}), '1',
	'  and the subscriptions still poll');

# 2. a slot in use
{
	my $recv = IPC::Run::start(
		[
			$node->installed_command('pg_recvlogical'),
			'-d', $node->connstr('postgres'),
			'--slot', "eventstore_${dboid}_two", '--start', '-f', '/dev/null'
		],
		'>', \my $out, '2>', \my $err);
	$node->poll_query_until('postgres',
		"SELECT active FROM pg_replication_slots WHERE slot_name = 'eventstore_${dboid}_two'")
	  or die 'pg_recvlogical did not attach';
	my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP EXTENSION eventstore',
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($stderr, qr/55006: replication slot "eventstore_${dboid}_two" is active for PID/,
		'DROP EXTENSION fails at commit while a subscription slot is in use (55006)');
	is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_extension WHERE extname = 'eventstore'}), '1',
		'  the extension stays');
	$recv->kill_kill;
	$node->poll_query_until('postgres',
		"SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'eventstore_${dboid}_two'")
	  or die 'pg_recvlogical did not detach';
	is(slots(), $slots_before, '  and so does every slot');
}

# 3. the drop
$node->safe_psql('postgres', 'DROP EXTENSION eventstore');
is(slots(), 'not_a_subscription', 'DROP EXTENSION drops the slots of its subscriptions, and only those');

# 4. DROP DATABASE: PostgreSQL drops the database's inactive slots itself.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION eventstore');
$node->safe_psql('other', q{SELECT eventstore.create_subscription('sub')});
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE other');
is($ret, 0, 'DROP DATABASE of a database with a subscription succeeds') or diag($stderr);
is(slots(), 'not_a_subscription', '  leaving no slot');

done_testing();
