# The security model (DESIGN.md section 7, README "Privileges"), tried as
# an attacker holding exactly the README's grants.  The roles are made by
# the README's own block (<!-- test: roles -->); the login roles are
# members of them:
#   mallory  es_consumer  the attacker
#   alice    es_consumer  another tenant
#   wendy    es_writer    an appender (and, in the hijack, the attacker)
#   ada      es_admin     owns an inline projection and a secret table
#   eve      es_admin     an administrator gone rogue
#
# 1. Async escalation, through the real background worker: a handler that
#    tries every way to act as the worker's superuser (0.1.0's
#    _create_projection(owner => session_user), the internal functions,
#    SET ROLE / SESSION AUTHORIZATION, ALTER ROLE) stays mallory.
# 2. Inline escalation: the same from inside a superuser's append.
# 3. search_path hijack: wendy appends with search_path = evil, pg_catalog
#    and her own evil.lower(text) / evil.board; ada's handler, which calls
#    lower() and writes board unqualified, still resolves both in ada's
#    own path, and ada's secret never reaches wendy.  Also a temporary
#    table that would shadow the read model, and a handler that tries to
#    leave settings or temporary objects in wendy's session.
# 4. Tenants: every function over subscriptions, projections, checkpoints
#    and processed marks refuses another role (42501, naming the owner);
#    the views show each role its own rows.
# 5. Slots: a role without superuser cannot take the last
#    eventstore.reserved_replication_slots; a superuser still can.
# 6. The README's lists give each role exactly the functions documented,
#    and nothing in eventstore_internal, even after GRANT ... ON ALL
#    FUNCTIONS IN SCHEMA eventstore.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('security', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '100ms'
synchronous_commit = on
));

$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
$node->safe_psql('postgres', readme_block('roles'));
$node->safe_psql(
	'postgres', q{
CREATE ROLE mallory LOGIN IN ROLE es_consumer;
CREATE ROLE alice LOGIN IN ROLE es_consumer;
CREATE ROLE wendy LOGIN IN ROLE es_writer;
CREATE ROLE ada LOGIN IN ROLE es_admin;
CREATE ROLE eve LOGIN IN ROLE es_admin;
CREATE ROLE alice_ops LOGIN IN ROLE alice;
CREATE SCHEMA mallory AUTHORIZATION mallory;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA ada AUTHORIZATION ada;
CREATE SCHEMA eve AUTHORIZATION eve;
CREATE SCHEMA evil AUTHORIZATION wendy;
});

# psql as a login role; returns (exit code, stdout, stderr)
sub as
{
	my ($role, $sql, %opts) = @_;
	my ($out, $err) = ('', '');
	my $connstr = $node->connstr('postgres') . " user=$role";
	local $ENV{PGOPTIONS} = $opts{pgoptions} if defined $opts{pgoptions};
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		connstr => $connstr, extra_params => ['-v', 'VERBOSITY=verbose']);
	return ($rc, $out, $err);
}

sub as_ok
{
	my ($role, $sql, $name, %opts) = @_;
	my ($rc, $out, $err) = as($role, $sql, %opts);
	is($rc, 0, $name) or diag($err);
	return $out;
}

# a statement as $role must fail with SQLSTATE $state and a message matching $re
sub as_fails
{
	my ($role, $sql, $state, $re, $name) = @_;
	my ($rc, $out, $err) = as($role, $sql);
	ok($rc != 0 && $err =~ /ERROR:\s+\Q$state\E:/ && $err =~ $re, $name)
	  or diag("rc $rc: $err");
	return;
}

sub su { return $node->safe_psql('postgres', $_[0]); }

