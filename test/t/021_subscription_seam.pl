# Subscriptions under write load: the seam between history and live, and
# exactly-once delivery to a consumer that polls, applies and acks in one
# transaction.
#
# Four writers append from 1 s before the first subscription is created
# until 2 s after the last: single events and batches of 1-3 to 20 streams
# seam-1..seam-20 (types SeamA/SeamB), transactions appending to two
# streams, events of other-* streams, and transactions without events.
# While they run, four subscriptions are created:
#   sub_all0  from_position 0, no filter
#   sub_n     from_position n = head_position() at that moment
#   sub_null  from_position NULL
#   sub_f0    from_position 0, stream_prefix seam-1, event_types {SeamB}
# and each gets a consumer (a procedure looping poll + INSERT into its
# read model + ack(name) + COMMIT, each with its own max_count) that runs
# from its creation until the writers have stopped and it has drained.
#
# Then, per subscription: every matching committed event was applied
# exactly once (compared with eventstore.events), with the stored
# stream/version/position/type; per stream the versions arrive in
# increasing order; cursors increase strictly in delivery order (history
# first, then live); sub_all0's history is exactly the events up to its
# seam and its live part exactly those above it.  sub_null got no event
# that was committed before create_subscription started, and every event
# that was not yet committed when it returned.
#
# Before the load, the seam is forced open deterministically: transaction
# W appends (allocating positions) after the new slot reached its full
# snapshot but before it became consistent, and commits after
# create_subscription returned.  So W's events are at or below the seam
# and the slot decodes them too: poll must deliver them once, from
# history, only after W committed, and the live event L (committed
# before W) only after them.
#
# A checkpoint every 100 ms logs xl_running_xacts, which lets slot creation
# under load reach a consistent point without waiting for the 15 s
# bgwriter interval.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;
use Time::HiRes qw(usleep time);


