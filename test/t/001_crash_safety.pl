# Crash safety of appends.
#
# Several psql clients append events (single events, batches, and
# two-stream transactions) to a few shared streams with
# synchronous_commit = on.  A client prints an "ack" line only after the
# server acknowledged the commit.  Mid-load, the server is crashed three
# ways:
#   1. pg_ctl stop -m immediate (no shutdown checkpoint),
#   2. SIGKILL of one appending backend (the postmaster kills every
#      backend and reinitializes: restart_after_crash = on),
#   3. SIGKILL of the postmaster itself.
# After each crash recovery: every acknowledged event is present with the
# id, stream, version and position it was acknowledged with; every
# stream's versions are exactly 1..N; positions are unique and increase
# with the version inside each stream; the indexes pass amcheck; the
# gap-safe horizon is not held back by anything from before the crash;
# and new appends continue each stream at N+1 with positions above every
# old one.
#
# fsync stays off (Cluster.pm's default): these are process crashes, which
# the OS page cache survives, so what is tested is that acknowledged
# appends are WAL-logged and replayed, not the disk.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use Time::HiRes qw(usleep);

my $nclients = 4;
my @streams = map { "crash-$_" } 1 .. 3;
my $tmp = PostgreSQL::Test::Utils::tempdir;

my $node = eventstore_node('crash', qq(
synchronous_commit = on
restart_after_crash = on
log_statement = none
));

$node->safe_psql(
	'postgres', q(
CREATE EXTENSION eventstore;
CREATE EXTENSION amcheck;
-- What clients were told, kept across crashes (committed before each crash).
CREATE TABLE acked (stream text, version bigint, position bigint, event_id uuid);
));

# Deterministic event ids: client, round and statement number are
# readable in the uuid.
sub event_id
{
	my ($round, $client, $stmt, $k) = @_;
	return sprintf('00000000-%04x-4%03x-8000-%012x', $round, $client, $stmt * 10 + $k);
}

# One client's script: statements that each commit on their own, and
# every seventh one a transaction over two streams.  "ack" lines carry
# stream|last version|last position|ids of the events, first to last.
sub client_script
{
	my ($round, $client, $count) = @_;
	my $sql = '';
	for my $i (1 .. $count)
	{
		my $s1 = $streams[ ($client + $i) % @streams ];
		if ($i % 7 == 0)
		{
			my $s2 = $streams[ ($client + $i + 1) % @streams ];
			my $id1 = event_id($round, $client, $i, 0);
			my $id2 = event_id($round, $client, $i, 1);
			$sql .= "BEGIN;\n"
			  . "SELECT stream_version AS v1, global_position AS p1 FROM eventstore.append_event('$s1', 'Pair', event_id => '$id1') \\gset\n"
			  . "SELECT stream_version AS v2, global_position AS p2 FROM eventstore.append_event('$s2', 'Pair', event_id => '$id2') \\gset\n"
			  . "COMMIT;\n"
			  . "\\echo ack|$s1|:v1|:p1|$id1\n"
			  . "\\echo ack|$s2|:v2|:p2|$id2\n";
		}
		elsif ($i % 5 == 0)
		{
			my @ids = map { event_id($round, $client, $i, $_) } 0 .. 2;
			my $events = join(',',
				map { qq({"type": "Batch", "id": "$_", "data": {"client": $client, "i": $i}}) }
				  @ids);
			$sql .= "SELECT stream_version AS v, global_position AS p FROM eventstore.append('$s1', '[$events]') \\gset\n"
			  . "\\echo ack|$s1|:v|:p|"
			  . join(',', @ids) . "\n";
		}
		else
		{
			my $id = event_id($round, $client, $i, 0);
			$sql .= "SELECT stream_version AS v, global_position AS p FROM eventstore.append_event('$s1', 'Single', '{\"client\": $client, \"i\": $i}', event_id => '$id') \\gset\n"
			  . "\\echo ack|$s1|:v|:p|$id\n";
		}
	}
	return $sql;
}

# Start the clients of one round in the background.
sub start_clients
{
	my ($round, $count) = @_;
	my @clients;
	for my $c (1 .. $nclients)
	{
		push @clients,
		  start_psql_script($node, "$tmp/round$round-client$c.sql",
			client_script($round, $c, $count), 'application_name=crashclient');
	}
	return @clients;
}