sub wait_caught_up
{
	my ($names) = @_;
	$node->poll_query_until('postgres',
		"SELECT bool_and(checkpoint >= eventstore.head_position() OR error_count > 0)
		   FROM eventstore.projections WHERE name IN ($names)")
	  or die "projections $names did not catch up";
	return;
}

# The handler body every escalation attempt shares: each way out, tried in
# its own block, its SQLSTATE logged; and who it ran as.
sub escalation_handler
{
	my ($schema, $victim_name) = @_;
	return qq{
CREATE TABLE $schema.log (msg text);
CREATE FUNCTION $schema.elevate(e eventstore.event) RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
	INSERT INTO $schema.log VALUES ('elevate ran as ' || current_user);
	EXECUTE 'ALTER ROLE $schema SUPERUSER';
END \$f\$;
CREATE FUNCTION $schema.plant(e eventstore.event) RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
	INSERT INTO $schema.log VALUES ('plant ran as ' || current_user || ' in a session of ' || session_user);
	BEGIN   -- 0.1.0's hole
		EXECUTE \$q\$SELECT eventstore._create_projection('${victim_name}_old', '$schema.elevate(eventstore.event)', 'async', NULL, NULL, session_user::regrole)\$q\$;
		INSERT INTO $schema.log VALUES ('old path: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('old path: ' || SQLSTATE); END;
	BEGIN
		EXECUTE \$q\$SELECT eventstore_internal.create_projection(session_user::regrole, '', '${victim_name}_int', '$schema.elevate(eventstore.event)', 'async', NULL, NULL)\$q\$;
		INSERT INTO $schema.log VALUES ('internal: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('internal: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'SET ROLE ' || quote_ident(session_user);
		INSERT INTO $schema.log VALUES ('set role: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('set role: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'SET SESSION AUTHORIZATION ' || quote_ident(session_user);
		INSERT INTO $schema.log VALUES ('session authorization: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('session authorization: ' || SQLSTATE); END;
	BEGIN
		EXECUTE 'ALTER ROLE $schema SUPERUSER';
		INSERT INTO $schema.log VALUES ('alter role: done');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('alter role: ' || SQLSTATE); END;
	BEGIN   -- the public API acts as the handler's owner
		PERFORM eventstore.create_projection('${victim_name}_api', '$schema.elevate(eventstore.event)');
		INSERT INTO $schema.log VALUES ('api: created');
	EXCEPTION WHEN OTHERS THEN INSERT INTO $schema.log VALUES ('api: ' || SQLSTATE); END;
END \$f\$;
};
}

sub log_of
{
	my ($schema) = @_;
	return su("SELECT string_agg(msg, E'\\n' ORDER BY msg) FROM $schema.log");
}

sub superuser_owned_projections
{
	return su(
		"SELECT count(*) FROM eventstore.projection AS p JOIN pg_roles AS r ON r.oid = p.owner WHERE r.rolsuper");
}

# ---------------------------------------------------------------------
# 1. Async escalation through the worker (its session_user is the
# bootstrap superuser).
as_ok('mallory', escalation_handler('mallory', 'm')
	  . q{SELECT eventstore.create_projection('m_plant', 'mallory.plant(eventstore.event)', 'async');},
	'mallory creates an async projection whose handler tries every way out');
as_ok('wendy', q{SELECT eventstore.append_event('acct-1', 'Opened')}, 'wendy appends');
wait_caught_up("'m_plant'");
# what the handler created (as mallory) has run too
as_ok('wendy', q{SELECT eventstore.append_event('acct-1', 'Deposited')}, 'wendy appends again');
wait_caught_up("'m_plant', 'm_api'");

my $log = log_of('mallory');
like($log, qr/^plant ran as mallory in a session of \S+$/m, 'the handler ran, as mallory, in the worker');
unlike($log, qr/: done$/m, 'no way out succeeded') or diag($log);
like($log, qr/^old path: 42883$/m, "  0.1.0's _create_projection(owner => session_user) is gone");
like($log, qr/^internal: 42501$/m, '  the internal create_projection is out of reach');
like($log, qr/^set role: 42501$/m, '  SET ROLE is refused');
like($log, qr/^session authorization: 42501$/m, '  SET SESSION AUTHORIZATION is refused');
like($log, qr/^alter role: 42501$/m, '  ALTER ROLE is refused');
is(su(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'mallory is not a superuser');
is(superuser_owned_projections(), '0', 'no projection is owned by a superuser');
is(su(q{SELECT owner::text || ': ' || last_error FROM eventstore.projections WHERE name = 'm_api'}),
	'mallory: must be superuser to alter superuser roles or change superuser attribute',
	"a projection the handler made is mallory's, and its ALTER ROLE fails as mallory's");

# ---------------------------------------------------------------------
# 2. Inline escalation: eve's inline projection, run inside a superuser's
# append (session_user postgres) and a writer's.
as_ok('eve', escalation_handler('eve', 'e')
	  . q{SELECT eventstore.create_projection('e_plant', 'eve.plant(eventstore.event)', 'inline', stream_prefix => 'inl-');},
	'eve creates an inline projection whose handler tries every way out');
su(q{SELECT eventstore.append_event('inl-1', 'X')});
as_ok('wendy', q{SELECT eventstore.append_event('inl-2', 'X')}, 'wendy appends to it');
wait_caught_up("'e_api'");
$log = log_of('eve');
like($log, qr/^plant ran as eve in a session of postgres$/m, 'the handler ran as eve inside the superuser\'s append');
like($log, qr/^plant ran as eve in a session of wendy$/m, '  and inside wendy\'s');
unlike($log, qr/: done$/m, 'no way out succeeded') or diag($log);
is(su(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'eve'}), 'f', 'eve is not a superuser');
is(superuser_owned_projections(), '0', 'no projection is owned by a superuser');
is(su(q{SELECT count(*) FROM eventstore.projection WHERE owner = 'wendy'::regrole}), '0',
	'nor by the appender');

# ---------------------------------------------------------------------
# 3. The search_path hijack.
as_ok('ada', q{
CREATE TABLE ada.secret (s text);
INSERT INTO ada.secret VALUES ('the launch codes');
CREATE TABLE ada.board (name text, state text);
CREATE FUNCTION ada.on_board(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO board VALUES (lower(e.data ->> 'name'), current_setting('search_path'));
	PERFORM set_config('application_name', 'set by ada', false);
	BEGIN
		CREATE TEMP TABLE ada_was_here (x int);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO board VALUES ('temp table: ' || SQLSTATE, NULL);
	END;
END $f$;
SET search_path = ada, public;
SELECT eventstore.create_projection('ada_board', 'ada.on_board(eventstore.event)', 'inline', stream_prefix => 'board-');
}, 'ada creates an inline projection from a session with search_path ada, public');
as_ok('wendy', q{
CREATE TABLE evil.stolen (s text);
CREATE TABLE evil.board (name text, state text);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.stolen, evil.board TO PUBLIC;
CREATE FUNCTION evil.lower(t text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	BEGIN
		INSERT INTO evil.stolen SELECT s FROM ada.secret;
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	RETURN pg_catalog.lower(t);
END $f$;
}, 'wendy plants evil.lower and evil.board');

my $out = as_ok('wendy', q{
SELECT eventstore.append_event('board-1', 'Named', '{"name": "FROM PGOPTIONS"}');
SHOW application_name;
}, 'wendy appends with search_path = evil, pg_catalog from her connection options',
	pgoptions => '-c search_path=evil,pg_catalog');
unlike($out, qr/set by ada/, '  the handler left no setting in wendy\'s session');
as_ok('wendy', q{
SET search_path = evil, pg_catalog;
SELECT eventstore.append_event('board-2', 'Named', '{"name": "FROM SET"}');
}, 'wendy appends with SET search_path = evil, pg_catalog');
as_ok('wendy', q{
CREATE TEMP TABLE board (name text, state text);
SELECT eventstore.append_event('board-3', 'Named', '{"name": "UNDER A TEMP TABLE"}');
SELECT count(*) FROM pg_temp.board;
}, 'wendy appends with a temporary table named like the read model');
is(su('SELECT count(*) FROM evil.stolen'), '0', 'the secret never reached wendy');
is(su('SELECT count(*) FROM evil.board'), '0', "wendy's board got nothing");
is(su(q{SELECT string_agg(name, ', ' ORDER BY name) FROM ada.board WHERE name NOT LIKE 'temp table%'}),
	'from pgoptions, from set, under a temp table', "ada's board got all three, lower-cased");
is(su(q{SELECT DISTINCT state FROM ada.board WHERE name NOT LIKE 'temp table%'}), 'ada, public, pg_temp',
	'  with ada\'s search_path and pg_temp last');
is(su(q{SELECT DISTINCT name FROM ada.board WHERE name LIKE 'temp table%'}), 'temp table: 42501',
	'the handler cannot create a temporary table in the appender\'s session');
is(su(q{SELECT search_path FROM eventstore.projection WHERE name = 'ada_board'}), 'ada, public',
	'the projection records the search_path it was created with');

# (0.1.0 said "NOTICE: trigger ... does not exist, skipping" here)
my ($qrc, $qout, $qerr) = as('ada', q{SET client_min_messages = notice;
SELECT eventstore.create_projection('ada_quiet', 'ada.on_board(eventstore.event)', 'inline', stream_prefix => 'quiet-');
SELECT eventstore.reset_projection('ada_quiet');
SELECT eventstore.drop_projection('ada_quiet');});
ok($qrc == 0 && $qerr !~ /NOTICE|WARNING/, 'create, reset and drop of an inline projection say nothing')
  or diag($qerr);

# A handler that sets its own search_path must end it with pg_temp: its
# setting replaces the projection's, and an inline handler runs in the
# appender's session (found by a review: wendy's temporary table with a
# trigger ran as ada).
as_ok('ada', q{
CREATE TABLE ada.pinned_view (stream text, event_type text);
CREATE FUNCTION ada.pinned(e eventstore.event) RETURNS void LANGUAGE sql SET search_path = ada, pg_catalog
AS $f$ INSERT INTO pinned_view VALUES (e.stream, e.event_type) $f$;
}, 'ada writes a handler with SET search_path = ada, pg_catalog');
as_fails('ada', q{SELECT eventstore.create_projection('ada_pinned', 'ada.pinned(eventstore.event)', 'inline', stream_prefix => 'pin-')},
	'42501', qr/sets a search_path that does not end with pg_temp.*SET search_path = ada, pg_catalog, pg_temp/s,
	'create_projection refuses it, with the fix in the hint');
as_ok('ada', q{
ALTER FUNCTION ada.pinned(eventstore.event) SET search_path = ada, pg_catalog, pg_temp;
SELECT eventstore.create_projection('ada_pinned', 'ada.pinned(eventstore.event)', 'inline', stream_prefix => 'pin-');
ALTER FUNCTION ada.pinned(eventstore.event) SET search_path = ada, pg_catalog;
}, 'ada creates it with pg_temp last, then drops pg_temp again');
as_fails('wendy', q{
CREATE TEMP TABLE pinned_view (stream text, event_type text);
GRANT ALL ON pinned_view TO PUBLIC;
CREATE FUNCTION pg_temp.pwn() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM eventstore.create_projection('owned_by_ada', 'ada.pinned(eventstore.event)'); RETURN NEW; END $f$;
CREATE TRIGGER pwn BEFORE INSERT ON pinned_view FOR EACH ROW EXECUTE FUNCTION pg_temp.pwn();
SELECT eventstore.append_event('pin-1', 'Opened');
}, '42501', qr/sets a search_path that does not end with pg_temp/, "wendy's append is refused at the handler's call");
is(su(q{SELECT count(*) FROM eventstore.projection WHERE name = 'owned_by_ada'}), '0',
	'  and her temporary table\'s trigger never ran as ada');
as_ok('ada', q{ALTER FUNCTION ada.pinned(eventstore.event) SET search_path = ada, pg_catalog, pg_temp;
SELECT eventstore.drop_projection('ada_pinned')}, 'ada fixes and drops it');

# inline_projection() on a table of one's own, with arguments naming any
# handler and owner (a review: with USAGE on eventstore_internal, which a
# default privilege can give, that ran a handler as postgres; a table of
# another shape crashed the server).
su(q{GRANT USAGE ON SCHEMA eventstore_internal TO eve});
as_fails('eve', q{
CREATE TABLE eve.t (global_position bigint, stream text, stream_version bigint, event_id uuid,
                    event_type text, data jsonb, metadata jsonb, created_at timestamptz);
CREATE TABLE eve.odd (stream bigint);
CREATE FUNCTION eve.h2(e eventstore.event) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN EXECUTE 'ALTER ROLE eve SUPERUSER'; END $f$;
SELECT format('CREATE TRIGGER x AFTER INSERT ON eve.t FOR EACH ROW EXECUTE FUNCTION eventstore_internal.inline_projection(%L, %L, %L, %L, %L, %L)',
              'x', 'eve.h2(eventstore.event)'::regprocedure::oid, 'postgres'::regrole::oid, '', '', 'eve') \gexec
SELECT format('CREATE TRIGGER y AFTER INSERT ON eve.odd FOR EACH ROW EXECUTE FUNCTION eventstore_internal.inline_projection(%L, %L, %L, %L, %L, %L)',
              'y', 'eve.h2(eventstore.event)'::regprocedure::oid, 'postgres'::regrole::oid, '', '', 'eve') \gexec
INSERT INTO eve.odd VALUES (1);
}, '39P01', qr/fires only on eventstore\.events/, 'inline_projection() on another table is refused (and does not crash)');
as_fails('eve', q{INSERT INTO eve.t VALUES (1, 'x', 1, gen_random_uuid(), 'X', '{}', '{}', now())},
	'39P01', qr/fires only on eventstore\.events/, '  nor does a table of the events\' shape run it');
is(su(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'eve'}), 'f', '  eve is not a superuser');
su(q{REVOKE USAGE ON SCHEMA eventstore_internal FROM eve});

# A handler by OID in a schema the creator may not use; EXECUTE checked
# at every call, not only at creation (a review).
as_ok('alice', q{
CREATE TABLE alice.model (who text);
GRANT INSERT ON alice.model TO PUBLIC;
CREATE FUNCTION alice.hh(e eventstore.event) RETURNS void LANGUAGE sql AS $f$ INSERT INTO alice.model VALUES (current_user) $f$;
}, 'alice has a handler in her schema (no USAGE for others)');
my $hh = su(q{SELECT 'alice.hh(eventstore.event)'::regprocedure::oid});
as_fails('mallory', "SELECT eventstore.create_projection('m_uses_alice', ${hh}::regprocedure)",
	'42501', qr/permission denied for function/, "mallory cannot use alice's handler by its OID");
su(q{GRANT USAGE ON SCHEMA alice TO mallory});
as_ok('mallory', "SELECT eventstore.create_projection('m_uses_alice', ${hh}::regprocedure)",
	'with USAGE granted, mallory may');
wait_caught_up("'m_uses_alice'");
my $ran = su(q{SELECT count(*) FROM alice.model});
ok($ran > 0, "  the worker ran it ($ran events)");
as_ok('alice', q{REVOKE EXECUTE ON FUNCTION alice.hh(eventstore.event) FROM PUBLIC}, 'alice revokes EXECUTE');
as_ok('wendy', q{SELECT eventstore.append_event('acct-1', 'Deposited')}, 'wendy appends');
as_fails('mallory', q{SELECT eventstore.run_projection('m_uses_alice')}, '42501',
	qr/permission denied for function alice\.hh/, '  and mallory\'s projection no longer runs it');
is(su(q{SELECT count(*) FROM alice.model}), $ran, '  not once more');
as_ok('mallory', q{SELECT eventstore.drop_projection('m_uses_alice')}, 'mallory drops it');
su(q{REVOKE USAGE ON SCHEMA alice FROM mallory});

# event_types must be a one-dimensional array
as_fails('mallory', q{SELECT eventstore.create_projection('m_2d', 'mallory.elevate(eventstore.event)', 'async', NULL, '{{a,b},{c,d}}')},
	'22023', qr/invalid event_types/, 'a two-dimensional event_types is refused (projection)');

# ---------------------------------------------------------------------
# 4. Tenants.
as_ok('alice', q{
CREATE TABLE alice.rm (p bigint);
CREATE FUNCTION alice.h(e eventstore.event) RETURNS void LANGUAGE sql AS $f$ INSERT INTO alice.rm VALUES (e.global_position) $f$;
SELECT eventstore.create_projection('alice_proj', 'alice.h(eventstore.event)', 'async');
SELECT eventstore.save_checkpoint('alice_reader', 1);
SELECT eventstore.mark_processed('alice_reader', '00000000-0000-4000-8000-000000000001');
}, 'alice creates a projection, a checkpoint and a mark');
as_ok('alice', q{SELECT eventstore.create_subscription('alice_sub', from_position => 0)},
	'alice creates a subscription');

my $owned = qr/owned by role alice/;
for my $case (
	[ q{SELECT * FROM eventstore.poll('alice_sub')}, 'subscription "alice_sub"' ],
	[ q{SELECT eventstore.ack('alice_sub')}, 'subscription "alice_sub"' ],
	[ q{SELECT eventstore.ack('alice_sub', '(0/0,1,1)')}, 'subscription "alice_sub"' ],
	[ q{SELECT eventstore.drop_subscription('alice_sub')}, 'subscription "alice_sub"' ],
	[ q{SELECT eventstore.run_projection('alice_proj')}, 'projection "alice_proj"' ],
	[ q{SELECT eventstore.reset_projection('alice_proj')}, 'projection "alice_proj"' ],
	[ q{SELECT eventstore.drop_projection('alice_proj')}, 'projection "alice_proj"' ],
	[ q{SELECT eventstore.alter_projection('alice_proj', '1s')}, 'projection "alice_proj"' ],
	[ q{SELECT eventstore.save_checkpoint('alice_reader', 5)}, 'consumer "alice_reader"' ],
	[ q{SELECT eventstore.save_checkpoint('alice_proj', 5)}, 'consumer "alice_proj"' ],
	[ q{SELECT eventstore.mark_processed('alice_reader', gen_random_uuid())}, 'consumer "alice_reader"' ],
	[ q{SELECT eventstore.create_projection('alice_reader', 'mallory.elevate(eventstore.event)')}, 'consumer "alice_reader"' ])
{
	my ($sql, $what) = @$case;
	as_fails('mallory', $sql, '42501', qr/permission denied for \Q$what\E.*$owned/s, "mallory: $sql");
}
is(as_ok('mallory', q{SELECT count(*) FROM eventstore.subscriptions WHERE name = 'alice_sub'}, 'mallory reads the view'),
	"0", '  and does not see alice\'s subscription');
is(as_ok('mallory', q{SELECT count(*) FROM eventstore.projections WHERE name = 'alice_proj'}, 'mallory reads the view'),
	"0", '  nor her projection');
my ($lrc, $lout, $lerr) = as('mallory', q{
CREATE FUNCTION mallory.leak(VARIADIC a text[]) RETURNS bool LANGUAGE plpgsql COST 0.0000001
AS $f$ BEGIN RAISE NOTICE 'leak: %', a; RETURN true; END $f$;
SELECT count(*) FROM eventstore.subscriptions WHERE mallory.leak(name, slot_name);
SELECT count(*) FROM eventstore.projections WHERE mallory.leak(name, search_path);
});
ok($lrc == 0 && $lerr !~ /alice/, 'a leaky function over the views sees none of alice\'s rows') or diag($lerr);
is(as_ok('mallory', q{SELECT eventstore.get_checkpoint('alice_reader')}, 'mallory reads a checkpoint'), "1",
	'  get_checkpoint reads any checkpoint');
is(su(q{SELECT (SELECT count(*) FROM eventstore.subscription WHERE name = 'alice_sub')
             + (SELECT count(*) FROM eventstore.projection WHERE name = 'alice_proj')
             || ' ' || eventstore.get_checkpoint('alice_reader')
             || ' ' || (SELECT count(*) FROM eventstore.processed WHERE consumer = 'alice_reader')}),
	'2 1 1', "alice's objects are untouched");

as_ok('alice_ops', q{
BEGIN;
SELECT count(*) FROM eventstore.poll('alice_sub');
SELECT eventstore.ack('alice_sub');
COMMIT;
SELECT eventstore.run_projection('alice_proj');
SELECT eventstore.save_checkpoint('alice_reader', 2);
SELECT eventstore.mark_processed('alice_reader', gen_random_uuid());
SELECT count(*) FROM eventstore.subscriptions WHERE name = 'alice_sub';
}, 'a member of alice polls, acks, runs, saves and marks alice\'s');
as_ok('alice', q{
SELECT eventstore.reset_projection('alice_proj');
SELECT eventstore.drop_projection('alice_proj');
SELECT eventstore.drop_subscription('alice_sub');
}, 'alice resets and drops her own');

as_fails('mallory', q{SELECT eventstore.create_projection('m_inline', 'mallory.elevate(eventstore.event)', 'inline')},
	'42501', qr/permission denied to create inline projection/, 'a consumer cannot create an inline projection');
as_fails('wendy', q{SELECT eventstore.create_subscription('w_sub')},
	'42501', qr/permission denied for function create_subscription/, 'a writer cannot create a subscription');

as_fails('alice', q{SELECT eventstore.create_subscription('a_2d', NULL, '{{a,b},{c,d}}')},
	'22023', qr/invalid event_types/, 'a two-dimensional event_types is refused (subscription)');

# ALTER DEFAULT PRIVILEGES of the installing role grants nothing internal.
su(q{CREATE DATABASE defaults});
$node->safe_psql('defaults', q{
ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO mallory;
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO mallory;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO mallory;
ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO mallory;
CREATE EXTENSION eventstore;
});
is($node->safe_psql('defaults', q{
SELECT (SELECT count(*) FROM pg_proc WHERE pronamespace = 'eventstore_internal'::regnamespace
           AND has_function_privilege('mallory', oid, 'EXECUTE'))
    || ' ' || has_schema_privilege('mallory', 'eventstore_internal', 'USAGE')
    || ' ' || (SELECT count(*) FROM pg_class WHERE relnamespace = 'eventstore'::regnamespace AND relkind IN ('r', 'S')
                 AND has_table_privilege('mallory', oid, 'SELECT'))}),
	'0 false 0', 'default privileges of the installing role leave nothing internal, no table and no sequence to mallory');

# ---------------------------------------------------------------------
# 5. Slots: max_replication_slots = 10 (test/eventstore.conf), 2 reserved.
my $used = su('SELECT count(*) FROM pg_replication_slots');
my $room = 10 - 2 - $used;
ok($room > 0, "room for $room subscriptions of roles that are not superusers");
for my $i (1 .. $room)
{
	as_ok('mallory', "SELECT eventstore.create_subscription('m_slot_$i')", "mallory's subscription $i");
}
as_fails('mallory', q{SELECT eventstore.create_subscription('m_slot_more')}, '53400',
	qr/too few replication slots are free.*reserved_replication_slots/s, 'the next one is refused with 53400');
is(su('SELECT count(*) FROM pg_replication_slots'), 8, '  and leaves no slot behind');
is(su(q{SELECT count(*) FROM eventstore.subscription WHERE name = 'm_slot_more'}), '0', '  nor a row');
su(q{SELECT eventstore.create_subscription('admin_slot')});
is(su(q{SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%admin_slot'}), '1',
	'a superuser still creates a subscription');
su(q{SELECT pg_create_logical_replication_slot('admin_raw', 'test_decoding')});
is(su('SELECT count(*) FROM pg_replication_slots'), 10, '  and a slot of its own');
su(q{SELECT pg_drop_replication_slot('admin_raw'); SELECT eventstore.drop_subscription('admin_slot')});
for my $i (1 .. $room)
{
	su("SELECT eventstore.drop_subscription('m_slot_$i')");
}

# ---------------------------------------------------------------------
# 6. Exactly the documented functions per role.
my %expect = (
	es_writer => 'eventstore.append(text,jsonb,bigint) eventstore.append_event(text,text,jsonb,jsonb,bigint,uuid) '
	  . 'eventstore.category(text) eventstore.consumer_group_member(text,integer) eventstore.worker_serves() eventstore.load_snapshot(text) '
	  . 'eventstore.read_stream(text,bigint,integer,boolean) eventstore.save_snapshot(text,bigint,jsonb) '
	  . 'eventstore.stream_version(text)',
	es_reader => 'eventstore.category(text) eventstore.consumer_group_member(text,integer) eventstore.worker_serves() eventstore.head_position() '
	  . 'eventstore.load_snapshot(text) eventstore.read_all(bigint,integer,text,text[]) '
	  . 'eventstore.read_category(text,bigint,integer,integer,integer) '
	  . 'eventstore.read_stream(text,bigint,integer,boolean) eventstore.stream_version(text)',
	es_consumer => 'eventstore.ack(text) eventstore.ack(text,eventstore.cursor) eventstore.alter_projection(text,interval) eventstore.category(text) eventstore.worker_serves() '
	  . 'eventstore.consumer_group_member(text,integer) eventstore.create_projection(text,regprocedure,text,text,text[]) '
	  . 'eventstore.create_subscription(text,text,text[],bigint) eventstore.drop_projection(text) '
	  . 'eventstore.drop_subscription(text) eventstore.get_checkpoint(text) eventstore.head_position() '
	  . 'eventstore.load_snapshot(text) eventstore.mark_processed(text,uuid) eventstore.poll(text,integer) '
	  . 'eventstore.read_all(bigint,integer,text,text[]) eventstore.read_category(text,bigint,integer,integer,integer) '
	  . 'eventstore.read_stream(text,bigint,integer,boolean) eventstore.reset_projection(text,bigint) '
	  . 'eventstore.run_projection(text,integer) eventstore.save_checkpoint(text,bigint,bigint) '
	  . 'eventstore.stream_version(text)');
$expect{es_admin} = join(' ', sort { $a cmp $b } do {
	my %u = map { $_ => 1 } split(/ /, "$expect{es_writer} $expect{es_consumer}");
	(keys %u, 'eventstore_internal.inline_projection()') });
my $executable = q{
	SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY p.oid::regprocedure::text COLLATE "C")
	  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
	 WHERE n.nspname IN ('eventstore', 'eventstore_internal') AND has_function_privilege('%s', p.oid, 'EXECUTE')};
for my $role (qw(es_writer es_reader es_consumer es_admin))
{
	my $have = su(sprintf($executable, $role));
	my $want = join(' ', sort { $a cmp $b } split(/ /, $expect{$role}));
	is($have, $want, "$role may execute exactly the documented functions");
}
is(su(q{SELECT has_schema_privilege('es_admin', 'eventstore_internal', 'USAGE')}), 'f',
	'no README role has USAGE on eventstore_internal');

# GRANT ... ON ALL FUNCTIONS IN SCHEMA eventstore reaches nothing internal.
su(q{CREATE ROLE greedy LOGIN; GRANT USAGE ON SCHEMA eventstore TO greedy;
     GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA eventstore TO greedy});
for my $sql (
	q{SELECT eventstore_internal.wake_worker()},
	q{SELECT eventstore_internal.create_slot('greedy_slot')},
	q{SELECT eventstore_internal.worker_run('m_plant', 10, 10)},
	q{SELECT eventstore_internal.call_handler('mallory.elevate(eventstore.event)', 'postgres', '', NULL::eventstore.event)})
{
	as_fails('greedy', $sql, '42501', qr/permission denied for schema eventstore_internal/,
		"after GRANT ON ALL FUNCTIONS: $sql");
}
is(su(q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'greedy_slot'}), '0', '  no slot was made');

done_testing();
