# A subscription's replication slot follows its transaction (src/slot.c).
#
#   1. Slots made persistent at commit survive a clean restart and an
#      immediate stop: two subscriptions created by one DO block that
#      commits in between, two slots created by one statement, and a
#      subscription created right before the stop.  The subscriptions
#      deliver what is appended after the restart.
#   2. A slot created by a transaction that has not committed is
#      temporary: it is gone after SIGKILL of its backend (crash restart)
#      and after SIGKILL of the postmaster, although its state file was on
#      disk, and it is gone when its backend is terminated (FATAL).  No
#      subscription row is left either, and the name can be created again.
#   3. An error at commit after a slot was already made persistent (here
#      a queued drop of a slot another session holds) aborts the
#      transaction, and the persisted slot is dropped again.
#   4. drop_subscription of a slot a pg_recvlogical is attached to fails
#      at commit (55006): the subscription and its slot stay and poll
#      works once pg_recvlogical is gone; one statement dropping another
#      subscription first and then that one drops neither.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = eventstore_node('slotxact', qq(
synchronous_commit = on
restart_after_crash = on
log_min_messages = warning
));
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
my $dboid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");

sub slot_of { return "eventstore_${dboid}_$_[0]"; }

# "name temporary" of the slots whose name matches a LIKE pattern.
sub slots
{
	my ($like) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(slot_name || ' ' || temporary, ',' ORDER BY slot_name) "
		  . "FROM pg_replication_slots WHERE slot_name LIKE '$like'");
}

sub subscriptions
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(name || ' ' || wal_status, ',' ORDER BY name) FROM eventstore.subscriptions");
}

# Append one event and return what each subscription delivers (polled and
# acknowledged in one transaction).
sub poll_streams
{
	my ($stream, @subs) = @_;
	$node->safe_psql('postgres', "SELECT FROM eventstore.append_event('$stream', 'E')");
	return join ',', map {
		my ($delivered) = split /\n/,
		  $node->safe_psql('postgres',
			"BEGIN; SELECT string_agg(stream, ' ') FROM eventstore.poll('$_'); "
			  . "SELECT 'acked' FROM eventstore.ack('$_'); COMMIT;");
		$delivered
	} @subs;
}


# 1. Persistent slots survive restarts.
$node->safe_psql(
	'postgres', q{
DO $$BEGIN
    PERFORM eventstore.create_subscription('one');
    COMMIT;
    PERFORM eventstore.create_subscription('two');
END$$;
SELECT count(eventstore_internal.create_slot(n)) FROM (VALUES ('plain_a'), ('plain_b')) AS v(n);
});
is(subscriptions(), 'one reserved,two reserved', 'a DO block that commits in between created two subscriptions');
is(slots('eventstore%'), slot_of('one') . ' false,' . slot_of('two') . ' false', '  with persistent slots');
is(slots('plain%'), 'plain_a false,plain_b false', 'one statement created two persistent slots');

$node->restart;
is(subscriptions(), 'one reserved,two reserved', 'after a restart both subscriptions have their slots');
is(slots('plain%'), 'plain_a false,plain_b false', '  and both plain slots are there');
is(poll_streams('after-1', 'one', 'two'), 'after-1,after-1', '  and the subscriptions deliver');

$node->safe_psql('postgres', "SELECT eventstore.create_subscription('three')");
$node->stop('immediate');
$node->start;
is(subscriptions(), 'one reserved,three reserved,two reserved',
	'a subscription created right before an immediate stop has its slot after it');
is(poll_streams('after-2', 'one', 'three'), 'after-2,after-2', '  and delivers');
$node->safe_psql('postgres',
	"SELECT pg_drop_replication_slot(n) FROM (VALUES ('plain_a'), ('plain_b')) AS v(n)");

# 2. A slot whose transaction has not committed: a background session
# creates the subscription in a DO block and then sleeps.
sub start_pending
{
	my ($name) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->{backend_pid} = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_until(qr/creating/,
		"\\echo creating\nDO \$\$BEGIN PERFORM eventstore.create_subscription('$name'); PERFORM pg_sleep(600); END\$\$;\n"
	);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_replication_slots WHERE slot_name = '" . slot_of($name) . "'")
	  or die "the slot of $name did not appear";
	return $s;
}

