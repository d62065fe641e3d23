# Crashes while the worker catches up an async projection: the read-model
# change and the checkpoint commit together, so after a restart the worker
# resumes from the checkpoint and every event is applied exactly once.
#
#  1. kill -9 of the postmaster in the middle of the catch-up;
#  2. SIGKILL of the projection worker itself, which makes the postmaster
#     reinitialize (crash recovery) and the launcher start a new worker.
#
# The handler sleeps about a millisecond per event so that the catch-up of
# 10,000 events lasts long enough to be interrupted twice; the test waits
# for progress (checkpoints), never for time.  The read model has UNIQUE
# (event_id): an event applied twice would stall the projection with an
# error instead of reaching lag 0.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use Time::HiRes qw(usleep);

my $node = eventstore_node('projection_crash', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '200ms'
eventstore.worker_batch_size = 100
restart_after_crash = on
log_statement = none
));

my $load = '';
for my $b (1 .. 10)
{
	$load .= "SELECT FROM eventstore.append('item-$b', (SELECT jsonb_agg(jsonb_build_object("
	  . "'type', 'Added', 'data', jsonb_build_object('n', i))) FROM generate_series(1, 1000) AS i));\n";
}
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION eventstore;
$load
CREATE TABLE rm (event_id uuid PRIMARY KEY, position bigint NOT NULL, stream text NOT NULL, n integer NOT NULL);
CREATE FUNCTION slow_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_sleep(0.0005);
	INSERT INTO rm VALUES (e.event_id, e.global_position, e.stream, (e.data->>'n')::integer);
END \$\$;
SELECT eventstore.create_projection('crashy', 'slow_h(eventstore.event)');
});

# The read model and the checkpoint always agree (same transaction).
my $consistent = q{
SELECT (SELECT count(*) FROM rm) = (SELECT count(*) FROM eventstore.events
                                     WHERE global_position <= eventstore.get_checkpoint('crashy'))
   AND NOT EXISTS (SELECT FROM rm WHERE position > eventstore.get_checkpoint('crashy'))
};

sub worker_pid
{
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker' AND datname = 'postgres'});
}

# Wait until the processes of a killed server are gone.
sub wait_gone
{
	for my $pid (@_)
	{
		my $waited = 0;
		usleep(100_000) while kill(0, $pid) && $waited++ < 10 * $PostgreSQL::Test::Utils::timeout_default;
	}
	return;
}

# 1. kill -9 of the postmaster mid catch-up.
ok( $node->poll_query_until(
		'postgres', q{SELECT checkpoint >= 1000 FROM eventstore.projections WHERE name = 'crashy'}),
	'the worker is catching up');
my $wpid = worker_pid();
my $at_kill = $node->safe_psql('postgres', q{SELECT checkpoint || ' ' || lag FROM eventstore.projections WHERE name = 'crashy'});
my ($cp1, $lag1) = split / /, $at_kill;
cmp_ok($lag1, '>', 0, "kill -9 of the postmaster with the projection at $cp1, lag $lag1");
my @pids = split /\n/, $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
$node->kill9;
wait_gone(@pids);
$node->start;
is($node->safe_psql('postgres', $consistent), 't', 'after the restart the read model matches the checkpoint');
cmp_ok($node->safe_psql('postgres', q{SELECT eventstore.get_checkpoint('crashy')}),
	'>=', $cp1, '  the checkpoint survived');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker'}),
	'a worker runs again');

# 2. SIGKILL of the worker mid catch-up: crash recovery of the whole server.
ok( $node->poll_query_until(
		'postgres', qq{SELECT checkpoint >= $cp1 + 1000 FROM eventstore.projections WHERE name = 'crashy'}),
	'the worker resumed and made progress');
$wpid = worker_pid();
my ($cp2, $lag2) = split / /,
  $node->safe_psql('postgres', q{SELECT checkpoint || ' ' || lag FROM eventstore.projections WHERE name = 'crashy'});
cmp_ok($lag2, '>', 0, "SIGKILL of the worker (PID $wpid) with the projection at $cp2, lag $lag2");
kill 'KILL', $wpid or die "could not kill $wpid";
# The server restarts all its processes; wait until it accepts
# connections again and a new worker runs.
ok( $node->poll_query_until(
		'postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker' AND pid <> $wpid}),
	'after crash recovery a new worker runs');
ok($node->log_contains("\\(PID $wpid\\) was terminated by signal 9"), '  (the server did go through crash recovery)');
is($node->safe_psql('postgres', $consistent), 't', '  the read model matches the checkpoint');

# The end: caught up, exactly once.  Crash recovery moves the position
# sequence ahead (up to 32 positions no event will ever have), so
# head_position may be above the last event; a caught-up projection still
# shows lag 0 (its checkpoint moves to the horizon).
ok( $node->poll_query_until(
		'postgres',
		q{SELECT checkpoint >= (SELECT max(global_position) FROM eventstore.events) OR error_count > 0
		    FROM eventstore.projections WHERE name = 'crashy'}),
	'the projection catches up (or fails)');
is( $node->safe_psql(
		'postgres', q{SELECT error_count = 0 AND last_error IS NULL FROM eventstore.projections WHERE name = 'crashy'}),
	't',
	'  without an error (an event applied twice would be a unique violation)');
ok( $node->poll_query_until(
		'postgres', q{SELECT lag = 0 FROM eventstore.projections WHERE name = 'crashy'}),
	'  the view shows lag 0');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM eventstore.events e FULL JOIN rm r USING (event_id)
 WHERE e.event_id IS NULL OR r.event_id IS NULL
    OR (e.global_position, e.stream, (e.data->>'n')::integer) IS DISTINCT FROM (r.position, r.stream, r.n)
}),
	'0',
	'the read model equals a from-scratch rebuild: every event exactly once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM rm'), '10000', '  10,000 events');

# The next append brings the checkpoint to the head.
$node->safe_psql('postgres', q{SELECT FROM eventstore.append_event('item-1', 'Added', '{"n": 0}')});
ok( $node->poll_query_until(
		'postgres', q{SELECT lag = 0 OR error_count > 0 FROM eventstore.projections WHERE name = 'crashy'}),
	'an event appended after the crashes is applied: lag 0');
is($node->safe_psql('postgres', q{SELECT count(*) FROM rm}), '10001', '  once');

$node->stop('fast');
my @bad = grep { /terminated by signal|Segmentation fault/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@bad, [ grep { /\(PID $wpid\) was terminated by signal 9/ } @bad ],
	'no process was terminated by a signal but the worker killed on purpose')
  or diag join("\n", @bad);

done_testing();
