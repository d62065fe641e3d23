# The gap-safe global feed under concurrent writers.
#
# 6 pgbench clients append batches of 1-3 events in transactions that
# sleep 0-50 ms before they end, so commits happen out of position order
# all the time: 70% commit one append, 10% append to two streams with a
# sleep in between, 10% roll back, 10% roll back an append to a savepoint
# and commit another one.  Every rolled-back event has type RolledBack.
#
# Meanwhile five readers poll with a checkpoint, 50 events at a time, as
# subscribers do, recording every event they get in their own table:
#   r1   read_all, READ COMMITTED
#   r2   read_all, inside one REPEATABLE READ transaction
#   g0, g1, g2   read_category('feed') as members 0, 1, 2 of a consumer
#        group of 3
# When the writers are done, the readers drain what is left and stop.
#
# Then, for r1 and r2: every committed event was seen exactly once, in
# strictly increasing position order, and nothing else (no rolled-back
# event).  For the group: together the members saw every event of
# category feed exactly once, each stream wholly within the member
# consumer_group_member() names, and each stream's versions 1, 2, 3, ...
# in order.  fsync is on (the test framework turns it off) so that a
# commit takes a while between its WAL flush and its becoming visible.
# The run itself is checked to have exercised the feed: the
# writers committed out of position order (commit timestamps) and rolled
# back positions, and the readers read while the writers were running.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $writers = 6;
my $seconds = $ENV{EVENTSTORE_FEED_STRESS_SECONDS} || 30;
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $t0 = time;

my $node = PostgreSQL::Test::Cluster->new('feed_stress');
$node->init;
$node->append_conf(
	'postgresql.conf', qq(
shared_preload_libraries = 'eventstore'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
output_plugin_libraries = 'pgoutput, test_decoding, eventstore'
max_connections = 40
track_commit_timestamp = on
synchronous_commit = on
fsync = on
log_statement = none
));
$node->start;

