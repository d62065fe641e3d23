# A subscription whose slot is invalidated by max_slot_wal_keep_size.
#
# 1 MB WAL segments and max_slot_wal_keep_size = 1MB.  A subscription
# acknowledges a few events and then stops polling while appends,
# pg_switch_wal() and CHECKPOINT generate WAL, until its slot's
# wal_status is 'lost'.  Then:
#   - eventstore.subscriptions shows wal_status 'lost';
#   - poll fails with SQLSTATE 55000, a message naming the subscription,
#     the last acknowledged position in the detail, and a hint to
#     recreate it with from_position => its recovery position (here the
#     same: the consumer polled until empty);
#   - drop_subscription works and leaves no slot behind;
#   - create_subscription with from_position => that position works and
#     delivers every matching event after it (from history), then the live
#     ones, each once;
#   - events committed out of position order: a consumer acknowledges a
#     later position while an earlier one is still in flight, then the slot
#     is lost before the earlier one is delivered.  The hint's position is
#     below the earlier one, so the recreated subscription delivers it (the
#     last acknowledged position would have skipped it for good).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('lost', qq(
synchronous_commit = on
max_slot_wal_keep_size = '1MB'
min_wal_size = '2MB'
max_wal_size = '32MB'
), extra => ['--wal-segsize=1']);

$node->safe_psql(
	'postgres', q(
CREATE EXTENSION eventstore;
CREATE TABLE seen (event_id uuid UNIQUE, position bigint);
));
$node->safe_psql('postgres',
	"SELECT eventstore.create_subscription('lazy', stream_prefix => 'acct-')");
my $slot = $node->safe_psql('postgres',
	"SELECT slot_name FROM eventstore.subscriptions WHERE name = 'lazy'");

# A consumer step: poll, apply and ack in one transaction.
sub consume
{
	my ($max) = @_;
	$node->safe_psql(
		'postgres', qq{
BEGIN;
INSERT INTO seen SELECT event_id, global_position FROM eventstore.poll('lazy', $max);
SELECT FROM eventstore.ack('lazy');
COMMIT;
});
	return;
}

# Three events are consumed and acknowledged.
$node->safe_psql('postgres',
	"SELECT FROM generate_series(1, 3) i, LATERAL eventstore.append_event('acct-1', 'Opened', jsonb_build_object('n', i))"
);
consume(100);
consume(100);    # polled until empty: everything sampled is acknowledged
my $acked = $node->safe_psql('postgres',
	"SELECT checkpoint_position FROM eventstore.subscriptions WHERE name = 'lazy'");
is( $acked,
	$node->safe_psql('postgres',
		"SELECT max(global_position) FROM eventstore.events WHERE stream = 'acct-1'"),
	'the subscription acknowledged its first three events');

# Then it stops polling while WAL piles up: unrelated bulk appends, one
# matching event each round, segment switches and checkpoints.
my $status = '';
my $rounds = 0;
for my $round (1 .. 40)
{
	$rounds = $round;
	$node->safe_psql(
		'postgres', qq{
SELECT FROM eventstore.append('bulk-$round',
	(SELECT jsonb_agg(jsonb_build_object('type', 'Bulk', 'data',
	                  jsonb_build_object('pad', repeat(md5(j::text), 30))))
	 FROM generate_series(1, 200) j));
SELECT FROM eventstore.append_event('acct-2', 'Deposited', '{"round": $round}');
SELECT FROM pg_switch_wal();
CHECKPOINT;
});
	$status = $node->safe_psql('postgres',
		"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$slot'");
	note "round $round: wal_status $status";
	# A few rounds at least, so that there is history to recover.
	last if $status eq 'lost' && $round >= 3;
}
is($status, 'lost', 'the slot of the idle subscription was invalidated');
is( $node->safe_psql(
		'postgres',
		"SELECT wal_status || ' ' || checkpoint_position FROM eventstore.subscriptions WHERE name = 'lazy'"
	),
	"lost $acked",
	'eventstore.subscriptions shows wal_status lost and the last acknowledged position');

# poll fails clearly.
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
\set VERBOSITY verbose
SELECT * FROM eventstore.poll('lazy');
});
isnt($ret, 0, 'poll fails');
like($stderr, qr/ERROR:  55000: .*subscription "lazy"/, 'with SQLSTATE 55000 and a message naming the subscription');
like($stderr, qr/DETAIL:  .*\b$acked\b/, 'the detail gives the last acknowledged position');
like($stderr, qr/HINT:  .*from_position => $acked\b/,
	'the hint says to recreate it with from_position => the last acknowledged position');
note $stderr;

# Polling within a transaction that already applied things: the error
# aborts it, nothing is acknowledged.
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
BEGIN;
INSERT INTO seen SELECT event_id, global_position FROM eventstore.poll('lazy', 10);
SELECT eventstore.ack('lazy');
COMMIT;
});
isnt($ret, 0, 'a consumer transaction fails as a whole');
is( $node->safe_psql(
		'postgres',
		"SELECT checkpoint_position FROM eventstore.subscriptions WHERE name = 'lazy'"),
	$acked,
	'and the checkpoint does not move');

