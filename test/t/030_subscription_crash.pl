# Subscriptions across server crashes.
#
# Writers append all the time (matching and non-matching streams and
# types, two-stream transactions, rolled-back appends and rolled-back
# savepoints).  Two consumers read the subscriptions:
#   eo   exactly-once: in ONE transaction it polls, inserts each event into
#        a read model with UNIQUE (event_id), acks, commits;
#   alo  at-least-once: polls in one transaction (autocommit) and acks the
#        last cursor in a later one.
# The server is crashed four times while they run: SIGKILL of the
# postmaster and pg_ctl stop -m immediate, each once with the eo
# transaction open between poll and ack, and once right after the ack
# committed.  After every restart:
#   - an open eo batch is redelivered first, in the same order;
#   - a committed eo batch is in the read model and never redelivered;
#   - alo's polled but unacknowledged batch is redelivered first.
# At the end the read model holds every matching event exactly once (no
# unique violation was ever raised; nothing missing, nothing extra, per-
# stream order kept), and the union of what alo saw covers every matching
# event and nothing else.
#
# The subscriptions are created while writers run, with from_position 0,
# so the seam between history and live is crossed under load too.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use Time::HiRes qw(usleep);

my $nwriters = 2;
my $batch = 100;
my $tmp = PostgreSQL::Test::Utils::tempdir;

my $node = eventstore_node('subcrash', qq(
synchronous_commit = on
restart_after_crash = on
log_statement = none
log_min_messages = warning
));

$node->safe_psql(
	'postgres', q(
CREATE EXTENSION eventstore;
CREATE TABLE read_model (
	delivered bigserial PRIMARY KEY,
	event_id uuid NOT NULL UNIQUE,
	position bigint NOT NULL,
	stream text NOT NULL,
	version bigint NOT NULL,
	event_type text NOT NULL);
CREATE TABLE alo_seen (event_id uuid PRIMARY KEY, n integer NOT NULL);
SELECT FROM eventstore.append('order-0', '[{"type": "Placed"}, {"type": "Noise"}, {"type": "Paid"}]');
SELECT FROM eventstore.append_event('audit-0', 'Placed');
));

# One writer's script: autocommit appends, every seventh statement a
# transaction over two streams, every eleventh a rolled-back append,
# every thirteenth a rolled-back savepoint.  Streams "order-*" with types
# Placed and Paid match eo's filter; "order-*" matches alo's.
sub writer_script
{
	my ($w, $count) = @_;
	my $sql = '';
	for my $i (1 .. $count)
	{
		my $order = "order-$w-" . ($i % 5);
		if ($i % 13 == 0)
		{
			$sql .= "BEGIN;\n"
			  . "SELECT FROM eventstore.append_event('$order', 'Placed', '{\"keep\": $i}');\n"
			  . "SAVEPOINT s;\n"
			  . "SELECT FROM eventstore.append_event('$order', 'Paid', '{\"rolledback\": $i}');\n"
			  . "ROLLBACK TO SAVEPOINT s;\n"
			  . "SELECT FROM eventstore.append_event('audit-$w', 'Placed');\n"
			  . "COMMIT;\n";
		}
		elsif ($i % 11 == 0)
		{
			$sql .= "BEGIN;\n"
			  . "SELECT FROM eventstore.append_event('$order', 'Placed', '{\"rolledback\": $i}');\n"
			  . "ROLLBACK;\n";
		}
		elsif ($i % 7 == 0)
		{
			$sql .= "BEGIN;\n"
			  . "SELECT FROM eventstore.append('$order', '[{\"type\": \"Paid\"}, {\"type\": \"Noise\"}]');\n"
			  . "SELECT FROM eventstore.append_event('audit-$w', 'Placed');\n"
			  . "COMMIT;\n";
		}
		elsif ($i % 4 == 0)
		{
			$sql .= "SELECT FROM eventstore.append_event('audit-$w', 'Placed', '{\"i\": $i}');\n";
		}
		elsif ($i % 3 == 0)
		{
			$sql .= "SELECT FROM eventstore.append_event('$order', 'Noise', '{\"i\": $i}');\n";
		}
		else
		{
			$sql .= "SELECT FROM eventstore.append('$order', "
			  . "'[{\"type\": \"Placed\", \"data\": {\"w\": $w, \"i\": $i}}, {\"type\": \"Paid\"}]');\n";
		}
	}
	return $sql;
}

# Start the writers of one round in the background.
sub start_writers
{
	my ($round, $count) = @_;
	my @writers;
	for my $w (1 .. $nwriters)
	{
		push @writers,
		  start_psql_script($node, "$tmp/round$round-writer$w.sql", writer_script($w, $count));
	}
	return @writers;
}

sub writers_running
{
	my $running = 0;
	for my $w (@_)
	{
		$w->{h}->pump_nb if $w->{h}->pumpable;
		$running++ if $w->{h}->pumpable;
	}
	return $running;
}

sub finish_writers
{
	$_->{h}->finish for @_;
	return;
}