my @readers = qw(r1 r2 g0 g1 g2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;

-- n events of the given type, as the events argument of append.
CREATE FUNCTION feed_events(n int, type text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(jsonb_build_object('type', type, 'data', jsonb_build_object('k', g)))
	FROM generate_series(1, n) g
$$;

-- Called (nextval) once the writers are done: the readers drain and stop.
-- A sequence, so that a REPEATABLE READ reader sees it too.
CREATE SEQUENCE feed_stop;

-- One row per reader: polls made, events seen before the stop signal.
CREATE TABLE reader_runs (tbl text PRIMARY KEY, polls bigint, seen_while_writing bigint);

-- A subscriber: poll after the checkpoint, 50 at a time, record every
-- event in tbl in the order received, continue after the last one.  With
-- member and size, read category feed as that consumer group member.
CREATE PROCEDURE feed_reader(tbl text, member int DEFAULT NULL, size int DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	ckpt bigint := 0;
	got int;
	total bigint := 0;
	polls bigint := 0;
	while_writing bigint;
	stopping boolean := false;
	r eventstore.event;
	ins text := format('INSERT INTO %I (global_position, event_id, stream, stream_version, event_type)'
					   ' VALUES ($1, $2, $3, $4, $5)', tbl);
BEGIN
	LOOP
		got := 0;
		IF member IS NULL THEN
			FOR r IN SELECT * FROM eventstore.read_all(after_position => ckpt, max_count => 50) LOOP
				EXECUTE ins USING r.global_position, r.event_id, r.stream, r.stream_version, r.event_type;
				ckpt := r.global_position;
				got := got + 1;
			END LOOP;
		ELSE
			FOR r IN SELECT * FROM eventstore.read_category('feed', after_position => ckpt, max_count => 50,
															consumer_group_member => member,
															consumer_group_size => size) LOOP
				EXECUTE ins USING r.global_position, r.event_id, r.stream, r.stream_version, r.event_type;
				ckpt := r.global_position;
				got := got + 1;
			END LOOP;
		END IF;
		polls := polls + 1;
		total := total + got;
		IF got = 0 THEN
			-- stop after an empty read that began after the stop signal
			EXIT WHEN stopping;
			IF pg_sequence_last_value('feed_stop') IS NOT NULL THEN
				stopping := true;
				while_writing := total;
			ELSE
				PERFORM pg_sleep(0.002);
			END IF;
		END IF;
	END LOOP;
	INSERT INTO reader_runs VALUES (tbl, polls, while_writing);
END
$$;
});

for my $r (@readers)
{
	$node->safe_psql(
		'postgres', qq{
CREATE TABLE seen_$r (
	seq bigserial PRIMARY KEY,
	global_position bigint NOT NULL,
	event_id uuid NOT NULL,
	stream text NOT NULL,
	stream_version bigint NOT NULL,
	event_type text NOT NULL)});
}

# The writers' scripts, with their weights.
my %scripts = (
	commit => [
		7, q{
\set s random(1, 40)
\set n random(1, 3)
\set ms random(0, 50)
BEGIN;
SELECT FROM eventstore.append('feed-' || :s, feed_events(:n, 'Written'));
\sleep :ms ms
COMMIT;
}
	],
	two_streams => [
		1, q{
\set s random(1, 40)
\set o random(1, 10)
\set n random(1, 3)
\set ms1 random(0, 25)
\set ms2 random(0, 25)
BEGIN;
SELECT FROM eventstore.append('feed-' || :s, feed_events(:n, 'Written'));
\sleep :ms1 ms
SELECT FROM eventstore.append('other-' || :o, feed_events(1, 'Written'));
\sleep :ms2 ms
COMMIT;
}
	],
	rollback => [
		1, q{
\set s random(1, 40)
\set n random(1, 3)
\set ms random(0, 50)
BEGIN;
SELECT FROM eventstore.append('feed-' || :s, feed_events(:n, 'RolledBack'));
\sleep :ms ms
ROLLBACK;
}
	],
	savepoint => [
		1, q{
\set s random(1, 40)
\set o random(1, 10)
\set n random(1, 3)
\set ms random(0, 50)
BEGIN;
SAVEPOINT sp;
SELECT FROM eventstore.append('feed-' || :s, feed_events(:n, 'RolledBack'));
ROLLBACK TO SAVEPOINT sp;
SELECT FROM eventstore.append('other-' || :o, feed_events(1, 'Written'));
\sleep :ms ms
COMMIT;
}
	]);
my @files;
for my $name (sort keys %scripts)
{
	my $file = "$tmp/$name.sql";
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh $scripts{$name}[1];
	close $fh;
	push @files, '-f', "$file\@$scripts{$name}[0]";
}

# Start the readers.
my $connstr = $node->connstr('postgres');
my %reader_sql = (
	r1 => [ q{CALL feed_reader('seen_r1')} ],
	r2 => [
		'BEGIN ISOLATION LEVEL REPEATABLE READ',
		q{CALL feed_reader('seen_r2')}, 'COMMIT'
	],
	g0 => [ q{CALL feed_reader('seen_g0', 0, 3)} ],
	g1 => [ q{CALL feed_reader('seen_g1', 1, 3)} ],
	g2 => [ q{CALL feed_reader('seen_g2', 2, 3)} ],);
my %handles;
my %out;
for my $r (@readers)
{
	my @cmd = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
		map { ('-c', $_) } @{ $reader_sql{$r} });
	$out{$r} = { out => '', err => '' };
	$handles{$r} = IPC::Run::start(
		\@cmd, '>', \$out{$r}{out}, '2>', \$out{$r}{err},
		IPC::Run::timeout($seconds + 300));
}

note sprintf('%.1f s: setup done, readers started', time - $t0);

# Run the writers.
my @pgbench = (
	'pgbench', '-n', '-c', $writers, '-j', $writers, '-T', $seconds,
	'-h', $node->host, '-p', $node->port, @files, 'postgres');
my ($pgb_out, $pgb_err) = ('', '');
IPC::Run::run(\@pgbench, '>', \$pgb_out, '2>', \$pgb_err);
my $pgb_status = $? >> 8;
note "pgbench stdout:\n$pgb_out";
note "pgbench stderr:\n$pgb_err" if $pgb_err ne '';
is($pgb_status, 0, 'every writer transaction ran without error');
note sprintf('%.1f s: writers done', time - $t0);

# Writers done: let the readers drain and stop.
$node->safe_psql('postgres', q{SELECT nextval('feed_stop')});
for my $r (@readers)
{
	my $ok = eval { $handles{$r}->finish; 1 };
	my $status = $ok ? $handles{$r}->result(0) : 'timeout';
	is($status, 0, "reader $r finished without error");
	diag "reader $r stderr:\n$out{$r}{err}" if $out{$r}{err} ne '';
}

