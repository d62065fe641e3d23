# The output plugin "eventstore" decodes in commit order, and the SQL slot
# functions and the streaming protocol (pg_recvlogical -P eventstore)
# produce exactly the same lines.
#
# Sessions A, B, C, D and E append so that commit order differs from
# position order:
#   A: BEGIN; A1 ............................. A2; COMMIT     (positions a1 < b < a2)
#   B:        BEGIN; B1, B2 (one batch); COMMIT
#   (an insert into another table: a transaction without events)
#   C: BEGIN; C1, C2, C3 (one batch) ........................ COMMIT
#   D:        BEGIN; D1 ...................... COMMIT
#   E:                     E1 (autocommit)
# Commit order: B, noise, A, E, D, C.  The plugin must list B1 B2 A1 A2 E1
# D1 C1 C2 C3, with one lsn per transaction equal to its commit record's
# LSN (read back with pg_waldump), seq 0.. inside each transaction.
#
# Then four slots created before any of this are read: one through SQL
# (peek, with several option sets) and three with pg_recvlogical (no
# options; stream-prefixes + event-types; write-progress without a value
# + stream-prefixes).  Each pg_recvlogical output must equal the SQL
# output with the same options byte for byte.  Bad options make
# pg_recvlogical fail with the plugin's error.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;
use JSON::PP;

my $json = JSON::PP->new;

my $node = eventstore_node('order', qq(
synchronous_commit = on
log_statement = none
), allows_streaming => 'logical');

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE noise (x int);
});
for my $slot (qw(sql_slot recv_all recv_filtered recv_progress recv_bad))
{
	$node->safe_psql('postgres',
		"SELECT pg_create_logical_replication_slot('$slot', 'eventstore')");
}
my $start_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');

# The interleaving.
my %s = map { $_ => $node->background_psql('postgres') } qw(A B C D);
my %xid;
my %pos;

$s{A}->query_safe('BEGIN');
$pos{A1} = $s{A}->query_safe(
	q{SELECT global_position FROM eventstore.append_event('ord-a', 'A1', '{"n": 1}')});
$xid{A} = $s{A}->query_safe('SELECT pg_current_xact_id()');

$s{B}->query_safe('BEGIN');
$pos{B2} = $s{B}->query_safe(
	q{SELECT global_position FROM eventstore.append('ord-b', '[{"type": "B1"}, {"type": "B2", "data": {"q": "x\"y"}}]')});
$xid{B} = $s{B}->query_safe('SELECT pg_current_xact_id()');
$s{B}->query_safe('COMMIT');

$node->safe_psql('postgres', 'INSERT INTO noise VALUES (1)');

$pos{A2} = $s{A}->query_safe(
	q{SELECT global_position FROM eventstore.append_event('ord-a', 'A2')});
$s{A}->query_safe('COMMIT');

$s{C}->query_safe('BEGIN');
$pos{C3} = $s{C}->query_safe(
	q{SELECT global_position FROM eventstore.append('ord-c', '[{"type": "C1"}, {"type": "C2"}, {"type": "C3"}]')});
$xid{C} = $s{C}->query_safe('SELECT pg_current_xact_id()');
$s{D}->query_safe('BEGIN');
$pos{D1} = $s{D}->query_safe(
	q{SELECT global_position FROM eventstore.append_event('ord-d', 'D1')});
$xid{D} = $s{D}->query_safe('SELECT pg_current_xact_id()');
$pos{E1} = $node->safe_psql('postgres',
	q{SELECT global_position FROM eventstore.append_event('ord-e', 'E1')});
$s{D}->query_safe('COMMIT');
$s{C}->query_safe('COMMIT');
$_->quit for values %s;

my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');

cmp_ok($pos{A1}, '<', $pos{B2}, 'A1 got a lower position than B ...');
cmp_ok($pos{B2}, '<', $pos{A2}, '... and A2 a higher one');
cmp_ok($pos{C3}, '<', $pos{D1}, 'C got lower positions than D ...');
cmp_ok($pos{D1}, '<', $pos{E1}, '... and D than E');

# The lines of the SQL slot for a set of options (peek: the slot keeps them).
sub sql_lines
{
	my @opts = @_;
	my $args = join '', map { ", '$_'" } @opts;
	my $out = $node->safe_psql('postgres',
		"SELECT data FROM pg_logical_slot_peek_changes('sql_slot', NULL, NULL$args)");
	return $out eq '' ? () : split /\n/, $out;
}

my @lines = sql_lines();
my @ev = map { $json->decode($_) } @lines;
is_deeply([ map { $_->{type} } @ev ],
	[qw(B1 B2 A1 A2 E1 D1 C1 C2 C3)],
	'the plugin lists the events in commit order, not position order');
isnt(join(',', map { $_->{position} } @ev),
	join(',', sort { $a <=> $b } map { $_->{position} } @ev),
	'(so the positions it lists are not in increasing order)');
is_deeply([ map { $_->{seq} } @ev ], [ 0, 1, 0, 1, 0, 0, 0, 1, 2 ],
	'seq counts the events inside each transaction');
is_deeply([ map { $_->{version} } @ev ], [ 1, 2, 1, 2, 1, 1, 1, 2, 3 ],
	'versions');
is($ev[2]{position}, $pos{A1}, 'A1 has the position its append returned');
is($ev[3]{position}, $pos{A2}, 'A2 too');
is_deeply($ev[1]{data}, { q => 'x"y' }, 'data is decoded JSON');

