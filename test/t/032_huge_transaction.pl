# One huge append, decoded with a tiny logical_decoding_work_mem.
#
# One eventstore.append of $N events in one transaction, with
# logical_decoding_work_mem = 64kB so that the reorder buffer spills it
# to disk.  Then:
#   - pg_logical_slot_get_changes with the eventstore plugin returns $N
#     lines: one commit lsn, seq 0..N-1, versions 1..N, consecutive
#     positions, the data of each event, and the slot's statistics show
#     the transaction was spilled;
#   - a subscription pages through it with poll(max_count => $page) in
#     transactions that ack what they polled: pages of exactly $page,
#     every event once, in order;
#   - a walsender consumer (pg_recvlogical, slot created with
#     -P eventstore) whose stream-prefixes filter matches none of it, with
#     wal_sender_timeout = 5s, stays connected while the walsender decodes
#     the whole transaction, confirms past it, and then receives the one
#     matching event appended afterwards -- and nothing else.
#
# 1,000,000 events, as the issue asks (ES_HUGE_EVENTS and ES_HUGE_PAGE
# change the size and the poll page for quicker runs).  Every poll page
# decodes the whole transaction again from the spill files, so the pages
# are 250,000 events: about 110 s in all on the 2-core test machine
# (append 28 s, SQL decoding 10 s, each poll page ~10 s).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;
use Time::HiRes qw(time);

my $N = $ENV{ES_HUGE_EVENTS} // 1_000_000;
my $page = $ENV{ES_HUGE_PAGE} // 250_000;

my $node = eventstore_node('huge', qq(
synchronous_commit = on
logical_decoding_work_mem = '64kB'
wal_sender_timeout = '5s'
));

$node->safe_psql(
	'postgres', q(
CREATE EXTENSION eventstore;
SELECT FROM pg_create_logical_replication_slot('raw', 'eventstore');
CREATE TABLE paged (position bigint, version bigint, lsn pg_lsn, seq bigint, page integer);
));
$node->safe_psql('postgres',
	"SELECT eventstore.create_subscription('big', stream_prefix => 'big-')");

# The walsender consumer: slot created through the replication protocol
# with the eventstore plugin, a filter that matches none of the big
# transaction.
my $recv_out = PostgreSQL::Test::Utils::tempdir . '/recv.out';
my @recv = ('pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'w');
command_ok([ @recv, '--create-slot', '-P', 'eventstore' ],
	'pg_recvlogical creates a slot with -P eventstore');
my ($recv_stdout, $recv_stderr) = ('', '');
my $recv = IPC::Run::start(
	[
		@recv, '--start', '--no-loop', '-o', 'stream-prefixes=wanted-',
		'-F', '1', '-f', $recv_out
	],
	'<', \undef, '>', \$recv_stdout, '2>', \$recv_stderr);
$node->poll_query_until('postgres',
	"SELECT active FROM pg_replication_slots WHERE slot_name = 'w'")
  or die 'pg_recvlogical did not connect';
my $walsender = $node->safe_psql('postgres',
	"SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'w'");
my $log_offset = -s $node->logfile;

# The huge append.
my $t0 = time;
my ($version, $last) = split /\|/,
  $node->safe_psql(
	'postgres', qq{
SELECT stream_version, global_position FROM eventstore.append('big-1',
	(SELECT jsonb_agg(jsonb_build_object('type', 'T', 'data', jsonb_build_object('i', i)))
	 FROM generate_series(1, $N) i))
});
my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
note sprintf('append of %d events: %.1f s', $N, time - $t0);
is($version, $N, "the append wrote $N events");
my $first = $last - $N + 1;

# Decoding through the SQL interface.
$t0 = time;
$node->safe_psql(
	'postgres', q{
CREATE TABLE decoded AS
SELECT row_number() OVER () AS n, data::jsonb AS j
FROM pg_logical_slot_get_changes('raw', NULL, NULL)
});
note sprintf('pg_logical_slot_get_changes: %.1f s', time - $t0);
is($node->safe_psql('postgres', 'SELECT count(*) FROM decoded'),
	$N, "pg_logical_slot_get_changes returns $N lines");
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM decoded
WHERE (j->>'seq')::bigint <> n - 1
   OR (j->>'version')::bigint <> n
   OR (j->>'position')::bigint <> $first + n - 1
   OR j->>'stream' <> 'big-1' OR j->>'type' <> 'T'
   OR (j->'data'->>'i')::bigint <> n
}),
	'0',
	'every line has seq, version, position and data in order, consecutive');