note sprintf('%.1f s: readers done', time - $t0);

# The run exercised the feed.
my $stats = $node->safe_psql(
	'postgres', q{
SELECT (SELECT count(*) FROM eventstore.events),
       (SELECT count(*) FROM eventstore.events WHERE eventstore.category(stream) = 'feed'),
       pg_sequence_last_value('eventstore.global_position_seq')
		 - (SELECT count(*) FROM eventstore.events)
});
my ($n_events, $n_feed, $n_gaps) = split /\|/, $stats;
note "committed events: $n_events (category feed: $n_feed), positions rolled back: $n_gaps";
cmp_ok($n_events, '>', 1000, 'the writers committed many events');
cmp_ok($n_gaps, '>', 0, 'the writers rolled back positions');
cmp_ok(
	$node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (
	SELECT pg_xact_commit_timestamp(xmin) AS committed,
		   lag(pg_xact_commit_timestamp(xmin)) OVER (ORDER BY global_position) AS before
	FROM eventstore.events) t
WHERE committed < before
}),
	'>', 0,
	'the writers committed out of position order');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM eventstore.events WHERE event_type = 'RolledBack'}),
	'0',
	'no rolled-back event is stored');

for my $r (@readers)
{
	my ($polls, $while_writing) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT polls, seen_while_writing FROM reader_runs WHERE tbl = 'seen_$r'");
	note "reader $r: $polls polls, $while_writing events seen while the writers ran";
	cmp_ok($while_writing // 0, '>', 0, "reader $r read while the writers were running");
}

# read_all readers: every committed event exactly once, in order, nothing else.
for my $r (qw(r1 r2))
{
	my $t = "seen_$r";
	is($node->safe_psql('postgres', "SELECT count(*) - count(DISTINCT event_id) FROM $t"),
		'0', "$r: no event seen twice");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM eventstore.events e FULL JOIN $t s USING (event_id)
WHERE e.event_id IS NULL OR s.event_id IS NULL}),
		'0',
		"$r: saw exactly the committed events");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM $t s JOIN eventstore.events e USING (event_id)
WHERE (e.global_position, e.stream, e.stream_version, e.event_type)
   IS DISTINCT FROM (s.global_position, s.stream, s.stream_version, s.event_type)}),
		'0',
		"$r: every event as stored");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM (
	SELECT global_position, lag(global_position) OVER (ORDER BY seq) AS prev FROM $t) o
WHERE global_position <= prev}),
		'0',
		"$r: positions strictly increasing");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE event_type = 'RolledBack'"),
		'0', "$r: no rolled-back event seen");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $t"),
		$n_events, "$r: saw all $n_events events");
}

# The consumer group.
my $group = join "\nUNION ALL\n",
  map { "SELECT $_ AS member, * FROM seen_g$_" } 0 .. 2;
$node->safe_psql('postgres', "CREATE VIEW seen_group AS $group");
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT event_id) FROM seen_group'),
	'0', 'group: no event seen twice, by one member or two');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*)
FROM (SELECT * FROM eventstore.events WHERE eventstore.category(stream) = 'feed') e
FULL JOIN seen_group s USING (event_id)
WHERE e.event_id IS NULL OR s.event_id IS NULL}),
	'0',
	'group: together the members saw exactly the events of category feed');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (SELECT stream FROM seen_group GROUP BY stream HAVING count(DISTINCT member) > 1) s}),
	'0',
	'group: each stream wholly within one member');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM seen_group WHERE member <> eventstore.consumer_group_member(stream, 3)}),
	'0',
	'group: each stream at the member consumer_group_member() names');
is( $node->safe_psql(
		'postgres', q{SELECT count(DISTINCT member) FROM seen_group}),
	'3',
	'group: every member got streams');
for my $m (0 .. 2)
{
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM (
	SELECT stream_version,
		   lag(stream_version, 1, 0::bigint) OVER (PARTITION BY stream ORDER BY seq) AS prev,
		   global_position,
		   lag(global_position) OVER (ORDER BY seq) AS prev_position
	FROM seen_g$m) o
WHERE stream_version <> prev + 1 OR global_position <= prev_position}),
		'0',
		"group member $m: each stream's versions 1, 2, 3, ... in order, positions increasing");
}

note sprintf('%.1f s: checks done', time - $t0);
$node->stop;
done_testing();
