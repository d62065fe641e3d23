# Many clients appending to a few hot streams, with pgbench.
#
# Run 1: 8 clients append single events and small batches (1-3 events)
# to 4 hot streams with expected_version NULL.  Every transaction must
# succeed, and each records what append returned in a ledger table, in
# the same transaction.  Afterwards every stream's versions are exactly
# 1..N, the events stored are exactly the events of the successful
# transactions, every append's returned version and position are where
# its last event is stored, and positions are unique.
#
# Run 2: 8 clients read a stream's version and then append with that
# exact expected version (in a separate transaction, so others can get in
# between) to 3 new streams, starting from expected version 0.  Losers
# get ES001, which the script catches and counts; any other error aborts
# a pgbench client and fails the run.  Every successful append must have
# landed exactly after the version it expected, and density still holds.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;

my $clients = 8;
my $per_client = 400;
my $tmp = PostgreSQL::Test::Utils::tempdir;

my $node = eventstore_node('multi', qq(
synchronous_commit = on
log_statement = none
max_connections = 30
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;

-- What each successful append returned: n events, the stream's new
-- version and the position of the last event.
CREATE TABLE ledger (
	run text, stream text, n int, expected bigint,
	version bigint, position bigint);

-- Run 2's losers.
CREATE TABLE conflicts (stream text, expected bigint, sqlstate text);

-- n events of type Bench as the events argument of append.
CREATE FUNCTION bench_events(n int) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(jsonb_build_object('type', 'Bench', 'data', jsonb_build_object('k', g)))
	FROM generate_series(1, n) g
$$;

-- Run 2: append with an exact expectation; ES001 is an expected outcome.
CREATE FUNCTION try_append(p_stream text, p_expected bigint, p_n int)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	SELECT * INTO r FROM eventstore.append(p_stream, bench_events(p_n), p_expected);
	INSERT INTO ledger VALUES ('exact', p_stream, p_n, p_expected, r.stream_version, r.global_position);
	RETURN true;
EXCEPTION WHEN SQLSTATE 'ES001' THEN
	INSERT INTO conflicts VALUES (p_stream, p_expected, SQLSTATE);
	RETURN false;
END $$;
});

# Run pgbench with the given scripts (name => [weight, text]); return its
# exit status and output.
sub run_pgbench
{
	my ($label, %scripts) = @_;
	my @files;
	for my $name (sort keys %scripts)
	{
		my $file = "$tmp/$name.sql";
		open my $fh, '>', $file or die "cannot write $file: $!";
		print $fh $scripts{$name}[1];
		close $fh;
		push @files, '-f', "$file\@$scripts{$name}[0]";
	}
	my @cmd = (
		'pgbench', '-n', '-c', $clients, '-j', 2, '-t', $per_client,
		'-h', $node->host, '-p', $node->port, @files, 'postgres');
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	my $status = $? >> 8;
	note "$label: pgbench stdout:\n$out";
	note "$label: pgbench stderr:\n$err" if $err ne '';
	return ($status, $out, $err);
}

# Density, uniqueness and agreement with the ledger, for streams LIKE $pattern.
sub check_streams
{
	my ($label, $run, $pattern) = @_;

	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM (
	SELECT stream FROM eventstore.events WHERE stream LIKE '$pattern' GROUP BY stream
	HAVING min(stream_version) <> 1
	    OR max(stream_version) <> count(*)
	    OR count(DISTINCT stream_version) <> count(*)) bad
}),
		'0',
		"$label: every stream has versions exactly 1..N, no duplicates");

	is( $node->safe_psql(
			'postgres', qq{
SELECT (SELECT count(*) FROM eventstore.events WHERE stream LIKE '$pattern')
     = (SELECT coalesce(sum(n), 0) FROM ledger WHERE run = '$run')
}),
		't',
		"$label: the events stored are exactly those of the successful appends");

	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM ledger l
