# A subscription consumer killed before it acknowledged its batch.
#
# The consumer polls a batch and applies it to a read model with UNIQUE
# (event_id) in one transaction, then acks and commits.  It is killed:
#   1. with pg_terminate_backend after applying the batch, before the ack;
#   2. with pg_terminate_backend after ack() but before COMMIT;
#   3. with SIGKILL of its backend before the ack (the postmaster then
#      terminates every backend and goes through crash recovery);
#   4. with pg_terminate_backend while it is inside poll, decoding with
#      the subscription's slot acquired;
#   5. with SIGKILL while it is inside poll, slot acquired.
# Each time: nothing of the killed transaction is kept, the checkpoint
# did not move, the slot is released, and the next poll redelivers from
# the checkpoint -- the same events in the same order.  At the end the
# read model holds every event exactly once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = eventstore_node('killed', qq(
synchronous_commit = on
restart_after_crash = on
log_min_messages = warning
));

$node->safe_psql(
	'postgres', q(
CREATE EXTENSION eventstore;
CREATE TABLE applied (
	delivered bigserial PRIMARY KEY,
	event_id uuid NOT NULL UNIQUE,
	position bigint NOT NULL);
));
$node->safe_psql('postgres', "SELECT eventstore.create_subscription('k')");
my $slot = $node->safe_psql('postgres',
	"SELECT slot_name FROM eventstore.subscriptions WHERE name = 'k'");

# Three transactions of ten events, over two streams.
for my $t (1 .. 3)
{
	$node->safe_psql(
		'postgres', qq{
SELECT FROM eventstore.append('k-' || ($t % 2),
	(SELECT jsonb_agg(jsonb_build_object('type', 'T', 'data', jsonb_build_object('t', $t, 'i', i)))
	 FROM generate_series(1, 10) i))
});
}

sub session
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->set_query_timer_restart;
	$s->{backend_pid} = $s->query_safe('SELECT pg_backend_pid()');
	return $s;
}

# Open a transaction, poll up to $n events and apply them.  Returns the
# event ids in delivery order.
my $apply_sql = q{
WITH p AS (SELECT * FROM eventstore.poll('k', %d)),
     i AS (INSERT INTO applied (event_id, position)
           SELECT event_id, global_position FROM p
           ORDER BY (p.cursor).lsn, (p.cursor).seq
           RETURNING delivered, event_id)
SELECT event_id FROM i ORDER BY delivered;
};

sub poll_apply
{
	my ($s, $n) = @_;
	my ($out, $err) = $s->query("BEGIN;\n" . sprintf($apply_sql, $n));
	die "poll failed: $s->{stderr}" if $err;
	return split /\n/, $out;
}

sub ack_commit
{
	my ($s) = @_;
	$s->query_safe("SELECT FROM eventstore.ack('k'); COMMIT;");
	return;
}

sub checkpoint
{
	return $node->safe_psql('postgres',
		"SELECT checkpoint FROM eventstore.subscriptions WHERE name = 'k'");
}

# The psql of a killed session exits; reap it.
sub reap
{
	my ($s) = @_;
	$s->{run}->kill_kill;
	return;
}


# What every kill must leave behind: nothing applied from the killed
# transaction, the same checkpoint, a released slot, and a next poll that
# starts with the same events, in the same order.
sub check_redelivery
{
	my ($label, $cp_before, $count_before, $batch, $n) = @_;
	is(checkpoint(), $cp_before, "$label: the checkpoint did not move");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM applied'),
		$count_before, "$label: nothing of the killed transaction was kept");
	ok( $node->poll_query_until(
			'postgres',
			"SELECT NOT active FROM pg_replication_slots WHERE slot_name = '$slot'"),
		"$label: the slot is released");
	my $s = session();
	my @again = poll_apply($s, $n);
	is_deeply(\@again, $batch, "$label: the next poll redelivers the batch from the checkpoint");
	ack_commit($s);
	$s->quit;
	isnt(checkpoint(), $cp_before, "$label: acking the redelivered batch moves the checkpoint");
	return;
}

# 1. pg_terminate_backend in the middle of the batch, before ack.
{
	my $label = 'terminated before ack';
	my ($cp, $count) = (checkpoint(), 0);
	my $s = session();
	my @batch = poll_apply($s, 15);
	is(scalar(@batch), 15, "$label: the consumer holds a batch of 15 events");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($s->{backend_pid})");
	wait_backend_gone($node, $s->{backend_pid});
	reap($s);
	check_redelivery($label, $cp, $count, \@batch, 15);
}

# 2. pg_terminate_backend after ack() but before COMMIT.
{
	my $label = 'terminated between ack and commit';
	my ($cp, $count) = (checkpoint(), 15);
	my $s = session();
	my @batch = poll_apply($s, 10);
	is(scalar(@batch), 10, "$label: the consumer holds a batch of 10 events");
	$s->query_safe("SELECT FROM eventstore.ack('k')");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($s->{backend_pid})");
	wait_backend_gone($node, $s->{backend_pid});
	reap($s);
	check_redelivery($label, $cp, $count, \@batch, 10);
}

# More events: two transactions, the first one half delivered next.
for my $t (4 .. 5)
{
	$node->safe_psql(
		'postgres', qq{
SELECT FROM eventstore.append('k-' || ($t % 2),
	(SELECT jsonb_agg(jsonb_build_object('type', 'T', 'data', jsonb_build_object('t', $t, 'i', i)))
	 FROM generate_series(1, 10) i))
});
}