# drop_subscription still works.
$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('lazy')");
is( $node->safe_psql(
		'postgres',
		"SELECT (SELECT count(*) FROM eventstore.subscriptions) || ' ' || "
		  . "(SELECT count(*) FROM pg_replication_slots)"),
	'0 0',
	'drop_subscription removes the subscription and its lost slot');

# Recreated from the last acknowledged position: everything matching
# after it comes from history, then live events, each once.
$node->safe_psql('postgres',
	"SELECT eventstore.create_subscription('lazy', stream_prefix => 'acct-', from_position => $acked)"
);
is( $node->safe_psql(
		'postgres',
		"SELECT wal_status || ' ' || checkpoint_position FROM eventstore.subscriptions WHERE name = 'lazy'"
	),
	"reserved $acked",
	'the recreated subscription starts at the last acknowledged position');
$node->safe_psql('postgres',
	"SELECT FROM eventstore.append_event('acct-3', 'Opened', '{\"live\": true}')");
consume(7) for 1 .. 10;
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (SELECT * FROM eventstore.events WHERE left(stream, 5) = 'acct-') e
FULL JOIN seen s USING (event_id)
WHERE e.event_id IS NULL OR s.event_id IS NULL OR e.global_position <> s.position
}),
	'0',
	'every matching event was delivered exactly once, before and after the loss');
is($node->safe_psql('postgres', 'SELECT count(*) FROM seen'),
	3 + $rounds + 1, "the $rounds events of the rounds and the live one were delivered after the loss");

# A slot dropped behind the subscription's back counts as lost too.
$slot = $node->safe_psql('postgres',
	"SELECT slot_name FROM eventstore.subscriptions WHERE name = 'lazy'");
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('$slot')");
my ($at, $at_ckpt) = split /\|/, $node->safe_psql('postgres',
	"SELECT recovery_position, checkpoint_position FROM eventstore.subscriptions WHERE name = 'lazy'");
cmp_ok($at, '<=', $at_ckpt, 'the recovery position is at or below the checkpoint');
is( $node->safe_psql(
		'postgres', "SELECT wal_status FROM eventstore.subscriptions WHERE name = 'lazy'"),
	'lost',
	'a subscription whose slot was dropped shows wal_status lost');
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
\set VERBOSITY verbose
SELECT * FROM eventstore.poll('lazy');
});
like($stderr, qr/ERROR:  55000: .*subscription "lazy".*\n.*\n?HINT:  .*from_position => $at\b/,
	'and poll fails with 55000 and the hint');
$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('lazy')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.subscriptions'),
	'0', 'drop_subscription works without a slot');

# Out of position order: 'early' takes a position and stays in flight
# while 'late' takes a higher one and commits; the consumer polls until
# empty and acknowledges 'late'; then 'early' commits and the slot is lost
# before it is delivered.
$node->safe_psql('postgres',
	"SELECT eventstore.create_subscription('ooo', stream_prefix => 'ooo-')");
my $inflight = $node->background_psql('postgres');
$inflight->query_safe('BEGIN');
my $early = $inflight->query_safe(
	q{SELECT global_position FROM eventstore.append_event('ooo-early', 'Early')});
my $late = $node->safe_psql('postgres',
	q{SELECT global_position FROM eventstore.append_event('ooo-late', 'Late')});
cmp_ok($early, '<', $late, 'the event in flight has the lower position');
my $seen_ooo = sub {
	$node->safe_psql(
		'postgres', q{
BEGIN;
INSERT INTO seen SELECT event_id, global_position FROM eventstore.poll('ooo')
	ON CONFLICT (event_id) DO NOTHING;
SELECT FROM eventstore.ack('ooo');
COMMIT;
});
};
$seen_ooo->() for 1 .. 2;
my ($ooo_ckpt, $ooo_rec) = split /\|/, $node->safe_psql('postgres',
	"SELECT checkpoint_position || '|' || recovery_position FROM eventstore.subscriptions WHERE name = 'ooo'");
is($ooo_ckpt, $late, 'the consumer acknowledged the later position');
is($ooo_rec, $early - 1, 'its recovery position stops below the event still in flight');
$inflight->query_safe('COMMIT');
$inflight->quit;
$node->safe_psql('postgres',
	"SELECT pg_drop_replication_slot(slot_name) FROM eventstore.subscription WHERE name = 'ooo'");
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
\set VERBOSITY verbose
SELECT * FROM eventstore.poll('ooo');
});
like($stderr, qr/DETAIL:  The last acknowledged position is $late; every matching event up to position $ooo_rec was acknowledged/,
	'the detail gives both the last acknowledged and the recovery position');
like($stderr, qr/HINT:  .*from_position => $ooo_rec\b/, 'the hint recreates it from the recovery position');
$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('ooo')");
$node->safe_psql('postgres',
	"SELECT eventstore.create_subscription('ooo', stream_prefix => 'ooo-', from_position => $ooo_rec)");
$seen_ooo->() for 1 .. 3;
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM seen s JOIN eventstore.events e USING (event_id) WHERE e.stream LIKE 'ooo-%'"),
	'2',
	'recreated from there, the subscription delivers the event committed late (and the acknowledged one again)');
$node->safe_psql('postgres', "SELECT eventstore.drop_subscription('ooo')");
$node->stop;
done_testing();
