# Batch handlers (DESIGN.md section 6): handler(events eventstore.event[])
# gets a whole batch in position order in one call, run by the real
# background worker, with the guarantees of a per-event handler:
#
# 1. It applies every event once, in calls of worker_batch_size events.
# 2. A failing event in the middle of a batch, for a batch handler and for
#    a per-event handler: the events before it are applied and
#    checkpointed, the failing one is not, the error is recorded and the
#    log names its position; after the fix it resumes, nothing lost or
#    repeated.
# 3. Exactly once across a crash: the server is killed (SIGKILL) while a
#    batch projection catches up, and after the restart the read model
#    holds every event once.
# 4. Security: a batch handler runs as the projection's owner with the
#    restrictions of a per-event one (test/t/060_security.pl): no way to
#    the worker's superuser, no temporary objects, EXECUTE checked at every
#    call, its own search_path must end with pg_temp.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('batch_handlers', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '100ms'
eventstore.worker_batch_size = 100
synchronous_commit = on
));

sub su { return $node->safe_psql('postgres', $_[0]); }

sub wait_for
{
	my ($sql, $name) = @_;
	ok($node->poll_query_until('postgres', $sql), $name);
	return;
}

# 20 appends of 100 events; the 50th event of the 13th append is poisoned.
my $load = '';
for my $b (1 .. 20)
{
	$load .= "SELECT FROM eventstore.append('order-$b', (SELECT jsonb_agg(jsonb_build_object("
	  . "'type', 'Placed', 'data', CASE WHEN $b = 13 AND i = 50 THEN jsonb_build_object('n', i, 'poison', true) "
	  . "ELSE jsonb_build_object('n', i) END)) FROM generate_series(1, 100) AS i));\n";
}
su(qq{
CREATE EXTENSION eventstore;
$load
CREATE TABLE calls (projection text, n integer, first bigint, last bigint, ordered boolean);
CREATE TABLE rm_bgood (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE rm_bpicky (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE rm_epicky (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE FUNCTION bgood_h(events eventstore.event[]) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO calls SELECT 'bgood', count(*), min(u.global_position), max(u.global_position),
	       coalesce(bool_and(u.global_position > u.prev), true)
	  FROM (SELECT v.global_position, lag(v.global_position) OVER (ORDER BY v.o) AS prev
	          FROM unnest(events) WITH ORDINALITY AS v(global_position, stream, stream_version, event_id,
	                                                  event_type, data, metadata, created_at, o)) AS u;
	INSERT INTO rm_bgood SELECT u.event_id, u.global_position FROM unnest(events) AS u
\$\$;
CREATE FUNCTION bpicky_h(events eventstore.event[]) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO rm_bpicky SELECT u.event_id, u.global_position FROM unnest(events) AS u;
	IF EXISTS (SELECT FROM unnest(events) AS u WHERE u.data ? 'poison') THEN
		RAISE EXCEPTION 'poisoned batch';
	END IF;
END \$\$;
CREATE FUNCTION epicky_h(e eventstore.event) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	IF e.data ? 'poison' THEN
		RAISE EXCEPTION 'poisoned event at %', e.global_position;
	END IF;
	INSERT INTO rm_epicky VALUES (e.event_id, e.global_position);
END \$\$;
SELECT eventstore.create_projection('bgood', 'bgood_h(eventstore.event[])');
SELECT eventstore.create_projection('bpicky', 'bpicky_h(eventstore.event[])');
SELECT eventstore.create_projection('epicky', 'epicky_h(eventstore.event)');
});
my $poison = su(q{SELECT global_position FROM eventstore.events WHERE data ? 'poison'});
my $before = su("SELECT max(global_position) FROM eventstore.events WHERE global_position < $poison");
note "poisoned event at position $poison";

# ---------------------------------------------------------------------
# 1. A batch handler applies every event once, a batch a call.
wait_for(q{SELECT lag = 0 AND error_count = 0 FROM eventstore.projections WHERE name = 'bgood'},
	'bgood catches up');
is( su(q{SELECT count(*) = (SELECT count(*) FROM eventstore.events)
           AND NOT EXISTS (SELECT FROM eventstore.events e LEFT JOIN rm_bgood r USING (event_id) WHERE r.event_id IS NULL)
          FROM rm_bgood}),
	't', 'bgood applied every event once');
is( su(q{SELECT count(*) || ' ' || max(n) || ' ' || bool_and(ordered) || ' ' || sum(n) FROM calls WHERE projection = 'bgood'}),
	'20 100 true 2000', '  in 20 calls of at most 100 events (worker_batch_size), each in position order');
is( su(q{SELECT count(*) FROM calls c1 JOIN calls c2 ON c1.first < c2.first AND c2.first <= c1.last}),
	'0', '  the calls do not overlap');

# ---------------------------------------------------------------------
# 2. A failing event in the middle of a batch.
for my $p (qw(bpicky epicky))
{
	wait_for("SELECT error_count >= 1 FROM eventstore.projections WHERE name = '$p'", "$p records an error");
	is( su("SELECT checkpoint || ' ' || (lag > 0) || ' ' || (retry_at > last_error_at) FROM eventstore.projections WHERE name = '$p'"),
		"$before true true", "  $p: checkpoint right before the failing event, lag, a retry time");
	is( su("SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE global_position < $poison)
	           AND max(position) = $before FROM rm_$p"),
		't', "  $p: every event before the failing one is applied, none after it");
	ok($node->log_contains(qr/projection "$p" stalls at position $poison:/),
		"  $p: the log names the failing event's position");
}
is(su(q{SELECT last_error FROM eventstore.projections WHERE name = 'bpicky'}), 'poisoned batch',
	'bpicky: last_error is the batch handler\'s error');
is(su(q{SELECT last_error FROM eventstore.projections WHERE name = 'epicky'}), "poisoned event at $poison",
	'epicky: last_error is the handler\'s error');

su(q{
CREATE OR REPLACE FUNCTION bpicky_h(events eventstore.event[]) RETURNS void LANGUAGE sql AS $$
	INSERT INTO rm_bpicky SELECT u.event_id, u.global_position FROM unnest(events) AS u
$$;
CREATE OR REPLACE FUNCTION epicky_h(e eventstore.event) RETURNS void LANGUAGE sql AS $$
	INSERT INTO rm_epicky VALUES (e.event_id, e.global_position)
$$;
});
for my $p (qw(bpicky epicky))
{
	wait_for("SELECT lag = 0 AND error_count = 0 AND last_error IS NULL FROM eventstore.projections WHERE name = '$p'",
		"after the fix $p catches up and its error is cleared");
	is( su("SELECT count(*) FROM eventstore.events e FULL JOIN rm_$p r USING (event_id)
	         WHERE e.event_id IS NULL OR r.event_id IS NULL OR e.global_position <> r.position"),
		'0', "  $p: every event once, the failing one included");
}

# ---------------------------------------------------------------------
# 3. Exactly once across a crash (SIGKILL to the postmaster mid catch-up).
su(q{
SELECT count(*) FROM generate_series(1, 60) AS s
 CROSS JOIN LATERAL eventstore.append('bulk-' || s, (SELECT jsonb_agg(jsonb_build_object('type', 'Bulk')) FROM generate_series(1, 500))) AS a;
CREATE TABLE rm_bcrash (event_id uuid PRIMARY KEY, position bigint NOT NULL);
-- slow enough to be caught in the middle: ~20 ms a batch of 100
CREATE FUNCTION bcrash_h(events eventstore.event[]) RETURNS void LANGUAGE sql AS $$
	SELECT pg_sleep(0.02);
	INSERT INTO rm_bcrash SELECT u.event_id, u.global_position FROM unnest(events) AS u
$$;
SELECT eventstore.create_projection('bcrash', 'bcrash_h(eventstore.event[])');
});
wait_for(q{SELECT checkpoint > 5000 FROM eventstore.projections WHERE name = 'bcrash'}, 'bcrash is catching up');
my $at_crash = su(q{SELECT checkpoint || ' ' || lag FROM eventstore.projections WHERE name = 'bcrash'});
note "killed at checkpoint and lag $at_crash";
my @pids = split /\n/, su('SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
$node->kill9;
for my $pid (@pids)     # the killed server's processes are gone
{
	my $waited = 0;
	usleep(100_000) while kill(0, $pid) && $waited++ < 10 * $PostgreSQL::Test::Utils::timeout_default;
}
$node->start;
is( su(q{SELECT (SELECT count(*) FROM rm_bcrash) = (SELECT count(*) FROM eventstore.events e
                                                    WHERE e.global_position <= eventstore.get_checkpoint('bcrash'))
           AND NOT EXISTS (SELECT FROM rm_bcrash WHERE position > eventstore.get_checkpoint('bcrash'))}),
	't', 'after the restart the read model matches the checkpoint');
wait_for(q{SELECT lag = 0 FROM eventstore.projections WHERE name = 'bcrash'}, 'after the crash bcrash catches up');
is( su(q{SELECT error_count || ' ' || (SELECT count(*) FROM eventstore.events e FULL JOIN rm_bcrash r USING (event_id)
                                       WHERE e.event_id IS NULL OR r.event_id IS NULL)
          FROM eventstore.projections WHERE name = 'bcrash'}),
	'0 0', '  every event once: none lost, none applied twice (no error)');

# ---------------------------------------------------------------------
# 4. Security: the roles of the README; mallory holds es_consumer.
su(readme_block('roles'));
su(q{
CREATE ROLE mallory LOGIN IN ROLE es_consumer;
CREATE SCHEMA mallory AUTHORIZATION mallory;
});

# psql as mallory; returns (exit code, stdout, stderr)
sub as_mallory
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		connstr => $node->connstr('postgres') . ' user=mallory',
		extra_params => ['-v', 'VERBOSITY=verbose']);
	return ($rc, $out, $err);
}

my ($rc, $out, $err) = as_mallory(q{
CREATE TABLE mallory.log (msg text);
CREATE FUNCTION mallory.bplant(events eventstore.event[]) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO mallory.log VALUES ('plant ran as ' || current_user || ' in a session of ' || session_user
	                                || ' with ' || cardinality(events) || ' events');
	BEGIN
		EXECUTE $q$SELECT eventstore_internal.create_projection(session_user::regrole, '', 'm_int', 'mallory.bplant(eventstore.event[])', 'async', NULL, NULL)$q$;
		INSERT INTO mallory.log VALUES ('internal: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.log VALUES ('internal: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'SET ROLE ' || quote_ident(session_user);
		INSERT INTO mallory.log VALUES ('set role: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.log VALUES ('set role: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'SET SESSION AUTHORIZATION ' || quote_ident(session_user);
		INSERT INTO mallory.log VALUES ('session authorization: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.log VALUES ('session authorization: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
		INSERT INTO mallory.log VALUES ('alter role: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.log VALUES ('alter role: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'CREATE TEMPORARY TABLE left_behind (x int)';
		INSERT INTO mallory.log VALUES ('temp table: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.log VALUES ('temp table: ' || SQLSTATE); END;
END $f$;
SELECT eventstore.create_projection('m_bplant', 'mallory.bplant(eventstore.event[])', 'async', 'order-1');
});
is($rc, 0, 'mallory creates an async projection whose batch handler tries every way out') or diag($err);
wait_for(q{SELECT lag = 0 FROM eventstore.projections WHERE name = 'm_bplant'}, '  the worker runs it');
my $log = su(q{SELECT string_agg(msg, E'\n' ORDER BY msg) FROM mallory.log});
like($log, qr/^plant ran as mallory in a session of \S+ with \d+ events$/m, 'the batch handler ran, as mallory, in the worker');
unlike($log, qr/: done$/m, 'no way out succeeded') or diag($log);
like($log, qr/^internal: 42501$/m, '  the internal create_projection is out of reach');
like($log, qr/^set role: 42501$/m, '  SET ROLE is refused');
like($log, qr/^session authorization: 42501$/m, '  SET SESSION AUTHORIZATION is refused');
like($log, qr/^alter role: 42501$/m, '  ALTER ROLE is refused');
like($log, qr/^temp table: 42501$/m, '  a temporary table is refused (security-restricted operation)');
is(su(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'mallory is not a superuser');
is(su(q{SELECT count(*) FROM eventstore.projection AS p JOIN pg_roles AS r ON r.oid = p.owner
         WHERE r.rolsuper AND p.name NOT IN ('bgood', 'bpicky', 'epicky', 'bcrash')}),
	'0', 'no projection the handler tried to make is owned by a superuser');

# EXECUTE is checked at every call, for a batch handler too.
($rc, $out, $err) = as_mallory(q{
CREATE TABLE mallory.model (who text, n integer);
CREATE FUNCTION mallory.bcount(events eventstore.event[]) RETURNS void LANGUAGE sql AS $f$
	INSERT INTO mallory.model VALUES (current_user, cardinality(events))
$f$;
SELECT eventstore.create_projection('m_bcount', 'mallory.bcount(eventstore.event[])', 'async', 'order-2');
});
is($rc, 0, 'mallory creates a batch projection') or diag($err);
wait_for(q{SELECT lag = 0 FROM eventstore.projections WHERE name = 'm_bcount'}, '  the worker runs it');
is(su(q{SELECT string_agg(DISTINCT who, ',') || ' ' || sum(n) FROM mallory.model}), 'mallory 200',
	'  as mallory, with the 200 events of order-2 and order-20');
su(q{REVOKE EXECUTE ON FUNCTION mallory.bcount(eventstore.event[]) FROM mallory, PUBLIC;
     SELECT eventstore.append_event('order-2', 'Placed')});
($rc, $out, $err) = as_mallory(q{SELECT eventstore.run_projection('m_bcount')});
ok($rc != 0 && $err =~ /ERROR:\s+42501:/ && $err =~ /permission denied for function mallory\.bcount/,
	'without EXECUTE the batch handler no longer runs (42501)') or diag($err);
is(su(q{SELECT sum(n) FROM mallory.model}), '200', '  not once more');

# A batch handler's own search_path must end with pg_temp.
($rc, $out, $err) = as_mallory(q{
CREATE FUNCTION mallory.bpath(events eventstore.event[]) RETURNS void LANGUAGE sql
	SET search_path = mallory, pg_catalog AS $f$ SELECT $f$;
SELECT eventstore.create_projection('m_bpath', 'mallory.bpath(eventstore.event[])');
});
ok($rc != 0 && $err =~ /ERROR:\s+42501:/ && $err =~ /sets a search_path that does not end with pg_temp/,
	'a batch handler whose search_path does not end with pg_temp is refused') or diag($err);

# An inline projection cannot have a batch handler.
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT eventstore.create_projection('b_inline', 'bgood_h(eventstore.event[])', 'inline')},
	extra_params => ['-v', 'VERBOSITY=verbose']);
ok($rc != 0 && $err =~ /ERROR:\s+0A000: an inline projection cannot have a batch handler/,
	'an inline projection with a batch handler is refused (0A000)') or diag($err);

ok(!$node->log_contains('duplicate key value violates unique constraint'), 'no event was ever applied twice');
unlike(slurp_file($node->logfile), qr/eventstore projection worker.*exited with exit code/,
	'the worker never exited with an error');
$node->stop('fast');

done_testing();