# Kill a backend with SIGKILL and wait for the crash recovery it causes.
sub sigkill_backend
{
	my ($pid, $offset) = @_;
	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$node->poll_query_until('postgres', 'SELECT true')
	  or die 'server did not come back';
	return;
}

# 3. SIGKILL of the consumer's backend before ack: crash recovery.
{
	my $label = 'SIGKILL before ack';
	my ($cp, $count) = (checkpoint(), 25);
	my $s = session();
	my @batch = poll_apply($s, 12);
	is(scalar(@batch), 12, "$label: the consumer holds a batch of 12 events (across two transactions)");
	sigkill_backend($s->{backend_pid}, -s $node->logfile);
	reap($s);
	check_redelivery($label, $cp, $count, \@batch, 12);
}

# A backlog that takes a while to decode: one transaction of many events.
my $big = 30000;
$node->safe_psql(
	'postgres', qq{
SELECT FROM eventstore.append('bulk-1',
	(SELECT jsonb_agg(jsonb_build_object('type', 'T', 'data', jsonb_build_object('i', i)))
	 FROM generate_series(1, $big) i))
});

# Start a consumer that polls the whole backlog and hit it while it is
# inside poll with the slot acquired: $kill->($pid) must act only if the
# slot is held by $pid.  Retried if the poll was too fast to be caught.
sub kill_inside_poll
{
	my ($label, $kill) = @_;
	my $monitor = session();
	for my $attempt (1 .. 5)
	{
		my $s = session();
		my $pid = $s->{backend_pid};
		my $done = "poll-done-$attempt";
		# Not waiting for the result: the poll runs while we watch it.
		$s->{stdin} .= "BEGIN;\n" . sprintf($apply_sql, $big + 100) . "\\echo $done\n";
		my $caught = 0;
		while (!$caught)
		{
			$s->{run}->pump_nb;
			last if $s->{stdout} =~ /$done/;
			$caught = $monitor->query_safe(
				"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active_pid = $pid"
			);
			$caught = $kill->($pid, $monitor) if $caught;
			usleep(10_000) unless $caught;
		}
		if ($caught)
		{
			$monitor->quit;
			reap($s);
			return 1;
		}
		note "$label: attempt $attempt: the poll ended before it could be caught";
		$s->query_safe('ROLLBACK');
		$s->quit;
	}
	$monitor->quit;
	return 0;
}

# 4. pg_terminate_backend inside poll.
{
	my $label = 'terminated inside poll';
	my ($cp, $count) = (checkpoint(), 37);
	ok( kill_inside_poll(
			$label,
			sub {
				my ($pid, $monitor) = @_;
				# Only while it still holds the slot.
				return $monitor->query_safe(
					"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' "
					  . "AND active_pid = $pid AND pg_terminate_backend($pid)");
			}),
		"$label: the consumer was terminated while holding the slot");
	ok( $node->poll_query_until(
			'postgres',
			"SELECT NOT active FROM pg_replication_slots WHERE slot_name = '$slot'"),
		"$label: the slot is released");
	# Sequential appends: commit order is position order here.
	my @next = split /\n/,
	  $node->safe_psql('postgres',
		"SELECT event_id FROM eventstore.events WHERE global_position > ('$cp'::eventstore.cursor).position "
		  . 'ORDER BY global_position LIMIT 5');
	my $s = session();
	my @again = poll_apply($s, 5);
	$s->query_safe('ROLLBACK');
	$s->quit;
	is_deeply(\@again, \@next, "$label: the next poll delivers from the checkpoint");
	is(checkpoint(), $cp, "$label: the checkpoint did not move");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM applied'),
		$count, "$label: nothing of the killed transaction was kept");
}

# 5. SIGKILL inside poll: crash recovery with the slot acquired.
{
	my $label = 'SIGKILL inside poll';
	my ($cp, $count) = (checkpoint(), 37);
	my $offset = -s $node->logfile;
	ok( kill_inside_poll(
			$label,
			sub {
				my ($pid, $monitor) = @_;
				kill 'KILL', $pid;
				return 1;
			}),
		"$label: the consumer was killed while holding the slot");
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$node->poll_query_until('postgres', 'SELECT true')
	  or die 'server did not come back';
	is(checkpoint(), $cp, "$label: the checkpoint did not move");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM applied'),
		$count, "$label: nothing of the killed transaction was kept");
	ok( $node->poll_query_until(
			'postgres',
			"SELECT NOT active FROM pg_replication_slots WHERE slot_name = '$slot'"),
		"$label: the slot is released after crash recovery");
}

# Drain: every event exactly once.
my $s = session();
for (my $i = 0; $i < 20; $i++)
{
	my @got = poll_apply($s, 10000);
	ack_commit($s);
	last unless @got;
}
$s->quit;
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM eventstore.events e FULL JOIN applied a USING (event_id)
WHERE e.event_id IS NULL OR a.event_id IS NULL OR e.global_position <> a.position
}),
	'0',
	'the read model holds every event exactly once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM applied'),
	50 + $big, 'all ' . (50 + $big) . ' events were applied');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (
	SELECT position, lag(position) OVER (ORDER BY delivered) AS prev FROM applied) x
WHERE prev >= position
}),
	'0',
	'events were applied in commit order');
ok(!$node->log_contains('duplicate key value violates unique constraint'),
	'no unique violation was ever raised');

$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('k')");
$node->stop;
done_testing();