# One lsn per transaction, increasing, equal to the commit record's LSN.
sub lsn_num
{
	my ($hi, $lo) = split m{/}, shift;
	return hex($hi) * 2**32 + hex($lo);
}
my %lsn_of;
for my $e (@ev)
{
	my $t = substr($e->{stream}, 4, 1);
	$lsn_of{ uc $t }{ $e->{lsn} } = 1;
}
is(scalar(keys %{ $lsn_of{$_} }), 1, "one lsn for all events of transaction $_")
  for qw(A B C D E);
my @tx_lsns = map { lsn_num($ev[$_]{lsn}) } (0, 2, 4, 5, 6);
is_deeply(\@tx_lsns, [ sort { $a <=> $b } @tx_lsns ],
	'transaction lsns increase in output order');

my ($waldump_out, $waldump_err);
IPC::Run::run(
	[
		$node->installed_command('pg_waldump'), '-p',
		$node->data_dir . '/pg_wal', '-s', $start_lsn, '-e', $end_lsn,
		'-r', 'Transaction'
	],
	'>', \$waldump_out, '2>', \$waldump_err);
my %commit_lsn;
while ($waldump_out =~ /tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: COMMIT/g)
{
	$commit_lsn{$1} = lsn_num($2);
}
for my $t (qw(A B C D))
{
	is(lsn_num((keys %{ $lsn_of{$t} })[0]), $commit_lsn{ $xid{$t} },
		"transaction $t: lsn is the LSN of its commit record (pg_waldump)");
}

# Every event line equals the stored row, every column.
my $lines_sql = join ', ', map { "\$l\$$_\$l\$" } @lines;
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM unnest(ARRAY[$lines_sql]) AS l(line), LATERAL (SELECT line::jsonb AS j) x
  JOIN eventstore.events e ON e.global_position = (j ->> 'position')::bigint
 WHERE e.stream = j ->> 'stream' AND e.stream_version = (j ->> 'version')::bigint
   AND e.event_id = (j ->> 'id')::uuid AND e.event_type = j ->> 'type'
   AND e.data = j -> 'data' AND e.metadata = j -> 'metadata'
   AND e.created_at = (j ->> 'created_at')::timestamptz}),
	'9',
	'every line carries the stored event');

# pg_recvlogical from $slot up to $end_lsn with plugin options ("k=v" or
# "k"); returns (exit status, stdout, stderr).
sub recvlogical
{
	my ($slot, @opts) = @_;
	my @cmd = (
		$node->installed_command('pg_recvlogical'),
		'-S', $slot, '--dbname', $node->connstr('postgres'),
		'--endpos', $end_lsn, '-f', '-', '--no-loop', '--start',
		map { ('-o', $_) } @opts);
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out, $err);
}

my ($rc, $out, $err) = recvlogical('recv_all');
is($rc, 0, 'pg_recvlogical without options succeeded');
is($out, join('', map { "$_\n" } @lines),
	'pg_recvlogical writes exactly the lines of the SQL functions');

my @filter = ('stream-prefixes', 'ord-a,ord-c', 'event-types', 'A2,C1,C3');
my @f_lines = sql_lines(@filter);
is_deeply([ map { my $e = $json->decode($_); "$e->{type}:$e->{seq}" } @f_lines ],
	[qw(A2:1 C1:0 C3:2)], 'SQL with stream-prefixes and event-types: A2 C1 C3');
($rc, $out, $err) = recvlogical('recv_filtered',
	'stream-prefixes=ord-a,ord-c', 'event-types=A2,C1,C3');
is($rc, 0, 'pg_recvlogical with stream-prefixes and event-types succeeded');
is($out, join('', map { "$_\n" } @f_lines),
	'with filters, pg_recvlogical writes exactly the lines of the SQL functions');

my @p_lines = sql_lines('write-progress', 'on', 'stream-prefixes', 'ord-d');
is_deeply(
	[ map { my $e = $json->decode($_); exists $e->{progress} ? 'progress' : $e->{type} } @p_lines ],
	[qw(progress progress progress progress D1 progress progress)],
	'SQL with write-progress: every transaction ends with a progress line, in commit order'
);
($rc, $out, $err) = recvlogical('recv_progress', 'write-progress', 'stream-prefixes=ord-d');
is($rc, 0, 'pg_recvlogical with write-progress (no value) succeeded');
is($out, join('', map { "$_\n" } @p_lines),
	'with write-progress, pg_recvlogical writes exactly the lines of the SQL functions');

($rc, $out, $err) = recvlogical('recv_bad', 'format-version=2');
isnt($rc, 0, 'pg_recvlogical with format-version=2 fails');
like($err, qr/unsupported format-version "2"/, '... with the plugin\'s error');
($rc, $out, $err) = recvlogical('recv_bad', 'no-such-option=1');
isnt($rc, 0, 'pg_recvlogical with an unknown option fails');
like($err, qr/option "no-such-option" is unknown to the eventstore output plugin/,
	'... with the plugin\'s error');
($rc, $out, $err) = recvlogical('recv_bad', 'format-version=1');
is($rc, 0, 'format-version=1 is accepted');
is($out, join('', map { "$_\n" } @lines), '... and changes nothing');

for my $slot (qw(sql_slot recv_all recv_filtered recv_progress recv_bad))
{
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('$slot')");
}
$node->stop;
done_testing();