WHERE run = '$run' AND NOT EXISTS (
	SELECT 1 FROM eventstore.events e
	WHERE e.stream = l.stream AND e.stream_version = l.version
	  AND e.global_position = l.position)
}),
		'0',
		"$label: each append's returned version and position is where its last event is");

	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM (
	SELECT stream, version FROM ledger WHERE run = '$run'
	GROUP BY stream, version HAVING count(*) > 1) dup
}),
		'0',
		"$label: no two appends were told the same version");

	is( $node->safe_psql(
			'postgres', q{
SELECT count(*) - count(DISTINCT global_position) FROM eventstore.events
}),
		'0',
		"$label: global positions are unique");

	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM (
	SELECT global_position,
	       lag(global_position) OVER (PARTITION BY stream ORDER BY stream_version) AS prev
	FROM eventstore.events WHERE stream LIKE '$pattern') x
WHERE prev >= global_position
}),
		'0',
		"$label: positions increase with the version inside each stream");
}

# Run 1: expected version NULL, single events and batches.
my ($status, $out, $err) = run_pgbench(
	'any version',
	single => [
		2, q{
\set s random(1, 4)
INSERT INTO ledger (run, stream, n, version, position)
SELECT 'any', 'hot-' || :s, 1, a.stream_version, a.global_position
FROM eventstore.append_event('hot-' || :s, 'Bench', '{"single": true}') a;
}
	],
	batch => [
		1, q{
\set s random(1, 4)
\set n random(1, 3)
INSERT INTO ledger (run, stream, n, version, position)
SELECT 'any', 'hot-' || :s, :n, a.stream_version, a.global_position
FROM eventstore.append('hot-' || :s, bench_events(:n)) a;
}
	]);
my $total = $clients * $per_client;
is($status, 0, 'any version: pgbench succeeded');
like($out, qr{number of transactions actually processed: $total/$total},
	"any version: all $total transactions ran");
like($out, qr{number of failed transactions: 0 },
	'any version: no transaction failed');
unlike($err, qr/ERROR/, 'any version: no errors');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ledger WHERE run = 'any'}),
	$total, 'any version: every transaction is in the ledger');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(DISTINCT stream) FROM eventstore.events WHERE stream LIKE 'hot-%'}),
	'4',
	'any version: all four hot streams were written');
check_streams('any version', 'any', 'hot-%');

# Run 2: exact expected version read just before the append.
($status, $out, $err) = run_pgbench(
	'exact version',
	exact => [
		1, q{
\set s random(1, 3)
\set n random(1, 3)
SELECT eventstore.stream_version('exact-' || :s) AS v \gset
SELECT try_append('exact-' || :s, :v, :n);
}
	]);
is($status, 0, 'exact version: pgbench succeeded (ES001 is caught, nothing else failed)');
like($out, qr{number of transactions actually processed: $total/$total},
	"exact version: all $total transactions ran");
unlike($err, qr/ERROR/, 'exact version: no errors');

my ($ok, $lost) = split /\|/, $node->safe_psql(
	'postgres', q{
SELECT (SELECT count(*) FROM ledger WHERE run = 'exact'),
       (SELECT count(*) FROM conflicts)
});
note "exact version: $ok appends succeeded, $lost got ES001";
is($ok + $lost, $total, 'exact version: every attempt either appended or got ES001');
cmp_ok($ok, '>', 0, 'exact version: some appends succeeded');
cmp_ok($lost, '>', 0, 'exact version: some appends lost the race with ES001');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM ledger WHERE run = 'exact' AND version <> expected + n}),
	'0',
	'exact version: every successful append landed right after the version it expected');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM ledger WHERE run = 'exact' AND expected = 0}),
	$node->safe_psql(
		'postgres',
		q{SELECT count(DISTINCT stream) FROM eventstore.events WHERE stream LIKE 'exact-%'}),
	'exact version: exactly one creation (expected version 0) won per stream');
check_streams('exact version', 'exact', 'exact-%');

$node->stop;
done_testing();
