# A handler that fails on one event stalls its async projection right
# before that event, with the error recorded and retried with backoff;
# other projections keep going; once the handler is fixed (CREATE OR
# REPLACE FUNCTION) the projection resumes: no event lost, none applied
# twice (DESIGN.md section 6: "it never skips silently").
#
# worker_batch_size is 100 and the poisoned event is in the middle of a
# batch, so the events of that batch before it are applied and
# checkpointed, and the failing one is not.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('projection_failure', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '200ms'
eventstore.worker_batch_size = 100
log_statement = none
));

# 20 appends of 100 events; the 50th event of the 13th append is poisoned.
my $load = '';
for my $b (1 .. 20)
{
	$load .= "SELECT FROM eventstore.append('order-$b', (SELECT jsonb_agg(jsonb_build_object("
	  . "'type', 'Placed', 'data', CASE WHEN $b = 13 AND i = 50 THEN jsonb_build_object('n', i, 'poison', true) "
	  . "ELSE jsonb_build_object('n', i) END)) FROM generate_series(1, 100) AS i));\n";
}
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION eventstore;
$load
CREATE TABLE rm_good (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE rm_picky (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE FUNCTION good_h(e eventstore.event) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO rm_good VALUES (e.event_id, e.global_position)
\$\$;
CREATE FUNCTION picky_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	IF e.data ? 'poison' THEN
		RAISE EXCEPTION 'poisoned event at %', e.global_position;
	END IF;
	INSERT INTO rm_picky VALUES (e.event_id, e.global_position);
END \$\$;
SELECT eventstore.create_projection('good', 'good_h(eventstore.event)');
SELECT eventstore.create_projection('picky', 'picky_h(eventstore.event)');
});
my $poison = $node->safe_psql('postgres', q{SELECT global_position FROM eventstore.events WHERE data ? 'poison'});
my $before = $node->safe_psql('postgres',
	"SELECT max(global_position) FROM eventstore.events WHERE global_position < $poison");
note "poisoned event at position $poison";

# The projection stalls right before the poisoned event.
ok( $node->poll_query_until(
		'postgres', q{SELECT error_count >= 1 FROM eventstore.projections WHERE name = 'picky'}),
	'picky records an error');
is( $node->safe_psql(
		'postgres',
		q{SELECT checkpoint || ' ' || last_error || ' ' || (lag > 0) || ' ' || (retry_at > last_error_at)
		    FROM eventstore.projections WHERE name = 'picky'}),
	"$before poisoned event at $poison true true",
	'the view: checkpoint right before the poisoned event, last_error, lag, a retry time after the error');
is( $node->safe_psql(
		'postgres', qq{SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE global_position < $poison)
		                  AND max(position) = $before FROM rm_picky}),
	't',
	'every event before the poisoned one is applied, none after it');

# It is retried, no earlier than retry_at, backing off further each time.
my ($count1, $retry1, $delay1) = split /\|/,
  $node->safe_psql('postgres',
	q{SELECT error_count, retry_at, extract(epoch FROM retry_at - last_error_at) FROM eventstore.projections WHERE name = 'picky'});
ok( $node->poll_query_until(
		'postgres',
		"SELECT error_count >= $count1 + 2 FROM eventstore.projections WHERE name = 'picky'"),
	'it is retried: error_count grows');
is( $node->safe_psql(
		'postgres',
		qq{SELECT (retry_at - last_error_at) > '$delay1 s'::interval
		      AND last_error_at >= '$retry1'::timestamptz
		      AND checkpoint = $before AND last_error = 'poisoned event at $poison'
		    FROM eventstore.projections WHERE name = 'picky'}),
	't',
	'  not before its retry time, with a longer backoff, still stalled at the same place');

# The other projection is not held up, also not by appends made now.
$node->safe_psql('postgres',
	q{SELECT FROM eventstore.append('order-late', '[{"type": "Placed"}, {"type": "Placed"}]')});
ok( $node->poll_query_until(
		'postgres',
		q{SELECT lag = 0 AND error_count = 0 FROM eventstore.projections WHERE name = 'good'}),
	'good catches up, including events appended after picky failed');
is( $node->safe_psql(
		'postgres',
		q{SELECT (SELECT count(*) FROM rm_good) = (SELECT count(*) FROM eventstore.events)
		     AND NOT EXISTS (SELECT FROM eventstore.events e LEFT JOIN rm_good r USING (event_id) WHERE r.event_id IS NULL)}),
	't',
	'good applied every event');
is($node->safe_psql('postgres', q{SELECT checkpoint FROM eventstore.projections WHERE name = 'picky'}),
	$before, 'picky is still stalled');

# Fix the handler: picky resumes from the poisoned event.
$node->safe_psql(
	'postgres', q{
CREATE OR REPLACE FUNCTION picky_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO rm_picky VALUES (e.event_id, e.global_position);
END $$;
});
ok( $node->poll_query_until(
		'postgres',
		q{SELECT lag = 0 FROM eventstore.projections WHERE name = 'picky'}),
	'after the fix picky catches up');
is( $node->safe_psql(
		'postgres',
		q{SELECT last_error IS NULL AND error_count = 0 AND retry_at IS NULL FROM eventstore.projections WHERE name = 'picky'}),
	't',
	'  and its error is cleared');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM eventstore.events e FULL JOIN rm_picky r USING (event_id)
 WHERE e.event_id IS NULL OR r.event_id IS NULL OR e.global_position <> r.position
}),
	'0',
	'picky\'s read model holds every event once, the poisoned one included: nothing lost, nothing repeated');
ok(!$node->log_contains('duplicate key value violates unique constraint'), 'no event was ever applied twice');

unlike(slurp_file($node->logfile), qr/eventstore projection worker.*exited with exit code/,
	'the worker never exited with an error');
$node->stop('fast');
unlike(slurp_file($node->logfile), qr/terminated by signal|Segmentation fault/, 'no process was terminated by a signal');

done_testing();
