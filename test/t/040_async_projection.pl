# An async projection run by the background worker catches up 100,000
# events and then follows new appends (DESIGN.md section 6).
#
# The projection (stream_prefix 'acct-') keeps two read models: every
# event, and a balance per stream that only advances when the event is the
# stream's next version (so out-of-order application would show as a
# wrong count).  100 appends of 1000 events each are committed while the
# worker runs (90 to acct- streams, 10 to noise- streams the filter
# skips).  Once the projections view shows lag 0 the read models must
# equal a from-scratch SQL computation over eventstore.events; events
# appended afterwards are applied without anything but the worker (woken
# by the commit; no timing is asserted).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use Time::HiRes qw(time);

my $node = eventstore_node('async_projection', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '200ms'
log_statement = none
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE rm_events (
	event_id uuid PRIMARY KEY,
	position bigint NOT NULL,
	stream text NOT NULL,
	version bigint NOT NULL,
	type text NOT NULL);
CREATE TABLE rm_balance (
	stream text PRIMARY KEY,
	balance bigint NOT NULL,
	events bigint NOT NULL,
	last_version bigint NOT NULL);
CREATE FUNCTION balance_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	amount bigint := coalesce((e.data->>'amount')::bigint, 0)
	                 * CASE e.event_type WHEN 'Withdrawn' THEN -1 ELSE 1 END;
BEGIN
	INSERT INTO rm_events VALUES (e.event_id, e.global_position, e.stream, e.stream_version, e.event_type);
	INSERT INTO rm_balance AS b VALUES (e.stream, amount, 1, e.stream_version)
	ON CONFLICT (stream) DO UPDATE
	   SET balance = b.balance + EXCLUDED.balance, events = b.events + 1, last_version = EXCLUDED.last_version
	 WHERE b.last_version = EXCLUDED.last_version - 1;
END $$;
SELECT eventstore.create_projection('balances', 'balance_h(eventstore.event)', stream_prefix => 'acct-');
});

# The worker is there.
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'eventstore projection worker' AND datname = 'postgres'}),
	'one projection worker runs for the database');

# 100 appends of 1000 events, each its own transaction, while the worker
# runs.  The last one goes to an acct- stream, so that the caught-up
# checkpoint is the head.
my $load = '';
for my $b (1 .. 100)
{
	my $stream = ($b % 10 == 5) ? 'noise-' . ($b % 3) : 'acct-' . ($b % 20);
	$load .= "SELECT FROM eventstore.append('$stream', (SELECT jsonb_agg(jsonb_build_object("
	  . "'type', CASE WHEN i % 5 = 0 THEN 'Withdrawn' ELSE 'Deposited' END, "
	  . "'data', jsonb_build_object('amount', CASE WHEN i % 5 = 0 THEN i % 7 ELSE i % 100 END))) "
	  . "FROM generate_series(1, 1000) AS i));\n";
}
my $t0 = time;
$node->safe_psql('postgres', $load);
my $t_load = time - $t0;
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.events'), '100000', '100,000 events appended');

# Wait for the worker to catch up (or to record an error).
ok( $node->poll_query_until(
		'postgres',
		q{SELECT lag = 0 OR error_count > 0 FROM eventstore.projections WHERE name = 'balances'}),
	'the projection catches up or fails');
my $t_catchup = time - $t0;
note sprintf('load %.1f s; caught up %.1f s after the load started', $t_load, $t_catchup);
is( $node->safe_psql(
		'postgres',
		q{SELECT checkpoint = eventstore.head_position() AND lag = 0 AND error_count = 0 AND last_error IS NULL
		    FROM eventstore.projections WHERE name = 'balances'}),
	't',
	'the view: checkpoint at the head, lag 0, no error');

is($node->safe_psql('postgres', 'SELECT count(*) FROM rm_events'), '90000', 'the read model has the 90,000 acct- events');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (SELECT event_id, global_position, stream, stream_version, event_type
                        FROM eventstore.events WHERE stream LIKE 'acct-%') e
FULL JOIN rm_events r USING (event_id)
WHERE e.event_id IS NULL OR r.event_id IS NULL
   OR (e.global_position, e.stream, e.stream_version, e.event_type) IS DISTINCT FROM (r.position, r.stream, r.version, r.type)
}),
	'0',
	'the event read model equals the acct- events, each once (nothing missing, nothing extra)');

my $from_scratch = q{
SELECT stream, sum(CASE event_type WHEN 'Withdrawn' THEN -1 ELSE 1 END * coalesce((data->>'amount')::bigint, 0)),
       count(*), max(stream_version)
  FROM eventstore.events WHERE stream LIKE 'acct-%' GROUP BY stream
};
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM (
	(SELECT * FROM rm_balance EXCEPT ALL ($from_scratch))
	UNION ALL
	(($from_scratch) EXCEPT ALL SELECT * FROM rm_balance)) d
}),
	'0',
	'the balances equal a from-scratch computation (and were applied in stream order)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM rm_balance'), '18', '  for the 18 acct- streams');

# Appends afterwards are applied by the worker alone.
$node->safe_psql(
	'postgres', q{
SELECT FROM eventstore.append_event('acct-7', 'Deposited', '{"amount": 1000}');
SELECT FROM eventstore.append_event('noise-1', 'Deposited', '{"amount": 1}');
SELECT FROM eventstore.append('acct-new', '[{"type": "Deposited", "data": {"amount": 5}},
                                           {"type": "Withdrawn", "data": {"amount": 2}}]');
});
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM rm_balance WHERE stream = 'acct-new' AND balance = 3 AND events = 2}),
	'events appended after the catch-up are applied');
is( $node->safe_psql(
		'postgres', qq{
SELECT (SELECT count(*) FROM rm_events) = 90003
   AND NOT EXISTS ((SELECT * FROM rm_balance EXCEPT ALL ($from_scratch))
                   UNION ALL (($from_scratch) EXCEPT ALL SELECT * FROM rm_balance))
   AND (SELECT lag = 0 AND error_count = 0 FROM eventstore.projections WHERE name = 'balances')
}),
	't',
	'  all of them, once; the read models still equal the from-scratch computation');

unlike(slurp_file($node->logfile), qr/eventstore projection worker.*exited with exit code/,
	'the worker never exited with an error before the shutdown');
$node->stop('fast');
unlike(slurp_file($node->logfile), qr/terminated by signal|Segmentation fault/, 'no process was terminated by a signal');

done_testing();
