# Consumers go on exactly once across ALTER EXTENSION eventstore UPDATE
# from 0.1.0 (issue #12).  006_upgrade.pl shows that the updated objects
# equal a fresh install's; this test is about the consumers' state.
#
# Database "upg" (served by the projection worker all along) gets 0.1.0,
# events in several streams of the categories acct, order and user, and
# consumers left at different points:
#   subscriptions  s_live_all   all events, live only: 5 polled, 3 acked
#                  s_live_acct  acct-, live only: 2 acked, then a poll
#                               whose transaction rolled back
#                  s_users      user-, live only: everything acked
#                  s_idle       event type Deposited: never polled
#                  s_hist_all   all events, history from 0: 4 acked,
#                               2 more polled in a committed transaction
#                               but not acked
#                  s_hist_order order-, history after position 3: the
#                               whole history acked, no live event yet
#   projections    p_inline, p_inline_order (inline, caught up by every
#                  append); p_async (5 events applied by run_projection),
#                  p_async_acct (acct- Deposited, 2 applied), p_async_user
#                  (user-, never run)
#   consumer names c_plain (a saved checkpoint), m_app (processed marks),
#                  and marks under '' and a 256-byte name, which 0.1.0
#                  accepted and 0.2.0 refuses.
# Every consumer applies what it receives to a table of the test's (seen,
# rm).  Then UPDATE; in the updating transaction the state of every
# consumer must be what it was.  Then more appends, and every consumer
# must have applied every matching event exactly once, in order: the
# subscriptions by poll + apply + ack, the inline projections by the
# appends, the async ones by the background worker alone.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('upgrade_consumers', q(
synchronous_commit = on
eventstore.worker_databases = 'upg'
eventstore.worker_naptime = '200ms'
));
$node->safe_psql('postgres', 'CREATE DATABASE upg');

sub sql { return $node->safe_psql('upg', $_[0]); }

# The SQL that appends events (one transaction each): [stream, types...]
sub appends
{
	my $s = '';
	for my $a (@_)
	{
		my ($stream, @types) = @$a;
		$s .= "SELECT FROM eventstore.append('$stream', '["
		  . join(',', map { qq({"type": "$_", "data": {"n": 1}}) } @types) . "]');\n";
	}
	return $s;
}

# Subscriptions: filter and where their history starts (all live ones
# are created before the first event, so they start at 0 too).
my %subs = (
	s_live_all   => { prefix => undef,    types => undef,          start => 0 },
	s_live_acct  => { prefix => 'acct-',  types => undef,          start => 0 },
	s_users      => { prefix => 'user-',  types => undef,          start => 0 },
	s_idle       => { prefix => undef,    types => ['Deposited'],  start => 0 },
	s_hist_all   => { prefix => undef,    types => undef,          start => 0 },
	s_hist_order => { prefix => 'order-', types => undef,          start => 3 });
my %projs = (
	p_inline       => { prefix => undef,    types => undef },
	p_inline_order => { prefix => 'order-', types => undef },
	p_async        => { prefix => undef,    types => undef },
	p_async_acct   => { prefix => 'acct-',  types => ['Deposited'] },
	p_async_user   => { prefix => 'user-',  types => undef });