# After the session is gone: no slot, no row, no directory; the name
# can be created again.
sub check_pending_gone
{
	my ($label, $name) = @_;
	is(slots(slot_of($name)), '', "$label: the uncommitted slot is gone");
	ok(!-e $node->data_dir . '/pg_replslot/' . slot_of($name), "$label: and so is its directory");
	is($node->safe_psql('postgres', "SELECT count(*) FROM eventstore.subscription WHERE name = '$name'"),
		'0', "$label: no subscription row was committed");
	$node->safe_psql('postgres', "SELECT eventstore.create_subscription('$name')");
	is(slots(slot_of($name)), slot_of($name) . ' false', "$label: the name can be created again");
	$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('$name')");
	return;
}

{
	my $label = 'SIGKILL of the creating backend';
	my $s = start_pending('pending_a');
	is(slots(slot_of('pending_a')), slot_of('pending_a') . ' true',
		"$label: before the commit the slot is temporary");
	$node->safe_psql('postgres', 'CHECKPOINT');
	ok(-e $node->data_dir . '/pg_replslot/' . slot_of('pending_a') . '/state',
		"$label: its state file is on disk");
	my $offset = -s $node->logfile;
	kill 'KILL', $s->{backend_pid};
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
	$s->{run}->kill_kill;
	check_pending_gone($label, 'pending_a');
}

{
	my $label = 'SIGKILL of the postmaster';
	my $s = start_pending('pending_b');
	$node->safe_psql('postgres', 'CHECKPOINT');
	ok(-e $node->data_dir . '/pg_replslot/' . slot_of('pending_b') . '/state',
		"$label: the uncommitted slot's state file is on disk");
	my @pids = split /\n/,
	  $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
	$node->kill9;
	for my $pid (@pids)
	{
		my $waited = 0;
		while (kill(0, $pid) && $waited++ < 10 * $PostgreSQL::Test::Utils::timeout_default)
		{
			usleep(100_000);
		}
	}
	$s->{run}->kill_kill;
	$node->start;
	check_pending_gone($label, 'pending_b');
}

{
	my $label = 'pg_terminate_backend of the creating backend';
	my $s = start_pending('pending_c');
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($s->{backend_pid})");
	wait_backend_gone($node, $s->{backend_pid});
	$s->{run}->kill_kill;
	check_pending_gone($label, 'pending_c');
}

# 3. An error at commit after a created slot was made persistent.
{
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("SELECT FROM pg_create_logical_replication_slot('held', 'eventstore', true)");
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SELECT eventstore_internal.create_slot('made_then_undone'), eventstore_internal.drop_slot_at_commit('held')");
	like($stderr, qr/replication slot "held" is active for PID/,
		'a queued drop of a slot another session holds fails at commit');
	is(slots('made_then_undone'), '', '  before anything is done: the slot the transaction created is gone too');
	is(slots('held'), 'held true', '  the held slot is untouched');
	$holder->quit;
}

# 4. drop_subscription while pg_recvlogical is attached to the slot.
{
	my $recv = IPC::Run::start(
		[
			$node->installed_command('pg_recvlogical'),
			'-d', $node->connstr('postgres'),
			'--slot', slot_of('one'), '--start', '-f', '/dev/null'
		],
		'>', \my $out, '2>', \my $err);
	$node->poll_query_until('postgres',
		"SELECT active FROM pg_replication_slots WHERE slot_name = '" . slot_of('one') . "'")
	  or die 'pg_recvlogical did not attach';
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SELECT eventstore.drop_subscription('one')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($stderr, qr/55006: replication slot "\Q${\slot_of('one')}\E" is active for PID/,
		'drop_subscription of a slot in use fails at commit with 55006');
	is(subscriptions(), 'one reserved,three reserved,two reserved', '  the subscription stays with its slot');
	($ret, $stdout, $stderr) = $node->psql('postgres',
		"SELECT count(eventstore.drop_subscription(n)) FROM (VALUES ('two'), ('one')) AS v(n)",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($stderr, qr/55006: replication slot "\Q${\slot_of('one')}\E" is active for PID/,
		'a statement dropping two subscriptions, the second slot in use, fails with 55006');
	is(subscriptions(), 'one reserved,three reserved,two reserved',
		'  and drops neither slot: the check comes before the first drop');
	$recv->kill_kill;
	$node->poll_query_until('postgres',
		"SELECT NOT active FROM pg_replication_slots WHERE slot_name = '" . slot_of('one') . "'")
	  or die 'pg_recvlogical did not detach';
	is(poll_streams('after-3', 'one'), 'after-3', '  and delivers once pg_recvlogical is gone');
}

$node->safe_psql('postgres',
	"SELECT count(eventstore.drop_subscription(n)) FROM (VALUES ('one'), ('two'), ('three')) AS v(n)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'), '0',
	'one statement dropped three subscriptions and every slot');

$node->stop;
done_testing();