# Everything a consumer session wrote to stderr that is not about the
# server going away under it.
my @consumer_errors;

# A consumer session: a background psql that survives SQL errors, so
# that they can be seen and reported instead of ending the session.
sub consumer_session
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->set_query_timer_restart;
	$s->{backend_pid} = $s->query_safe('SELECT pg_backend_pid()');
	return $s;
}

sub run_query
{
	my ($s, $who, $sql) = @_;
	my ($out, $err) = $s->query($sql);
	if ($err)
	{
		push @consumer_errors, "$who: $s->{stderr}";
		$s->{stderr} = '';
	}
	return $out;
}

# eo, first half: open a transaction, poll a batch and apply it to the
# read model.  Returns the applied event ids in delivery order.
sub eo_poll
{
	my ($s) = @_;
	my $out = run_query(
		$s, 'eo', qq{
BEGIN;
WITH p AS (SELECT * FROM eventstore.poll('eo', $batch)),
     i AS (INSERT INTO read_model (event_id, position, stream, version, event_type)
           SELECT event_id, global_position, stream, stream_version, event_type FROM p
           ORDER BY (p.cursor).lsn, (p.cursor).seq
           RETURNING delivered, event_id)
SELECT event_id FROM i ORDER BY delivered;
});
	return split /\n/, $out;
}

# eo, second half: ack what this transaction polled, commit.
sub eo_ack
{
	my ($s) = @_;
	run_query($s, 'eo', "SELECT FROM eventstore.ack('eo'); COMMIT;");
	return;
}

# alo, first half: poll (its own transaction).  Returns the event ids and
# the cursor of the last one.
my %alo_seen;

sub alo_poll
{
	my ($s) = @_;
	my $out = run_query($s, 'alo',
		"SELECT event_id, cursor FROM eventstore.poll('alo', $batch)");
	my (@ids, $cursor);
	for my $line (split /\n/, $out)
	{
		my ($id, $c) = split /\|/, $line;
		push @ids, $id;
		$cursor = $c;
		$alo_seen{$id}++;
	}
	return (\@ids, $cursor);
}

# alo, second half, in a later transaction: ack up to the cursor.
sub alo_ack
{
	my ($s, $cursor) = @_;
	return unless defined $cursor;
	run_query($s, 'alo', "SELECT FROM eventstore.ack('alo', '$cursor'::eventstore.cursor)");
	return;
}

sub read_model_count
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM read_model');
}