# The positions of the matching events after position $after, in order.
sub expected
{
	my ($f, $after) = @_;
	my $where = "global_position > $after";
	$where .= " AND starts_with(stream, '$f->{prefix}')" if defined $f->{prefix};
	$where .= " AND event_type = ANY ('{" . join(',', @{ $f->{types} }) . "}')" if defined $f->{types};
	return sql("SELECT coalesce(string_agg(global_position::text, ' ' ORDER BY global_position), '')
	              FROM eventstore.events WHERE $where");
}

# One poll + apply + ack transaction; the positions applied.
sub poll_apply
{
	my ($sub, $max) = @_;
	my $out = sql(qq{BEGIN;
INSERT INTO seen (sub, position) SELECT '$sub', global_position FROM eventstore.poll('$sub', $max) RETURNING position;
SELECT eventstore.ack('$sub');
COMMIT;});
	return grep { /^\d+$/ } split /\n/, $out;
}

# Poll + apply + ack in batches of $max until nothing comes.
sub drain
{
	my ($sub, $max) = @_;
	my @all;
	for (1 .. 1000)
	{
		my @got = poll_apply($sub, $max);
		last unless @got;
		push @all, @got;
	}
	return join(' ', @all);
}

# ---- 0.1.0 ------------------------------------------------------------

sql(q{
CREATE EXTENSION eventstore VERSION '0.1.0';
CREATE TABLE seen (id bigserial PRIMARY KEY, sub text NOT NULL, position bigint NOT NULL);
CREATE TABLE rm (id bigserial PRIMARY KEY, projection text NOT NULL, position bigint NOT NULL, event_id uuid NOT NULL);
CREATE FUNCTION h_inline(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm (projection, position, event_id) VALUES ('p_inline', e.global_position, e.event_id) $$;
CREATE FUNCTION h_inline_order(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm (projection, position, event_id) VALUES ('p_inline_order', e.global_position, e.event_id) $$;
CREATE FUNCTION h_async(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm (projection, position, event_id) VALUES ('p_async', e.global_position, e.event_id) $$;
CREATE FUNCTION h_async_acct(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm (projection, position, event_id) VALUES ('p_async_acct', e.global_position, e.event_id) $$;
CREATE FUNCTION h_async_user(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm (projection, position, event_id) VALUES ('p_async_user', e.global_position, e.event_id) $$;
SELECT eventstore.create_projection('p_inline_order', 'h_inline_order(eventstore.event)', 'inline', stream_prefix => 'order-');
});
for my $s (qw(s_live_all s_live_acct s_users s_idle))
{
	my $f = $subs{$s};
	sql("SELECT eventstore.create_subscription('$s', "
		  . (defined $f->{prefix} ? "'$f->{prefix}'" : 'NULL') . ', '
		  . (defined $f->{types} ? "'{" . join(',', @{ $f->{types} }) . "}'" : 'NULL') . ')');
}

# 12 events
sql(appends(
	[ 'acct-1', 'Opened', 'Deposited', 'Deposited' ],
	[ 'order-1', 'Placed' ],
	[ 'acct-2', 'Opened' ],
	[ 'order-1', 'Shipped' ],
	[ 'user-1', 'Registered' ],
	[ 'acct-1', 'Withdrawn' ],
	[ 'order-2', 'Placed', 'Cancelled' ],
	[ 'acct-2', 'Deposited' ],
	[ 'user-2', 'Registered' ]));
is(sql('SELECT count(*), max(global_position) FROM eventstore.events'), '12|12', '12 events at positions 1..12');

sql(q{
SELECT eventstore.create_projection('p_inline', 'h_inline(eventstore.event)', 'inline');
SELECT eventstore.create_projection('p_async', 'h_async(eventstore.event)', 'async');
SELECT eventstore.create_projection('p_async_acct', 'h_async_acct(eventstore.event)', 'async',
                                    stream_prefix => 'acct-', event_types => '{Deposited}');
SELECT eventstore.create_projection('p_async_user', 'h_async_user(eventstore.event)', 'async', stream_prefix => 'user-');
});
sql(q{SELECT eventstore.create_subscription('s_hist_all', from_position => 0)});
sql(q{SELECT eventstore.create_subscription('s_hist_order', 'order-', from_position => 3)});

# 8 more events
sql(appends(
	[ 'acct-1', 'Deposited' ],
	[ 'order-2', 'Placed' ],
	[ 'user-3', 'Registered' ],
	[ 'acct-2', 'Deposited', 'Withdrawn' ],
	[ 'order-1', 'Delivered' ],
	[ 'acct-3', 'Opened', 'Deposited' ]));

# The worker is there, and leaves 0.1.0's projections alone (so the
# checkpoints below stay where run_projection puts them).
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker' AND datname = 'upg'}),
	'a projection worker serves the database');

# Consume partly, applying in the polling transaction.
is(sql(q{BEGIN;
CREATE TEMP TABLE got ON COMMIT DROP AS SELECT * FROM eventstore.poll('s_live_all', 5);
INSERT INTO seen (sub, position) SELECT 's_live_all', global_position FROM got ORDER BY global_position LIMIT 3;
SELECT eventstore.ack('s_live_all', cursor) FROM got ORDER BY global_position OFFSET 2 LIMIT 1;
SELECT string_agg(global_position::text, ' ' ORDER BY global_position) FROM got;
COMMIT;}), "\n1 2 3 4 5", 's_live_all: 5 polled, 3 of them acked');
is(join(' ', poll_apply('s_live_acct', 2)), '1 2', 's_live_acct: 2 acked');
is(sql(q{BEGIN; SELECT count(*) FROM eventstore.poll('s_live_acct', 3); ROLLBACK;}), '3',
	'  and 3 polled in a transaction that rolled back');
is(drain('s_users', 1), '7 12 15', 's_users: all acked, one at a time');
is(join(' ', poll_apply('s_hist_all', 4)), '1 2 3 4', 's_hist_all: 4 acked from history');
is(sql(q{SELECT count(*) FROM eventstore.poll('s_hist_all', 2)}), '2', '  and 2 polled but not acked');
is(join(' ', poll_apply('s_hist_order', 100)), '4 6 9 10', 's_hist_order: its whole history acked');
is(sql(q{SELECT eventstore.run_projection('p_async', 5)}), '5', 'p_async: 5 events applied');
is(sql(q{SELECT eventstore.run_projection('p_async_acct', 2)}), '2', 'p_async_acct: 2 events applied');
sql(q{
SELECT eventstore.save_checkpoint('c_plain', 7);
SELECT eventstore.mark_processed('m_app', event_id) FROM eventstore.events WHERE global_position IN (1, 2);
SELECT eventstore.mark_processed('', event_id) FROM eventstore.events WHERE global_position = 1;
SELECT eventstore.mark_processed(repeat('x', 256), event_id) FROM eventstore.events WHERE global_position = 1;
});
is(sql(q{SELECT count(*) FROM rm WHERE projection LIKE 'p_inline%'}), 20 + 6, 'the inline projections are up to date');
sleep(1);    # five naptimes of the worker
is(sql(q{SELECT string_agg(projection || ':' || position, ' ' ORDER BY projection) FROM eventstore.checkpoint
          WHERE projection LIKE 'p\_async%'}),
	'p_async:5 p_async_acct:3 p_async_user:0', "the worker did not run 0.1.0's async projections");

# Everything the update must keep, in columns 0.1.0 and 0.2.0 share (the
# consumer name 0.2.0 registers for m_app is looked at below).
my $state_sql = q{
SELECT string_agg(line, E'\n' ORDER BY line COLLATE "C") FROM (
    SELECT pg_catalog.format('subscription %s slot %s prefix %s types %s from %s seam %s checkpoint %s polled %s polled_xid %s recovery %s/%s/%s created %s',
                             name, slot_name, stream_prefix, event_types, from_position, seam_position, checkpoint,
                             polled, polled_xid, recovery_position, recovery_sample_lsn, recovery_sample_position, created_at) AS line
      FROM eventstore.subscription
    UNION ALL
    SELECT pg_catalog.format('slot %s plugin %s confirmed %s', slot_name, plugin, confirmed_flush_lsn)
      FROM pg_catalog.pg_replication_slots WHERE database = current_database()
    UNION ALL
    SELECT pg_catalog.format('checkpoint %s position %s updated %s', projection, position, updated_at)
      FROM eventstore.checkpoint WHERE projection <> 'm_app'
    UNION ALL
    SELECT pg_catalog.format('projection %s handler %s owner %s mode %s prefix %s types %s errors %s %s %s',
                             name, handler, owner, mode, stream_prefix, event_types, error_count, last_error, retry_at)
      FROM eventstore.projection
    UNION ALL
    SELECT pg_catalog.format('processed %s %s %s', md5(consumer), event_id, processed_at) FROM eventstore.processed
    UNION ALL
    SELECT pg_catalog.format('trigger %s enabled %s', tgname, tgenabled) FROM pg_catalog.pg_trigger
     WHERE tgrelid = 'eventstore.events'::regclass AND tgname LIKE 'es\_projection\_%'
    UNION ALL
    SELECT pg_catalog.format('events %s up to %s, sequence at %s', count(*), max(global_position),
                             (SELECT last_value FROM eventstore.global_position_seq))
      FROM eventstore.events
) AS s};
my $before = sql($state_sql);
my %acked = map { $_ => sql("SELECT (checkpoint).position FROM eventstore.subscription WHERE name = '$_'") } keys %subs;
is(join(' ', map { "$_:$acked{$_}" } sort keys %acked),
	's_hist_all:4 s_hist_order:10 s_idle:0 s_live_acct:2 s_live_all:3 s_users:15',
	'the acknowledged positions before the update');

# ---- UPDATE -----------------------------------------------------------

# The state is compared inside the updating transaction: the worker
# starts on the async projections as soon as it commits.
my ($during, $version) = split /\n-----\n/, sql(qq{BEGIN;
ALTER EXTENSION eventstore UPDATE;
$state_sql;
SELECT '-----';
SELECT extversion FROM pg_extension WHERE extname = 'eventstore';
COMMIT;});
is($version, '0.2.0', 'updated to 0.2.0');
ok(length($before) > 2000, 'the state covers every consumer (' . length($before) . ' characters)');
is($during, $before, 'the update keeps every checkpoint, cursor, slot, projection, mark and event');
if ($during ne $before)
{
	my %b = map { $_ => 1 } split /\n/, $before;
	my %d = map { $_ => 1 } split /\n/, $during;
	diag("lost:    $_") for grep { !$d{$_} } sort keys %b;
	diag("changed: $_") for grep { !$b{$_} } sort keys %d;
}
is(sql(q{SELECT string_agg(projection || ':' || position, ' ' ORDER BY projection COLLATE "C")
           FROM eventstore.checkpoint WHERE projection NOT IN ('c_plain') AND projection NOT LIKE 'p\_%'}),
	'm_app:0', 'the consumer name of the processed marks is registered (position 0)');
is(sql(q{SELECT count(*) FROM eventstore.processed WHERE consumer = '' OR octet_length(consumer) > 255}), '2',
	"marks under '' and a 256-byte name are kept");
my ($rc, $out, $err) = $node->psql('upg', q{SELECT eventstore.mark_processed('', gen_random_uuid())});
like($err, qr/invalid consumer name/, "  but 0.2.0 refuses those names ('')");
($rc, $out, $err) = $node->psql('upg', q{SELECT eventstore.mark_processed(repeat('x', 256), gen_random_uuid())});
like($err, qr/invalid consumer name/, '  (256 bytes)');
# CHANGELOG.md's way out: copy the marks to a valid name.
sql(q{INSERT INTO eventstore.processed (consumer, event_id, processed_at)
      SELECT 'm_renamed', event_id, processed_at FROM eventstore.processed WHERE consumer = ''});
is(sql(q{SELECT string_agg(eventstore.mark_processed('m_renamed', event_id)::text, ' ' ORDER BY global_position)
           FROM eventstore.events WHERE global_position IN (1, 2)}),
	'false true', "  and their marks copied to a valid name go on");

# ---- after the update -------------------------------------------------

my %after;    # per subscription: the positions applied since the update
# A first poll before anything new: exactly the first unacknowledged events.
for my $s (sort keys %subs)
{
	$after{$s} = [ poll_apply($s, 2) ];
}
is(join(' ', map { "$_:" . join(',', @{ $after{$_} }) } sort keys %after),
	's_hist_all:5,6 s_hist_order:14,18 s_idle:2,3 s_live_acct:3,5 s_live_all:4,5 s_users:',
	'the first polls after the update start right after each acknowledged position');

sql(appends(
	[ 'acct-1', 'Deposited', 'Deposited' ],
	[ 'order-3', 'Placed' ],
	[ 'user-4', 'Registered' ],
	[ 'acct-4', 'Opened' ],
	[ 'order-2', 'Shipped', 'Delivered' ],
	[ 'acct-3', 'Withdrawn' ]));
for my $s (sort keys %subs)
{
	push @{ $after{$s} }, split / /, drain($s, 3);
}
sql(appends(
	[ 'user-1', 'Renamed' ],
	[ 'acct-2', 'Deposited' ],
	[ 'order-3', 'Shipped' ]));
for my $s (sort keys %subs)
{
	push @{ $after{$s} }, split / /, drain($s, 1000);
}
is(sql('SELECT count(*), max(global_position) FROM eventstore.events'), '31|31', '31 events in all');

for my $s (sort keys %subs)
{
	is(join(' ', @{ $after{$s} }), expected($subs{$s}, $acked{$s}),
		"$s delivered after the update exactly the events after its acknowledged position, in order");
	is(sql("SELECT coalesce(string_agg(position::text, ' ' ORDER BY id), '') FROM seen WHERE sub = '$s'"),
		expected($subs{$s}, $subs{$s}{start}),
		"  and has applied every matching event once");
}

# Async projections: the worker alone catches up.
ok($node->poll_query_until('upg',
		q{SELECT bool_and(checkpoint >= eventstore.head_position()) FROM eventstore.projections WHERE mode = 'async'}),
	'the worker brings the async projections to the head');
sleep(1);    # time for an application twice to show
for my $p (sort keys %projs)
{
	is(sql("SELECT coalesce(string_agg(position::text, ' ' ORDER BY id), '') FROM rm WHERE projection = '$p'"),
		expected($projs{$p}, 0), "$p applied every matching event once, in order");
}
is(sql(q{SELECT count(*) FROM eventstore.projections WHERE last_error IS NOT NULL OR error_count > 0}), '0',
	'no projection failed');
is(sql(q{SELECT count(*) FROM rm AS r JOIN eventstore.events AS e USING (event_id)
          WHERE r.position <> e.global_position}), '0', '  and each applied the event it was given');

# Consumer names: checkpoints and marks go on.
is(sql(q{SELECT eventstore.get_checkpoint('c_plain')}), '7', 'the saved checkpoint is kept');
sql(q{SELECT eventstore.save_checkpoint('c_plain', 9, expected_position => 7)});
is(sql(q{SELECT eventstore.get_checkpoint('c_plain')}), '9', '  and moves on by compare-and-set');
is(sql(q{SELECT string_agg(eventstore.mark_processed('m_app', event_id)::text, ' ' ORDER BY global_position)
           FROM eventstore.events WHERE global_position IN (1, 2, 3)}),
	'false false true', 'processed marks: the old ones are kept, a new one is new');

done_testing();
