# What append accepts, every delivery path delivers; what no path could
# deliver, append refuses up front with 54000 and writes nothing.
#
# The largest and deepest events append accepts with default settings --
# data nested eventstore.max_event_depth (100) deep, metadata as deep, a
# string of control characters that takes exactly eventstore.max_event_size
# (1 MB) as stored and six times that as JSON text, numbers whose text
# takes almost six times max_event_size -- plus data 1000 deep (the most
# max_event_depth allows), are appended and then read through every path:
# read_stream, read_all, poll from history and live, pg_recvlogical, an
# inline projection and an async one (run_projection, the worker's code).
# Each must deliver every one of them unchanged.
#
# One level deeper, one byte larger, one number more, an event as deep as
# the reproduction of the defect (14,540 levels: poll could never parse it
# back, so no subscription could get past it) and a batch with one such
# event are refused with 54000, and nothing is written; the subscriptions
# still poll afterwards.
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;

my $node = eventstore_node('limits', qq(
synchronous_commit = on
log_statement = none
log_min_error_statement = panic
), allows_streaming => 'logical');

# The events, one a stream: the expected data and metadata, in SQL.
my %case = (
	'lim-deep-data' => [ q!(repeat('[', 100) || repeat(']', 100))::jsonb!, q!'{}'! ],
	'lim-deep-meta' => [ q!'{}'!, q!('{' || repeat('"a": {', 99) || repeat('}', 100))::jsonb! ],
	# a scalar jsonb string of n bytes takes 12 + n, metadata {} takes 8
	'lim-big-string' => [ q!to_jsonb(repeat(chr(1), 1048576 - 12 - 8))!, q!'{}'! ],
	# 48 numbers of 131,001 digits: 6,288,144 bytes as text, 6,291,456 allowed
	'lim-big-numbers' => [ q!(SELECT jsonb_agg('1e131000'::jsonb) FROM generate_series(1, 48))!, q!'{}'! ],
	'lim-deep-1000' => [ q!(repeat('[', 1000) || repeat(']', 1000))::jsonb!, q!'{"k": [true]}'! ],
);
my @streams = sort keys %case;
my $n = scalar @streams;

$node->safe_psql('postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE expected (stream text PRIMARY KEY, data jsonb NOT NULL, metadata jsonb NOT NULL);
CREATE TABLE seen (via text, stream text, data jsonb, metadata jsonb);
CREATE FUNCTION keep_inline(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO seen VALUES ('inline', e.stream, e.data, e.metadata) $$;
CREATE FUNCTION keep_async(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO seen VALUES ('async', e.stream, e.data, e.metadata) $$;
SELECT eventstore.create_projection('inl', 'keep_inline(eventstore.event)'::regprocedure, 'inline', 'lim-');
SELECT eventstore.create_projection('asy', 'keep_async(eventstore.event)'::regprocedure, 'async', 'lim-');
SELECT pg_create_logical_replication_slot('recv', 'eventstore');
});
$node->safe_psql('postgres', q{SELECT eventstore.create_subscription('live', 'lim-')});

for my $s (@streams)
{
	my ($data, $metadata) = @{ $case{$s} };
	$node->safe_psql('postgres', "INSERT INTO expected VALUES ('$s', $data, $metadata)");
}

# Appended at default settings; lim-deep-1000 with max_event_depth at its maximum.
for my $s (@streams)
{
	my $set = $s eq 'lim-deep-1000' ? 'SET eventstore.max_event_depth = 1000;' : '';
	my ($ret, $out, $err) = $node->psql('postgres',
		"$set SELECT global_position FROM expected AS x,"
		  . " eventstore.append_event(x.stream, 'Limit', x.data, x.metadata) WHERE x.stream = '$s'");
	is($ret, 0, "append accepts $s") or diag($err);
}
$node->safe_psql('postgres', q{SELECT eventstore.create_subscription('hist', 'lim-', NULL, 0)});
my $head = $node->safe_psql('postgres', 'SELECT eventstore.head_position()');

# Refused with 54000, writing nothing.
my %refused = (
	'data one level deeper' => q!SELECT eventstore.append_event('lim-r', 'R', (repeat('[', 101) || repeat(']', 101))::jsonb)!,
	'metadata one level deeper' => q!SELECT eventstore.append_event('lim-r', 'R', '{}', ('{' || repeat('"a": {', 100) || repeat('}', 101))::jsonb)!,
	'one byte larger' => q!SELECT eventstore.append_event('lim-r', 'R', to_jsonb(repeat(chr(1), 1048576 - 12 - 8 + 1)))!,
	'one number more' => q!SELECT eventstore.append_event('lim-r', 'R', (SELECT jsonb_agg('1e131000'::jsonb) FROM generate_series(1, 49)))!,
	'14,540 levels deep' => q!SELECT eventstore.append_event('lim-r', 'R', (repeat('[', 14540) || repeat(']', 14540))::jsonb)!,
	'a batch with one event too deep' => q!SELECT eventstore.append('lim-r', jsonb_build_array(jsonb_build_object('type', 'ok'), jsonb_build_object('type', 'R', 'data', (repeat('[', 101) || repeat(']', 101))::jsonb)))!,
	'1001 levels at the maximum depth' => q!SET eventstore.max_event_depth = 1000; SELECT eventstore.append_event('lim-r', 'R', (repeat('[', 1001) || repeat(']', 1001))::jsonb)!,
);
for my $what (sort keys %refused)
{
	my ($ret, $out, $err) = $node->psql('postgres', $refused{$what},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  54000: /, "append refuses $what with 54000");
}
is($node->safe_psql('postgres',
	"SELECT eventstore.head_position() = $head AND eventstore.stream_version('lim-r') = 0"),
	't', '  and writes nothing');

# Does every event of @streams arrive unchanged in rows of (stream, data, metadata)?
sub all_match
{
	my ($rows) = @_;
	return $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE x.data = r.data AND x.metadata = r.metadata)
       || '/' || count(*)
  FROM ($rows) AS r(stream, data, metadata) JOIN expected AS x USING (stream)});
}