# Crash the server and start it again.
sub crash
{
	my ($how) = @_;
	if ($how eq 'kill9')
	{
		my @pids = split /\n/,
		  $node->safe_psql('postgres',
			'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
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
	}
	else
	{
		$node->stop('immediate');
	}
	$node->start;
	return;
}

# Sessions die with the server; a crash makes them print connection
# errors, which are expected and not counted.
sub drop_session
{
	my ($s) = @_;
	$s->{run}->kill_kill;
	return;
}

my $round = 0;

# One round: writers run, both consumers work in steps, then the server is
# crashed ($how: kill9 or immediate) either with the eo transaction open
# between poll and ack ($when = 'open') or right after the ack committed
# ($when = 'acked').  Then both consumers continue and the redelivery
# rules are checked.
sub crash_round
{
	my ($how, $when, $setup) = @_;
	my $label = "$how, " . ($when eq 'open' ? 'between poll and ack' : 'right after ack');
	$round++;

	my @writers = start_writers($round, 3000);
	$setup->() if $setup;

	my $eo = consumer_session();
	my $alo = consumer_session();
	my $before = read_model_count();

	# Work until eo holds a non-empty batch, and has applied something in
	# this round already.
	my @batch;
	for (my $steps = 0;; $steps++)
	{
		die "$label: eo made no progress" if $steps > 2000;
		@batch = eo_poll($eo);
		last if @batch && $steps >= 5 && read_model_count() > $before;
		eo_ack($eo);
		my ($ids, $cursor) = alo_poll($alo);
		alo_ack($alo, $cursor);
	}
	eo_ack($eo) if $when eq 'acked';
	is( $node->safe_psql(
			'postgres',
			"SELECT state FROM pg_stat_activity WHERE pid = $eo->{backend_pid}"),
		$when eq 'open' ? 'idle in transaction' : 'idle',
		"$label: eo's transaction is " . ($when eq 'open' ? 'open' : 'committed') . ' at the crash');
	# alo polled, and crashes before it could ack.
	my ($alo_pending) = alo_poll($alo);

	crash($how);
	finish_writers(@writers);
	drop_session($_) for $eo, $alo;

	my $in_model = $node->safe_psql('postgres',
		'SELECT count(*) FROM read_model WHERE event_id IN ('
		  . join(',', map { "'$_'" } @batch) . ')');
	$eo = consumer_session();
	my @again = eo_poll($eo);
	if ($when eq 'open')
	{
		is($in_model, 0, "$label: the open batch was rolled back");
		is_deeply([ @again[ 0 .. $#batch ] ],
			\@batch, "$label: eo's next poll redelivers the open batch first, in order");
	}
	else
	{
		is($in_model, scalar(@batch), "$label: the acknowledged batch survived the crash");
		my %b = map { $_ => 1 } @batch;
		is(scalar(grep { $b{$_} } @again), 0,
			"$label: eo's next poll does not redeliver the acknowledged batch");
	}
	eo_ack($eo);

	$alo = consumer_session();
	my ($alo_again, $cursor) = alo_poll($alo);
	is_deeply([ @{$alo_again}[ 0 .. $#{$alo_pending} ] ],
		$alo_pending, "$label: alo's next poll redelivers its unacknowledged batch first");
	alo_ack($alo, $cursor);
	$eo->quit;
	$alo->quit;
	return;
}

crash_round(
	'kill9', 'open',
	sub {
		# Subscribe under load, with history: the seam is crossed while
		# writers commit.
		$node->poll_query_until('postgres',
			'SELECT count(*) >= 200 FROM eventstore.events')
		  or die 'writers did not start';
		$node->safe_psql('postgres',
			"SELECT eventstore.create_subscription('eo', stream_prefix => 'order-', "
			  . "event_types => '{Placed,Paid}', from_position => 0)");
		$node->safe_psql('postgres',
			"SELECT eventstore.create_subscription('alo', stream_prefix => 'order-', from_position => 0)"
		);
	});
crash_round('kill9', 'acked');
crash_round('immediate', 'open');
crash_round('immediate', 'acked');

# Last round: writers run to completion while the consumers go on, then
# both drain the subscriptions.
$round++;
my @writers = start_writers($round, 300);
my $eo = consumer_session();
my $alo = consumer_session();
my $writing = 1;
my $expected;
for (my $steps = 0; $steps < 5000; $steps++)
{
	my @got = eo_poll($eo);
	eo_ack($eo);
	my ($ids, $cursor) = alo_poll($alo);
	alo_ack($alo, $cursor);
	if ($writing && !writers_running(@writers))
	{
		finish_writers(@writers);
		$writing = 0;
		$expected = $node->safe_psql('postgres',
			"SELECT count(*) FROM eventstore.events WHERE left(stream, 6) = 'order-'");
	}
	last
	  if !$writing
	  && !@got
	  && !@$ids
	  && $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM read_model") == $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM eventstore.events WHERE left(stream, 6) = 'order-' AND event_type IN ('Placed', 'Paid')"
		  )
	  && keys(%alo_seen) >= $expected;
}
ok(!$writing, 'the last writers finished');
is(join(',', map { $_->{h}->full_results } @writers),
	join(',', ('0') x $nwriters), 'the last writers had no error')
  or diag join("\n", map { $_->{err} } @writers);

# Nothing more to come.
my @rest = eo_poll($eo);
is(scalar(@rest), 0, 'eo is drained');
eo_ack($eo);
$eo->quit;
$alo->quit;

is(join("\n", @consumer_errors), '', 'the consumers never got an error (no unique violation)');
ok(!$node->log_contains('duplicate key value violates unique constraint'),
	'the server never raised a unique violation');

note 'eo applied ' . read_model_count() . " events; alo saw $expected events "
  . (eval { my $n = 0; $n += $_ for values %alo_seen; $n }) . ' times';

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (SELECT * FROM eventstore.events
                      WHERE left(stream, 6) = 'order-' AND event_type IN ('Placed', 'Paid')) e
FULL JOIN read_model r USING (event_id)
WHERE e.event_id IS NULL OR r.event_id IS NULL
   OR (e.global_position, e.stream, e.stream_version, e.event_type)
      IS DISTINCT FROM (r.position, r.stream, r.version, r.event_type)
}),
	'0',
	'exactly-once: the read model holds every matching event once, and nothing else');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (
	SELECT version, lag(version) OVER (PARTITION BY stream ORDER BY delivered) AS prev
	FROM read_model) x
WHERE prev >= version
}),
	'0',
	'exactly-once: each stream was applied in version order');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM read_model'),
	'>', 1000, 'the read model is not trivially small');

$node->safe_psql('postgres',
	"COPY alo_seen FROM stdin;\n"
	  . join('', map { "$_\t$alo_seen{$_}\n" } keys %alo_seen)
	  . "\\.\nANALYZE alo_seen, read_model, eventstore.events;");
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM eventstore.events e WHERE left(stream, 6) = 'order-'
   AND NOT EXISTS (SELECT FROM alo_seen s WHERE s.event_id = e.event_id)
}),
	'0',
	'at-least-once: alo saw every matching event');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM alo_seen s
WHERE NOT EXISTS (SELECT FROM eventstore.events e
                  WHERE e.event_id = s.event_id AND left(e.stream, 6) = 'order-')
}),
	'0',
	'at-least-once: alo saw nothing else (no rolled-back or filtered-out event)');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM alo_seen WHERE n > 1'),
	'>', 0, 'at-least-once: the crashes made alo see some events twice');

$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('eo')");
$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('alo')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'dropping the subscriptions dropped their slots');

$node->stop;
done_testing();