my $node = eventstore_node('seam', qq(
synchronous_commit = on
log_statement = none
log_min_duration_statement = -1
max_connections = 40
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE noise (x int);
CREATE TABLE control (stop boolean NOT NULL, stop_writers boolean NOT NULL);
INSERT INTO control VALUES (false, false);

-- A writer: single events and batches of 1-3 to seam-1..20 (types SeamA,
-- SeamB), two streams in one transaction (lower-numbered first: no
-- deadlocks), events of other-* streams, transactions without events.
CREATE PROCEDURE write_loop() LANGUAGE plpgsql AS $$
DECLARE
	r float8;
	n int;
	t text;
BEGIN
	LOOP
		EXIT WHEN (SELECT stop_writers FROM control);
		r := random();
		IF r < 0.57 THEN
			n := 1 + floor(random() * 3)::int;
			t := CASE WHEN random() < 0.5 THEN 'SeamA' ELSE 'SeamB' END;
			PERFORM eventstore.append('seam-' || (1 + floor(random() * 20)::int),
				(SELECT jsonb_agg(jsonb_build_object('type', t, 'data', jsonb_build_object('g', g)))
				   FROM generate_series(1, n) g));
		ELSIF r < 0.71 THEN
			PERFORM eventstore.append_event('seam-' || (1 + floor(random() * 10)::int), 'SeamA');
			PERFORM eventstore.append_event('seam-' || (11 + floor(random() * 10)::int), 'SeamB');
		ELSIF r < 0.86 THEN
			PERFORM eventstore.append_event('other-' || (1 + floor(random() * 5)::int), 'SeamB');
		ELSE
			INSERT INTO noise VALUES (1);
		END IF;
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;

-- CHECKPOINT logs the running transactions, so slot creation under load
-- reaches a consistent point without waiting for the bgwriter's 15 s.
CREATE PROCEDURE checkpoint_loop() LANGUAGE plpgsql AS $$
BEGIN
	LOOP
		EXIT WHEN (SELECT stop_writers FROM control);
		CHECKPOINT;
		COMMIT;
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;

-- The read models: what each consumer applied, in the order it applied it.
CREATE TABLE applied (
	sub text, ord bigserial, position bigint, stream text, version bigint,
	event_id uuid, event_type text, lsn pg_lsn, seq bigint);

-- Which events were visible around a create_subscription call.
CREATE TABLE boundary (sub text, phase text, event_id uuid);

-- One consumer step: poll, apply, ack -- one transaction.
CREATE FUNCTION consume(p_sub text, p_n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	n int;
BEGIN
	INSERT INTO applied (sub, position, stream, version, event_id, event_type, lsn, seq)
	SELECT p_sub, p.global_position, p.stream, p.stream_version, p.event_id, p.event_type,
	       (p.cursor).lsn, (p.cursor).seq
	  FROM eventstore.poll(p_sub, p_n) AS p;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM eventstore.ack(p_sub);
	RETURN n;
END $$;

-- The consumer: steps until told to stop and 30 polls in a row were empty.
CREATE PROCEDURE consume_loop(p_sub text, p_n int) LANGUAGE plpgsql AS $$
DECLARE
	n int;
	idle int := 0;
BEGIN
	LOOP
		n := consume(p_sub, p_n);
		COMMIT;
		IF n > 0 THEN
			idle := 0;
		ELSE
			idle := idle + 1;
			EXIT WHEN idle >= 30 AND (SELECT stop FROM control);
			PERFORM pg_sleep(0.02);
		END IF;
	END LOOP;
END $$;
});

# Background programs.
sub start_bg
{
	my ($label, @cmd) = @_;
	my %h = (label => $label, out => '', err => '');
	$h{h} = IPC::Run::start(\@cmd, '>', \$h{out}, '2>', \$h{err},
		IPC::Run::timeout(120));
	return \%h;
}

sub finish_bg
{
	my $b = shift;
	$b->{h}->finish;
	$b->{rc} = $? >> 8;
	note "$b->{label}: rc $b->{rc}\nstdout:\n$b->{out}\nstderr:\n$b->{err}";
	return $b;
}
my @conn = ('-h', $node->host, '-p', $node->port);

# 1. The forced seam.  X1 and X2 hold transaction ids across the phases of
# slot creation; CHECKPOINT logs the running transactions it waits on.
$node->safe_psql('postgres',
	q{SELECT eventstore.append('forced-0', '[{"type": "H"}, {"type": "H"}]')});
my %x = map { $_ => $node->background_psql('postgres') } qw(X1 X2 W);
$x{X1}->query_safe('BEGIN; SELECT pg_current_xact_id();');
my $log_offset = -s $node->logfile;
my $creator = start_bg('create sub_forced', 'psql', '-X', '-v', 'ON_ERROR_STOP=1', @conn,
	'-d', 'postgres', '-c', q{SELECT eventstore.create_subscription('sub_forced', from_position => 0)});
$log_offset = $node->wait_for_log(qr/logical decoding found initial starting point/, $log_offset);
$x{X2}->query_safe('BEGIN; SELECT pg_current_xact_id();');
$x{X1}->query_safe('COMMIT');
$node->safe_psql('postgres', 'CHECKPOINT');
$log_offset = $node->wait_for_log(qr/logical decoding found initial consistent point/, $log_offset);
$x{W}->query_safe('BEGIN');
my $w_last = $x{W}->query_safe(
	q{SELECT global_position FROM eventstore.append('forced-w', '[{"type": "W1"}, {"type": "W2"}, {"type": "W3"}]')});
$x{X2}->query_safe('COMMIT');
$node->safe_psql('postgres', 'CHECKPOINT');
finish_bg($creator);
is($creator->{rc}, 0, 'forced seam: create_subscription returned while W is open');
my $seam = $node->safe_psql('postgres',
	q{SELECT seam_position FROM eventstore.subscription WHERE name = 'sub_forced'});
cmp_ok($w_last, '<=', $seam, "forced seam: W's events (up to $w_last) are at or below the seam ($seam)");
my $l_pos = $node->safe_psql('postgres',
	q{SELECT global_position FROM eventstore.append_event('forced-l', 'L')});

is( $node->safe_psql('postgres', q{SELECT string_agg(event_type, ',' ORDER BY global_position)
  FROM eventstore.poll('sub_forced') WHERE stream LIKE 'forced-%'}),
	'H,H', 'forced seam: while W is open, poll delivers the history below it and nothing else');
$x{W}->query_safe('COMMIT');
$_->quit for values %x;
my $slot = $node->safe_psql('postgres',
	q{SELECT slot_name FROM eventstore.subscription WHERE name = 'sub_forced'});
is( $node->safe_psql('postgres', qq{SELECT string_agg(data::jsonb ->> 'type', ',')
  FROM pg_logical_slot_peek_changes('$slot', NULL, NULL) WHERE data::jsonb ->> 'stream' LIKE 'forced-%'}),
	'L,W1,W2,W3', 'forced seam: the slot itself decodes L and W (W below the seam)');
my @got;
for (1 .. 10)
{
	my $batch = $node->safe_psql('postgres', q{
BEGIN;
SELECT string_agg(event_type || '@' || CASE WHEN (cursor).lsn = '0/0' THEN 'history' ELSE 'live' END, ','
                  ORDER BY (cursor).lsn, (cursor).seq)
  FROM eventstore.poll('sub_forced', 2);
SELECT eventstore.ack('sub_forced');
COMMIT;});
	$batch =~ s/\n+$//;
	push @got, grep { $_ ne '' } split /,/, $batch;
}
is(join(',', @got), 'H@history,H@history,W1@history,W2@history,W3@history,L@live',
	'forced seam: poll + ack deliver H H W1 W2 W3 from history, then L live, each once');
$node->safe_psql('postgres', q{SELECT eventstore.drop_subscription('sub_forced')});

# 2. Under load: 4 writers and a checkpointer run until told to stop, which
# happens 2 s after the last subscription was created, however long the
# creations took.
my @writers = map {
	start_bg("writer $_", 'psql', '-X', '-v', 'ON_ERROR_STOP=1', @conn, '-d', 'postgres',
		'-c', 'CALL write_loop()')
} 1 .. 4;
my $kicker = start_bg('checkpoints', 'psql', '-X', '-v', 'ON_ERROR_STOP=1', @conn,
	'-d', 'postgres', '-c', 'CALL checkpoint_loop()');

my %consumer;
sub start_consumer
{
	my ($sub, $n) = @_;
	$consumer{$sub} = start_bg("consumer $sub", 'psql', '-X', '-v', 'ON_ERROR_STOP=1',
		@conn, '-d', 'postgres', '-c', "CALL consume_loop('$sub', $n)");
}

my $t0 = time;
sleep 1;
$node->safe_psql('postgres',
	q{SELECT eventstore.create_subscription('sub_all0', from_position => 0)});
$node->safe_psql('postgres',
	q{INSERT INTO boundary SELECT 'sub_all0', 'after', event_id FROM eventstore.events});
start_consumer('sub_all0', 25);
note sprintf('sub_all0 created at %.1f s', time - $t0);

my $n = $node->safe_psql('postgres', 'SELECT eventstore.head_position()');
$node->safe_psql('postgres',
	qq{SELECT eventstore.create_subscription('sub_n', from_position => $n)});
start_consumer('sub_n', 50);
note sprintf('sub_n (from %d) created at %.1f s', $n, time - $t0);

$node->safe_psql('postgres',
	q{INSERT INTO boundary SELECT 'sub_null', 'before', event_id FROM eventstore.events});
$node->safe_psql('postgres', q{SELECT eventstore.create_subscription('sub_null')});
$node->safe_psql('postgres',
	q{INSERT INTO boundary SELECT 'sub_null', 'after', event_id FROM eventstore.events});
start_consumer('sub_null', 13);
note sprintf('sub_null created at %.1f s', time - $t0);

$node->safe_psql('postgres',
	q{SELECT eventstore.create_subscription('sub_f0', stream_prefix => 'seam-1', event_types => '{SeamB}', from_position => 0)});
start_consumer('sub_f0', 3);
note sprintf('sub_f0 created at %.1f s', time - $t0);

sleep 2;
$node->safe_psql('postgres', 'UPDATE control SET stop_writers = true');
finish_bg($_) for @writers, $kicker;
note sprintf('writers done at %.1f s', time - $t0);
is(join(',', map { $_->{rc} } @writers), '0,0,0,0', 'every writer ran without error');
is($kicker->{rc}, 0, 'the checkpointer ran without error');

# What each subscription must deliver.
my %expected = (
	sub_all0 => 'TRUE',
	sub_n => "global_position > $n",
	sub_f0 => q{stream LIKE 'seam-1%' AND event_type = 'SeamB'});
my $null_min = q{event_id NOT IN (SELECT event_id FROM boundary WHERE sub = 'sub_null' AND phase = 'after')};

# Wait (at most 60 s) until every consumer has at least what it must have.
my $caught_up = 0;
for (1 .. 600)
{
	my $q = join ' AND ', (map {
		"(SELECT count(*) FROM applied WHERE sub = '$_') >= (SELECT count(*) FROM eventstore.events WHERE $expected{$_})"
	} sort keys %expected),
	  "(SELECT count(*) FROM applied WHERE sub = 'sub_null') >= (SELECT count(*) FROM eventstore.events WHERE $null_min)";
	if ($node->safe_psql('postgres', "SELECT $q") eq 't')
	{
		$caught_up = 1;
		last;
	}
	usleep(100_000);
}
ok($caught_up, 'every consumer caught up with the writers');
note sprintf('consumers caught up at %.1f s', time - $t0);
$node->safe_psql('postgres', 'UPDATE control SET stop = true');
for my $sub (sort keys %consumer)
{
	finish_bg($consumer{$sub});
	is($consumer{$sub}{rc}, 0, "$sub: its consumer ran without error");
}
note sprintf('consumers done at %.1f s', time - $t0);

note $node->safe_psql(
	'postgres', q{
SELECT string_agg(format('%s: %s applied (%s from history, %s live), seam %s, checkpoint %s, %s events up to the seam were committed after create_subscription returned',
       s.name, (SELECT count(*) FROM applied a WHERE a.sub = s.name),
       (SELECT count(*) FROM applied a WHERE a.sub = s.name AND a.lsn = '0/0'),
       (SELECT count(*) FROM applied a WHERE a.sub = s.name AND a.lsn <> '0/0'),
       s.seam_position, s.checkpoint,
       (SELECT count(*) FROM eventstore.events e WHERE e.global_position <= s.seam_position
           AND e.event_id NOT IN (SELECT event_id FROM boundary b WHERE b.sub = s.name AND b.phase = 'after'))),
       E'\n' ORDER BY s.name)
  FROM eventstore.subscription s WHERE s.name = 'sub_all0'});
note 'total events: ' . $node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.events');

# The checks, run in one psql call: [description, query, comparison, value].
my @checks;
for my $sub (qw(sub_all0 sub_n sub_null sub_f0))
{
	push @checks,
	  [ "$sub: no event applied twice",
		"SELECT count(*) - count(DISTINCT event_id) FROM applied WHERE sub = '$sub'", '==', 0 ],
	  [ "$sub: every applied event is a stored event with its position, stream, version and type",
		qq{SELECT count(*) FROM applied a WHERE sub = '$sub' AND NOT EXISTS (
			SELECT FROM eventstore.events e
			 WHERE e.event_id = a.event_id AND e.global_position = a.position AND e.stream = a.stream
			   AND e.stream_version = a.version AND e.event_type = a.event_type)}, '==', 0 ],
	  [ "$sub: inside each stream, versions arrive in increasing order",
		qq{SELECT count(*) FROM (
			SELECT version, lag(version) OVER (PARTITION BY stream ORDER BY ord) AS prev
			  FROM applied WHERE sub = '$sub') x
		 WHERE prev >= version}, '==', 0 ],
	  [ "$sub: cursors increase strictly in delivery order",
		qq{SELECT count(*) FROM (
			SELECT lsn, seq, lag(lsn) OVER w AS plsn, lag(seq) OVER w AS pseq
			  FROM applied WHERE sub = '$sub' WINDOW w AS (ORDER BY ord)) x
		 WHERE (plsn, pseq) >= (lsn, seq)}, '==', 0 ];
}
for my $sub (sort keys %expected)
{
	push @checks,
	  [ "$sub: no matching event is missing",
		qq{SELECT count(*) FROM eventstore.events e WHERE $expected{$sub}
		   AND NOT EXISTS (SELECT FROM applied a WHERE a.sub = '$sub' AND a.event_id = e.event_id)},
		'==', 0 ],
	  [ "$sub: no event outside its filter / start",
		qq{SELECT count(*) FROM applied a WHERE a.sub = '$sub' AND NOT EXISTS (
			SELECT FROM eventstore.events e WHERE $expected{$sub} AND e.event_id = a.event_id)},
		'==', 0 ];
}
push @checks,
  [ 'sub_f0 received something',
	q{SELECT count(*) FROM applied WHERE sub = 'sub_f0'}, '>', 0 ],
  # the seam of sub_all0: history up to it, live above it
  [ 'sub_all0: events up to the seam came from history, the others live',
	q{SELECT count(*) FROM applied a, eventstore.subscription s
	   WHERE a.sub = 'sub_all0' AND s.name = 'sub_all0'
	     AND (a.lsn = '0/0') <> (a.position <= s.seam_position)}, '==', 0 ],
  [ 'sub_all0: some events came from history',
	q{SELECT count(*) FROM applied WHERE sub = 'sub_all0' AND lsn = '0/0'}, '>', 0 ],
  [ 'sub_all0: some events came live',
	q{SELECT count(*) FROM applied WHERE sub = 'sub_all0' AND lsn <> '0/0'}, '>', 0 ],
  [ 'sub_n: nothing above its seam came from history',
	q{SELECT count(*) FROM applied a WHERE a.sub = 'sub_n' AND a.lsn = '0/0'
	     AND a.position > (SELECT seam_position FROM eventstore.subscription WHERE name = 'sub_n')},
	'==', 0 ],
  # from_position NULL: nothing committed before, everything committed after
  [ 'sub_null: events were committed before its creation ...',
	q{SELECT count(*) FROM boundary WHERE sub = 'sub_null' AND phase = 'before'}, '>', 0 ],
  [ '... and after it', "SELECT count(*) FROM eventstore.events WHERE $null_min", '>', 0 ],
  [ 'sub_null: no event committed before create_subscription started',
	q{SELECT count(*) FROM applied a WHERE a.sub = 'sub_null'
	     AND a.event_id IN (SELECT event_id FROM boundary WHERE sub = 'sub_null' AND phase = 'before')},
	'==', 0 ],
  [ 'sub_null: every event not yet committed when create_subscription returned',
	qq{SELECT count(*) FROM eventstore.events e WHERE $null_min
	     AND NOT EXISTS (SELECT FROM applied a WHERE a.sub = 'sub_null' AND a.event_id = e.event_id)},
	'==', 0 ],
  [ 'sub_null: nothing from history',
	q{SELECT count(*) FROM applied a WHERE a.sub = 'sub_null' AND a.lsn = '0/0'}, '==', 0 ];

my @values = split /\n/,
  $node->safe_psql('postgres', join(";\n", map { $_->[1] } @checks));
is(scalar(@values), scalar(@checks), 'every check query returned a value');
for my $i (0 .. $#checks)
{
	cmp_ok($values[$i], $checks[$i][2], $checks[$i][3], $checks[$i][0]);
}

# The view after draining.
is( $node->safe_psql('postgres',
		q{SELECT string_agg(name || ':' || wal_status || ':' || slot_active, ',' ORDER BY name) FROM eventstore.subscriptions}),
	'sub_all0:reserved:false,sub_f0:reserved:false,sub_n:reserved:false,sub_null:reserved:false',
	'every slot is healthy and inactive');
note 'after draining: ' . $node->safe_psql('postgres',
	q{SELECT string_agg(format('%s lag_positions %s lag_bytes %s', name, lag_positions, lag_bytes), '; ' ORDER BY name)
	    FROM eventstore.subscriptions});

$node->safe_psql('postgres',
	join('', map { "SELECT eventstore.drop_subscription('$_');\n" } qw(sub_all0 sub_n sub_null sub_f0)));
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'dropping the subscriptions dropped their slots');

$node->stop;
done_testing();