is(all_match(q{SELECT r.stream, r.data, r.metadata FROM expected AS x,
               eventstore.read_stream(x.stream) AS r}),
	"$n/$n", 'read_stream delivers every event');
is(all_match(q{SELECT stream, data, metadata FROM eventstore.read_all(0, 100)}),
	"$n/$n", 'read_all delivers every event');

# poll and ack in one transaction; the polled rows go to a table first.
for my $sub (qw(hist live))
{
	my ($ret, $out, $err) = $node->psql('postgres', qq{
BEGIN;
INSERT INTO seen SELECT 'poll $sub', stream, data, metadata FROM eventstore.poll('$sub', 100);
SELECT eventstore.ack('$sub');
COMMIT;});
	is($ret, 0, "poll of subscription $sub succeeds") or diag($err);
	is(all_match(qq{SELECT stream, data, metadata FROM seen WHERE via = 'poll $sub'}),
		"$n/$n", "  and delivers every event");
	is($node->safe_psql('postgres', "SELECT count(*) FROM eventstore.poll('$sub', 100)"),
		'0', '  then nothing more, without error');
}

is($node->safe_psql('postgres', q{SELECT eventstore.run_projection('asy')}), $n,
	'run_projection applies every event');
for my $via (qw(inline async))
{
	is(all_match(qq{SELECT stream, data, metadata FROM seen WHERE via = '$via'}),
		"$n/$n", "the $via projection's handler got every event");
}

# pg_recvlogical up to the end of WAL: one line per event, whose data and
# metadata are the jsonb text of what was appended.
my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		$node->installed_command('pg_recvlogical'),
		'-S', 'recv', '--dbname', $node->connstr('postgres'),
		'--endpos', $end_lsn, '-f', '-', '--no-loop', '--start'
	],
	'>', \$out, '2>', \$err);
ok($ok, 'pg_recvlogical succeeds') or diag($err);
my %md5 = map { my ($s, $d, $m) = split /\|/; ($s => "$d|$m") } split /\n/,
  $node->safe_psql('postgres', 'SELECT stream, md5(data::text), md5(metadata::text) FROM expected');
my $matched = 0;
my @lines = split /\n/, $out;
for my $line (@lines)
{
	next unless $line =~ /^\{"position":\d+,"stream":"([^"]+)",.*?,"data":(.*),"metadata":(.*),"created_at":/s;
	$matched++ if ($md5{$1} // '') eq md5_hex($2) . '|' . md5_hex($3);
}
is(scalar(@lines) . " $matched", "$n $n", '  and writes every event, unchanged');

done_testing();