is( $node->safe_psql(
		'postgres', q{
SELECT count(DISTINCT j->>'lsn') || ' ' || bool_and((j->>'lsn')::pg_lsn > '0/0')
FROM decoded
}),
	'1 true',
	'all lines carry the one commit lsn');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM decoded d
LEFT JOIN eventstore.events e ON e.global_position = (d.j->>'position')::bigint
WHERE e.event_id IS DISTINCT FROM (d.j->>'id')::uuid
}),
	'0',
	'every line has the id stored at its position');
ok( $node->poll_query_until(
		'postgres',
		"SELECT spill_txns >= 1 AND spill_count > 0 FROM pg_stat_replication_slots WHERE slot_name = 'raw'"
	),
	'the reorder buffer spilled the transaction to disk');
note 'raw slot: '
  . $node->safe_psql('postgres',
	"SELECT format('spill_txns %s, spill_count %s, spill_bytes %s', spill_txns, spill_count, spill_bytes) "
	  . "FROM pg_stat_replication_slots WHERE slot_name = 'raw'");

# A subscription pages through it, acking each page in its transaction.
my @pages;
for my $p (1 .. 10)
{
	$t0 = time;
	$node->safe_psql(
		'postgres', qq{
BEGIN;
INSERT INTO paged
SELECT global_position, stream_version, (cursor).lsn, (cursor).seq, $p
FROM eventstore.poll('big', $page);
SELECT FROM eventstore.ack('big');
COMMIT;
});
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM paged WHERE page = $p");
	note sprintf('poll page %d: %d events, %.1f s', $p, $n, time - $t0);
	push @pages, $n;
	last if $n == 0;
}
is( join(',', @pages),
	join(',', (($page) x ($N / $page)), 0),
	"poll pages through the transaction $page events at a time");
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM (
	SELECT row_number() OVER (ORDER BY lsn, seq) AS n, * FROM paged) x
WHERE seq <> n - 1 OR version <> n OR position <> $first + n - 1
}),
	'0',
	'the pages hold every event once, in order, with consecutive cursors');
is( $node->safe_psql(
		'postgres',
		"SELECT (checkpoint).seq || ' ' || (checkpoint).position FROM eventstore.subscriptions WHERE name = 'big'"
	),
	($N - 1) . " $last",
	'the checkpoint is the last event of the transaction');

# The walsender decoded the whole transaction and pg_recvlogical confirmed
# past it, without the walsender timing out.
ok( $node->poll_query_until(
		'postgres',
		"SELECT confirmed_flush_lsn >= '$end_lsn' FROM pg_replication_slots WHERE slot_name = 'w'"),
	'pg_recvlogical confirmed past the huge transaction');
is( $node->safe_psql(
		'postgres',
		"SELECT pid || ' ' || state FROM pg_stat_replication WHERE pid = $walsender"),
	"$walsender streaming",
	'the same walsender is still streaming to pg_recvlogical');
ok($recv->pumpable, 'pg_recvlogical is still running');
ok( !$node->log_contains(qr/terminating walsender process due to replication timeout/,
		$log_offset),
	'the walsender did not time out');

# Then a matching event arrives, and only it.
$node->safe_psql('postgres',
	"SELECT FROM eventstore.append_event('wanted-1', 'Wanted', '{\"after\": \"huge\"}')");
my $line = '';
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$line = -e $recv_out ? slurp_file($recv_out) : '';
	last if $line =~ /"stream":"wanted-1"/;
	$recv->pump_nb if $recv->pumpable;
	Time::HiRes::usleep(100_000);
}
like($line, qr/^\{"position":\d+,"stream":"wanted-1","version":1,.*"type":"Wanted","data":\{"after": "huge"\}/,
	'pg_recvlogical receives the matching event appended afterwards');
is(scalar(() = $line =~ /\n/g), 1, 'and nothing else: one line');

$recv->signal('INT');
$recv->finish;
note "pg_recvlogical stderr: $recv_stderr" if $recv_stderr ne '';

$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('big')");
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('raw')");
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('w')");
$node->stop;
done_testing();
