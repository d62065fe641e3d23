# The projection worker's memory stays flat over thousands of rounds
# (README "Projections").  Three async projections follow single-event
# appends, each committed and applied by all three before the next one,
# so every append gives the worker at least one round.  The worker's
# memory is read from pg_log_backend_memory_contexts ("Grand total: ...
# used") while it sleeps between rounds, once after a warm-up and once
# after at least 3000 more rounds; a worker that keeps anything per round
# (the old one kept ~72 bytes) grows by far more than the bound checked
# here.  Rounds are counted from the worker's DEBUG1 line "eventstore
# worker: N projections due"; the naptime is an hour, so every round
# comes from a wake-up by an append.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('worker_memory', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '1h'
log_min_messages = debug1
log_statement = none
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE seen (projection text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO seen VALUES ('p1', 0), ('p2', 0), ('p3', 0);
CREATE FUNCTION h1(e eventstore.event) RETURNS void LANGUAGE sql AS $$ UPDATE seen SET n = n + 1 WHERE projection = 'p1' $$;
CREATE FUNCTION h2(e eventstore.event) RETURNS void LANGUAGE sql AS $$ UPDATE seen SET n = n + 1 WHERE projection = 'p2' $$;
CREATE FUNCTION h3(e eventstore.event) RETURNS void LANGUAGE sql AS $$ UPDATE seen SET n = n + 1 WHERE projection = 'p3' $$;
SELECT eventstore.create_projection('p1', 'h1(eventstore.event)');
SELECT eventstore.create_projection('p2', 'h2(eventstore.event)');
SELECT eventstore.create_projection('p3', 'h3(eventstore.event)');
-- n appends, each committed on its own and applied by all three
-- projections before the next one: at least one round each
CREATE PROCEDURE load(n integer) LANGUAGE plpgsql AS $$
DECLARE
	pos bigint;
BEGIN
	FOR i IN 1 .. n LOOP
		SELECT global_position INTO pos FROM eventstore.append_event('s-' || (i % 50), 'Tick');
		COMMIT;
		WHILE (SELECT min(eventstore.get_checkpoint(p)) FROM unnest(ARRAY['p1', 'p2', 'p3']) AS p) < pos LOOP
			PERFORM pg_sleep(0.0005);
		END LOOP;
	END LOOP;
END $$;
});

my $pid = worker_pid($node);
ok($pid, 'the projection worker runs');

# Rounds the worker has logged so far.
sub rounds { return worker_rounds($node, $pid); }

# Wait until every projection is caught up and the worker sleeps.
sub wait_idle
{
	$node->poll_query_until(
		'postgres', q{
SELECT (SELECT count(*) = 3 FROM eventstore.projections WHERE lag = 0 AND last_error IS NULL)
   AND (SELECT count(*) = 3 FROM seen WHERE n = (SELECT count(*) FROM eventstore.events))
   AND (SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = } . $pid . ')')
	  or die 'the projections did not catch up';
	return;
}

# The worker's memory in use, as it logs it at the top of its next pass.
sub worker_used
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $used;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		my $log = substr(slurp_file($node->logfile), $offset);
		if ($log =~ /\[$pid\] LOG:  Grand total: \d+ bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/)
		{
			$used = $1;
			last;
		}
		select(undef, undef, undef, 0.1);
	}
	die 'the worker did not log its memory' unless defined $used;
	return $used;
}

# Warm-up: caches and kept plans are filled.
$node->safe_psql('postgres', 'CALL load(500)');
wait_idle();
my $r0 = rounds();
my $used0 = worker_used();
note "after warm-up: $r0 rounds, $used0 bytes used";

# At least 3000 more rounds.
for (1 .. 50)
{
	last if rounds() - $r0 >= 3000;
	$node->safe_psql('postgres', 'CALL load(1000)');
}
wait_idle();
my $r1 = rounds();
my $used1 = worker_used();
note "after load: $r1 rounds, $used1 bytes used";

cmp_ok($r1 - $r0, '>=', 3000, 'the worker ran at least 3000 more rounds');
cmp_ok($used1 - $used0, '<', 16384,
	'its memory in use grew by less than 16 kB over them (less than 6 bytes a round)');

$node->stop;
done_testing();