# Wait for the clients to end and return their acknowledged events as
# [stream, version, position or undef, event id].  Only the last event of
# a batch has its position in the ack.
sub collect_acks
{
	my @clients = @_;
	my @acks;
	for my $client (@clients)
	{
		$client->{h}->finish;
		for my $line (split /\n/, $client->{out})
		{
			next unless $line =~ /^ack\|/;
			my (undef, $stream, $v, $p, $ids) = split /\|/, $line;
			my @ids = split /,/, $ids;
			for my $k (0 .. $#ids)
			{
				push @acks,
				  [ $stream, $v - $#ids + $k, ($k == $#ids ? $p : undef), $ids[$k] ];
			}
		}
	}
	return @acks;
}

# Remember acks in the database.
sub store_acks
{
	my @acks = @_;
	while (my @chunk = splice(@acks, 0, 1000))
	{
		my $values = join(",\n",
			map { "('$_->[0]', $_->[1], " . ($_->[2] // 'NULL') . ", '$_->[3]')" } @chunk);
		$node->safe_psql('postgres', "INSERT INTO acked VALUES $values");
	}
}

sub event_count
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.events');
}

# The invariants that must hold after every recovery.
sub check_store
{
	my ($label) = @_;

	is( $node->safe_psql(
			'postgres', q(
SELECT count(*) FROM acked a
WHERE NOT EXISTS (
	SELECT 1 FROM eventstore.events e
	WHERE e.stream = a.stream AND e.stream_version = a.version
	  AND e.event_id = a.event_id
	  AND (a.position IS NULL OR e.global_position = a.position))
)),
		'0',
		"$label: every acknowledged event is stored where it was acknowledged");

	is( $node->safe_psql(
			'postgres', q(
SELECT count(*) FROM (
	SELECT stream FROM eventstore.events GROUP BY stream
	HAVING min(stream_version) <> 1
	    OR max(stream_version) <> count(*)
	    OR count(DISTINCT stream_version) <> count(*)) bad
)),
		'0',
		"$label: every stream has versions exactly 1..N");

	is( $node->safe_psql(
			'postgres', q(
SELECT count(*) - count(DISTINCT global_position) + count(*) FILTER (WHERE global_position < 1)
FROM eventstore.events
)),
		'0',
		"$label: global positions are unique and positive");

	is( $node->safe_psql(
			'postgres', q(
SELECT count(*) FROM (
	SELECT global_position,
	       lag(global_position) OVER (PARTITION BY stream ORDER BY stream_version) AS prev
	FROM eventstore.events) x
WHERE prev >= global_position
)),
		'0',
		"$label: positions increase with the version inside each stream");

	is( $node->safe_psql(
			'postgres', q(
SELECT count(*) FROM (
	SELECT bt_index_check(c.oid, true)
	FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE i.indrelid = 'eventstore.events'::regclass) x
)),
		$node->safe_psql(
			'postgres',
			q(SELECT count(*) FROM pg_index WHERE indrelid = 'eventstore.events'::regclass)),
		"$label: amcheck finds every index of the events table consistent");
}

# After recovery, no append is in flight: the gap-safe horizon covers
# every stored event (shared memory was rebuilt, no stale registry
# entry holds it back) and the global feed returns them all, in order.
sub check_feed
{
	my ($label) = @_;
	is( $node->safe_psql(
			'postgres', q{
SELECT eventstore.head_position() >= max(global_position) FROM eventstore.events
}),
		't',
		"$label: head_position covers every stored event");
	is( $node->safe_psql(
			'postgres', q{
SELECT (SELECT count(*) FROM eventstore.events)
     = (SELECT count(*) FROM eventstore.read_all(0, 1000000))
}),
		't',
		"$label: read_all returns every stored event");
}

# After recovery, one more event per stream lands at version N+1 with a
# position above every stored one.
sub check_appends_continue
{
	my ($label) = @_;
	my $max_before =
	  $node->safe_psql('postgres', 'SELECT max(global_position) FROM eventstore.events');
	for my $s (@streams)
	{
		my $n = $node->safe_psql('postgres', "SELECT eventstore.stream_version('$s')");
		my $res = $node->safe_psql('postgres',
			"SELECT stream_version || ' ' || (global_position > $max_before) FROM eventstore.append_event('$s', 'AfterCrash')"
		);
		is($res, ($n + 1) . ' true',
			"$label: append to $s continues at version " . ($n + 1) . " above position $max_before");
	}
}

# PIDs of every process of the server (backends and auxiliary processes).
sub server_pids
{
	return split /\n/,
	  $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
}

# One round: load, crash with $crash->(), recover, check.
sub crash_round
{
	my ($round, $label, $crash) = @_;
	my $before = event_count();

	my @clients = start_clients($round, 4000);
	# Crash in the middle of the load, whatever the machine's speed.
	$node->poll_query_until('postgres',
		'SELECT count(*) >= ' . ($before + 300) . ' FROM eventstore.events')
	  or die "appends did not progress";
	$crash->();
	my @acks = collect_acks(@clients);
	ok( (grep { $_->{h}->result != 0 } @clients) > 0,
		"$label: the crash cut off clients in the middle of their appends");
	note "$label: " . scalar(@acks) . " acknowledged events";
	cmp_ok(scalar(@acks), '>', 0, "$label: clients got acknowledgements before the crash");

	$node->poll_query_until('postgres', 'SELECT true')
	  or die "server did not come back";
	store_acks(@acks);
	check_store($label);
	check_feed($label);
	check_appends_continue($label);
}

crash_round(
	1,
	'immediate stop',
	sub {
		$node->stop('immediate');
		$node->start;
	});

crash_round(
	2,
	'SIGKILL of a backend',
	sub {
		my $offset = -s $node->logfile;
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE application_name = 'crashclient' AND state = 'active' LIMIT 1"
		);
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE application_name = 'crashclient' LIMIT 1"
		) if $pid eq '';
		ok($pid ne '', 'found an appending backend to kill');
		kill 'KILL', $pid;
		# The postmaster notices, terminates every backend and reinitializes.
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
		ok(1, 'postmaster went through crash recovery');
	});

crash_round(
	3,
	'SIGKILL of the postmaster',
	sub {
		my @pids = server_pids();
		$node->kill9;
		# Children exit once they notice the postmaster is gone; the data
		# directory can only be reused after that.
		for my $pid (@pids)
		{
			my $waited = 0;
			while (kill(0, $pid) && $waited++ < 10 * $PostgreSQL::Test::Utils::timeout_default)
			{
				usleep(100_000);
			}
		}
		$node->start;
	});

# Nothing was lost across the three crashes, and the stores' final state.
my $total = event_count();
my $acked = $node->safe_psql('postgres', 'SELECT count(*) FROM acked');
note "$total events stored, $acked acknowledged";
cmp_ok($total, '>=', $acked, 'at least every acknowledged event is stored');

$node->stop;
done_testing();
