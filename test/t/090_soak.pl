# A long soak of one cluster, behind a flag: skipped unless
# EVENTSTORE_SOAK_SECONDS is set (say 600), so the normal suite stays fast.
#
#   as root, with a private PostgreSQL (scripts/private-pg.sh) built with
#   -DUSE_ASSERT_CHECKING and installed, in a copy of the tree owned by
#   postgres (as scripts/test.sh does):
#   runuser -u postgres -- env PATH=<pg bindir>:$PATH EVENTSTORE_SOAK_SECONDS=600 \
#     make installcheck REGRESS= ISOLATION= PROVE_TESTS=test/t/090_soak.pl PROVE_FLAGS=-v PG_CONFIG=...
#
# For that many seconds, on one cluster (the worker runs database postgres,
# naptime 200ms):
#   writers   3 pgbench processes of one client each (PGAPPNAME
#             soak_writer<N>), rate-limited (-R), mixing single appends,
#             batches of 2-5, appends with expected_version to 3 hot
#             streams (a server-side retry on ES001, counted in the
#             sequence soak_conflicts, and a raw variant whose ES001
#             reaches the client and aborts it), explicit transactions that
#             roll an append back to a SAVEPOINT and commit others, and
#             plain rollbacks.  Rolled-back events have type RolledBack.
#   reader    psql (soak_reader): read_all(after_position => its own
#             max, max_count => 500) into reader_seen (primary key on the
#             position), in a \watch loop.
#   consumer  psql (soak_consumer): BEGIN; INSERT INTO seen SELECT
#             global_position FROM poll('soak', 500); ack('soak'); COMMIT;
#             in a \watch loop (seen has a primary key on the position).
#   projection  async, handler inserts (position, event_id) into rm (both
#             unique): run by the background worker.
#   memreader a long-lived read_all pager (BackgroundPsql session,
#             soak_memreader) that is never killed, so that its memory can
#             be followed for the whole run.
# Every ~20 s (chaos): pg_terminate_backend of one random writer, reader or
# consumer backend and pg_cancel_backend of another (an active one if
# there is one); a client whose psql/pgbench exits is started again
# (the reader from its table's max, the consumer from its checkpoint).
# Every 5 s: head_position().  Every ~30 s: VmRSS, RssAnon, RssShmem
# (/proc/<pid>/status) and Pss (smaps_rollup) of the projection worker and
# of the memreader, sum(total_bytes) of pg_backend_memory_contexts in the
# memreader's own session, and the worker's "Grand total" from
# pg_log_backend_memory_contexts (server log).
#
# Then the writers stop, everything catches up (projection lag 0, consumer
# and reader have every event; up to 600 s) and:
#   - reader_seen, seen and rm each equal the positions of eventstore.events
#     (no skip, nothing extra; primary keys make a duplicate fail loudly);
#   - head_position() advanced between every two consecutive 5 s samples
#     taken while the writers ran (a stall longer than one period fails);
#   - the server log has no ERROR/FATAL/PANIC/WARNING but the expected
#     ones (listed with counts), no TRAP and no process ended by a signal;
#     the clients' stderr has no unexpected error either;
#   - memory is flat: for the worker and the memreader, the maximum of the
#     last third of the samples is at most the first third's maximum plus
#     2 MB, for RssAnon (private heap: VmRSS also counts the shared buffers
#     a process has touched, which grows with the data and is reported
#     only) and for the memory contexts' totals; and the bytes the worker's
#     contexts use (exact, not page-granular) grow by at most 256 kB.
#     Every sample is printed, with the growth per second.
# No timing is asserted beyond the stall rule.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time usleep);

my $seconds = $ENV{EVENTSTORE_SOAK_SECONDS};
plan skip_all => 'the soak runs only with EVENTSTORE_SOAK_SECONDS set (say 600)'
  unless defined $seconds && $seconds ne '';
die "EVENTSTORE_SOAK_SECONDS must be a number of seconds >= 30"
  unless $seconds =~ /^\d+$/ && $seconds >= 30;

my $n_writers = 3;
my $writer_rate = 20;             # transactions per second per writer (-R)
my $chaos_every = 20;
my $head_every = 5;
my $mem_every = 30;
my $mem_bound_kb = 2048;          # allowed growth, last third over first third
my $ctx_used_bound = 256 * 1024;  # the same for the bytes the worker's contexts use (exact figures)
my $drain_limit = 600;
my $tmp = PostgreSQL::Test::Utils::tempdir;

my $node = eventstore_node('soak', q(
eventstore.worker_databases = 'postgres'
eventstore.worker_naptime = '200ms'
log_statement = none
max_connections = 40
));

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
CREATE SEQUENCE soak_conflicts;
CREATE TABLE reader_seen (position bigint PRIMARY KEY);
CREATE TABLE seen (position bigint PRIMARY KEY);
CREATE TABLE rm (position bigint PRIMARY KEY, event_id uuid NOT NULL UNIQUE);

CREATE FUNCTION soak_events(n int, type text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(jsonb_build_object('type', type, 'data', jsonb_build_object('k', g)))
	FROM generate_series(1, n) g
$$;

-- Read the version, wait a little, append expecting it; on ES001 count the
-- conflict and try again (up to 5 times).
CREATE FUNCTION soak_append_expected(s text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	FOR i IN 1 .. 5 LOOP
		v := eventstore.stream_version(s);
		PERFORM pg_sleep(0.01);
		BEGIN
			PERFORM eventstore.append_event(s, 'Expected', jsonb_build_object('v', v), expected_version => v);
			RETURN;
		EXCEPTION WHEN SQLSTATE 'ES001' THEN
			PERFORM nextval('soak_conflicts');
		END;
	END LOOP;
END $$;

CREATE FUNCTION rm_h(e eventstore.event) RETURNS void LANGUAGE sql
AS $$ INSERT INTO rm VALUES (e.global_position, e.event_id) $$;
SELECT eventstore.create_projection('soak_rm', 'rm_h(eventstore.event)');
});
$node->safe_psql('postgres', q{SELECT eventstore.create_subscription('soak', from_position => 0)});

ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker'}),
	'the projection worker runs');

# ---- client scripts
my %pgbench_scripts = (
	single => [
		6, q{
\set s random(1, 200)
SELECT FROM eventstore.append_event('soak-' || :s, 'Single', jsonb_build_object('s', :s));
}
	],
	batch => [
		3, q{
\set s random(1, 200)
\set n random(2, 5)
SELECT FROM eventstore.append('soak-' || :s, soak_events(:n, 'Batch'));
}
	],
	expected => [
		3, q{
\set s random(1, 3)
SELECT soak_append_expected('hot-' || :s);
}
	],
	expected_raw => [
		1, q{
\set s random(1, 3)
SELECT eventstore.stream_version('hot-' || :s) AS v \gset
\sleep 10 ms
SELECT FROM eventstore.append_event('hot-' || :s, 'ExpectedRaw', '{}', expected_version => :v);
}
	],
	savepoint => [
		2, q{
\set s random(1, 200)
\set o random(1, 200)
\set ms random(0, 10)
BEGIN;
SELECT FROM eventstore.append_event('soak-' || :s, 'Kept', '{}');
SAVEPOINT sp;
SELECT FROM eventstore.append('soak-' || :o, soak_events(2, 'RolledBack'));
ROLLBACK TO SAVEPOINT sp;
SELECT FROM eventstore.append_event('soak-' || :o, 'AfterSavepoint', '{}');
\sleep :ms ms
COMMIT;
}
	],
	rollback => [
		1, q{
\set s random(1, 200)
BEGIN;
SELECT FROM eventstore.append('soak-' || :s, soak_events(2, 'RolledBack'));
ROLLBACK;
}
	]);
my @pgbench_files;
for my $name (sort keys %pgbench_scripts)
{
	my $file = "$tmp/$name.sql";
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh $pgbench_scripts{$name}[1];
	close $fh;
	push @pgbench_files, '-f', "$file\@$pgbench_scripts{$name}[0]";
}

my %psql_scripts = (
	reader => q{INSERT INTO reader_seen SELECT global_position FROM eventstore.read_all(after_position => (SELECT coalesce(max(position), 0) FROM reader_seen), max_count => 500) \watch 0.05
},
	consumer => q{BEGIN \; INSERT INTO seen SELECT global_position FROM eventstore.poll('soak', 500) \; SELECT FROM eventstore.ack('soak') \; COMMIT \watch 0.1
});
for my $r (keys %psql_scripts)
{
	open my $fh, '>', "$tmp/$r.sql" or die;
	print $fh $psql_scripts{$r};
	close $fh;
}

# ---- children: role => { pid, started }; started again when they exit
my %kids;
my %starts;
my $t_start;
my $t_end;
my $writing = 0;
my $connstr = $node->connstr('postgres');

sub spawn
{
	my ($role) = @_;
	my @cmd;
	if ($role =~ /^writer/)
	{
		my $left = int($t_end - time);
		return if $left < 1;
		@cmd = (
			'pgbench', '-n', '-c', 1, '-j', 1, '-R', $writer_rate, '-T', $left,
			'-h', $node->host, '-p', $node->port, @pgbench_files, 'postgres');
	}
	else
	{
		@cmd = ('psql', '-X', '-q', '-A', '-t', '-d', $connstr, '-f', "$tmp/$role.sql");
	}
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', '/dev/null';
		open STDERR, '>>', "$tmp/$role.err";
		$ENV{PGAPPNAME} = "soak_$role";
		{ exec @cmd; }
		POSIX::_exit(127);
	}
	$kids{$role} = { pid => $pid, started => time };
	$starts{$role}++;
	return;
}

# Reap exited children; start them again while they are wanted.
my %restart_after;
sub tend
{
	my ($want_writers, $want_readers) = @_;
	for my $role (keys %kids)
	{
		my $pid = $kids{$role}{pid};
		if (waitpid($pid, WNOHANG) == $pid)
		{
			delete $kids{$role};
			$restart_after{$role} = time + 0.2;
		}
	}
	my @roles = ((map { "writer$_" } 1 .. $n_writers), 'reader', 'consumer');
	for my $role (@roles)
	{
		next if $kids{$role};
		my $want = $role =~ /^writer/ ? $want_writers : $want_readers;
		next unless $want;
		next if ($restart_after{$role} // 0) > time;
		spawn($role);
	}
	return;
}

# ---- long-lived sessions: control (sampling, chaos) and memreader
# BackgroundPsql notes every query and its output; thousands of them would
# bury the figures, so the loop's queries run with notes discarded.
sub quiet
{
	my ($session, $sql) = @_;
	my $tb = Test::More->builder;
	my $out = $tb->output;
	open my $null, '>', '/dev/null' or die;
	$tb->output($null);
	my $r = eval { $session->query_safe($sql) };
	my $err = $@;
	$tb->output($out);
	die $err if $err;
	return $r;
}
my $control = $node->background_psql('postgres');
$control->set_query_timer_restart;
quiet($control, q{SET application_name = 'soak_control'});
my $memreader = $node->background_psql('postgres');
$memreader->set_query_timer_restart;
quiet($memreader, q{SET application_name = 'soak_memreader'});
my $memreader_pid = quiet($memreader, 'SELECT pg_backend_pid()');
my $memreader_last = 0;
my $memreader_events = 0;

sub memreader_page
{
	my ($n, $last) = split /\|/, quiet($memreader,
		"SELECT count(*), coalesce(max(global_position), $memreader_last) "
		  . "FROM eventstore.read_all(after_position => $memreader_last, max_count => 500)");
	$memreader_events += $n;
	$memreader_last = $last;
	return;
}

sub worker_pid
{
	return quiet($control,
		q{SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity
		   WHERE backend_type = 'eventstore projection worker'});
}

sub proc_mem
{
	my ($pid) = @_;
	my %m;
	open my $fh, '<', "/proc/$pid/status" or return {};
	while (<$fh>)
	{
		$m{$1} = $2 if /^(VmRSS|RssAnon|RssFile|RssShmem):\s+(\d+) kB/;
	}
	close $fh;
	if (open my $fh2, '<', "/proc/$pid/smaps_rollup")
	{
		while (<$fh2>) { $m{Pss} = $1 if /^Pss:\s+(\d+) kB/; }
		close $fh2;
	}
	return \%m;
}

my @head;      # [t, head, writing]
my @mem;       # { t, wpid, w => {...}, r => {...}, rctx }
my @chaos;     # [t, what, role, pid, ok]

sub sample_mem
{
	my $wpid = worker_pid();
	my $rctx = quiet($memreader, 'SELECT sum(total_bytes) FROM pg_backend_memory_contexts');
	my %s = (
		t => time - $t_start,
		wpid => $wpid,
		w => ($wpid =~ /^\d+$/ ? proc_mem($wpid) : {}),
		r => proc_mem($memreader_pid),
		rctx => $rctx);
	quiet($control, "SELECT pg_log_backend_memory_contexts($wpid)") if $wpid =~ /^\d+$/;
	push @mem, \%s;
	return;
}

sub chaos
{
	my $victims = q{application_name ~ '^soak_(writer|reader|consumer)' AND backend_type = 'client backend'};
	my ($tpid, $tapp) = split /\|/, quiet($control,
		"SELECT pid, application_name FROM pg_stat_activity WHERE $victims ORDER BY random() LIMIT 1");
	if (defined $tpid && $tpid ne '')
	{
		my $ok = quiet($control, "SELECT pg_terminate_backend($tpid)");
		push @chaos, [ time - $t_start, 'terminate', $tapp, $tpid, $ok ];
	}
	# a cancel only acts on a running statement: look for an active (or
	# idle in transaction) victim for up to about a second
	my ($cpid, $capp, $cstate);
	for my $try (1 .. 50)
	{
		($cpid, $capp, $cstate) = split /\|/, quiet($control,
			"SELECT pid, application_name, state FROM pg_stat_activity WHERE $victims AND pid <> "
			  . ($tpid || 0) . " ORDER BY state <> 'idle' DESC, random() LIMIT 1");
		last if !defined $cstate || $cstate ne 'idle';
		usleep(20_000);
	}
	if (defined $cpid && $cpid ne '')
	{
		my $ok = quiet($control, "SELECT pg_cancel_backend($cpid)");
		push @chaos, [ time - $t_start, "cancel ($cstate)", $capp, $cpid, $ok ];
	}
	return;
}

# ---- the run
$t_start = time;
$t_end = $t_start + $seconds;
$writing = 1;
tend(1, 1);
note sprintf('soak of %d s started: %d writers at %d tx/s each, reader, consumer, memreader',
	$seconds, $n_writers, $writer_rate);

my $next_head = $t_start;
my $next_chaos = $t_start + $chaos_every / 2;
my $next_mem = $t_start + 5;
while (time < $t_end)
{
	tend(1, 1);
	memreader_page();
	my $now = time;
	if ($now >= $next_head)
	{
		push @head, [ $now - $t_start, quiet($control, 'SELECT eventstore.head_position()'), 1 ];
		$next_head += $head_every;
	}
	if ($now >= $next_chaos && $now < $t_end - 5)
	{
		chaos();
		$next_chaos += $chaos_every;
	}
	if ($now >= $next_mem)
	{
		sample_mem();
		$next_mem += $mem_every;
	}
	usleep(100_000);
}
sample_mem();
# The writers end by themselves (-T); wait for them, then for the catch-up.
my $log_at_stop = -s $node->logfile;
my $t_writers_end = time;
while (grep { /^writer/ } keys %kids)
{
	tend(0, 1);
	memreader_page();
	usleep(100_000);
	last if time > $t_writers_end + 60;
}
$writing = 0;
push @head, [ time - $t_start, quiet($control, 'SELECT eventstore.head_position()'), 0 ];
my $caught_up = 0;
my $t_drain = time;
while (time < $t_drain + $drain_limit)
{
	tend(0, 1);
	memreader_page();
	my $done = quiet($control,
		q{SELECT (SELECT lag = 0 FROM eventstore.projections WHERE name = 'soak_rm')
		     AND (SELECT lag_events = 0 FROM eventstore.subscriptions WHERE name = 'soak')
		     AND (SELECT count(*) FROM seen) = (SELECT count(*) FROM eventstore.events)
		     AND (SELECT count(*) FROM reader_seen) = (SELECT count(*) FROM eventstore.events)
		     AND (SELECT max(position) FROM reader_seen) = eventstore.head_position()});
	if ($done eq 't' && $memreader_last >= quiet($control, 'SELECT eventstore.head_position()'))
	{
		$caught_up = 1;
		last;
	}
	usleep(200_000);
}
ok($caught_up, sprintf('everything caught up after the writers stopped (%.1f s)', time - $t_drain));
sample_mem();

# Stop the reader and the consumer: SIGINT ends psql's \watch.
kill 'INT', $kids{$_}{pid} for grep { $kids{$_} } qw(reader consumer);
my $t_stop = time;
while (%kids && time < $t_stop + 30)
{
	tend(0, 0);
	usleep(100_000);
}
kill 'KILL', $kids{$_}{pid} for keys %kids;
tend(0, 0);

# ---- figures
my ($n_events, $gaps, $conflicts, $max_pos) = split /\|/, $node->safe_psql(
	'postgres', q{
SELECT (SELECT count(*) FROM eventstore.events),
       pg_sequence_last_value('eventstore.global_position_seq') - (SELECT count(*) FROM eventstore.events),
       coalesce(pg_sequence_last_value('soak_conflicts'), 0),
       (SELECT max(global_position) FROM eventstore.events)});
diag "events appended: $n_events (max position $max_pos, positions rolled back: $gaps)";
diag "ES001 conflicts retried in soak_append_expected: $conflicts";
diag 'client starts: ' . join(', ', map { "$_ $starts{$_}" } sort keys %starts);
my %chaos_count;
$chaos_count{"$_->[1] $_->[2]"}++ for @chaos;
diag "chaos actions: " . scalar(@chaos);
diag "  $_: $chaos_count{$_}" for sort keys %chaos_count;
diag sprintf('memreader: %d events read, last position %d', $memreader_events, $memreader_last);

# ---- every event once, everywhere
cmp_ok($n_events, '>', 1000, 'the writers appended many events');
cmp_ok($gaps, '>', 0, 'the writers rolled positions back');
is($node->safe_psql('postgres', q{SELECT count(*) FROM eventstore.events WHERE event_type = 'RolledBack'}),
	'0', 'no rolled-back event is stored');
for my $t (qw(reader_seen seen rm))
{
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM eventstore.events e FULL JOIN $t s ON s.position = e.global_position
WHERE e.global_position IS NULL OR s.position IS NULL}),
		'0',
		"$t holds exactly the positions of eventstore.events (no skip, nothing extra; primary key: no duplicate)");
}
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM rm JOIN eventstore.events e ON e.global_position = rm.position WHERE e.event_id <> rm.event_id}),
	'0',
	'the projection applied each event as stored');
is( $node->safe_psql(
		'postgres', q{SELECT error_count || '|' || coalesce(last_error, '') FROM eventstore.projections WHERE name = 'soak_rm'}),
	'0|', 'the projection recorded no error');

# ---- the feed never stalled
my @stalls;
for my $i (1 .. $#head)
{
	my ($a, $b) = ($head[ $i - 1 ], $head[$i]);
	next unless $a->[2] && $b->[2];
	push @stalls, sprintf('%.1f s -> %.1f s at %d', $a->[0], $b->[0], $b->[1]) if $b->[1] <= $a->[1];
}
diag sprintf('head_position samples: %d (every %d s while writing), first %d, last %d',
	scalar @head, $head_every, $head[0][1], $head[-1][1]);
diag "stall: $_" for @stalls;
is(scalar @stalls, 0, "head_position advanced between every two consecutive samples while the writers ran");

# ---- memory
# the worker's memory contexts, from its pg_log_backend_memory_contexts dumps
my $log = slurp_file($node->logfile);
my (%grand, %grand_used, %top_used);
while ($log =~ /\[(\d+)\] [^\n]*LOG:\s+(?:Grand total: (\d+) bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used|level: 0; TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used)/g)
{
	if (defined $2) { push @{ $grand{$1} }, $2; push @{ $grand_used{$1} }, $3; }
	else { push @{ $top_used{$1} }, $4; }
}
my @wpids = do { my %u; grep { !$u{$_}++ } map { $_->{wpid} } @mem };
is(scalar @wpids, 1, 'one projection worker (one pid) for the whole run: ' . join(',', @wpids));
for my $i (0 .. $#mem)
{
	$mem[$i]{wctx} = $grand{ $wpids[0] }[$i];
	$mem[$i]{wused} = $grand_used{ $wpids[0] }[$i];
	$mem[$i]{wtop} = $top_used{ $wpids[0] }[$i];
}
diag 'memory samples (kB; ctx = memory contexts total, bytes):';
diag sprintf('  %6s | %-58s | %-38s', 't(s)', 'worker VmRSS RssAnon RssShmem Pss ctx ctx-used Top-used', 'memreader VmRSS RssAnon RssShmem Pss ctx');
for my $s (@mem)
{
	diag sprintf('  %6.0f | %7d %7d %7d %7d %9s %9s %9s | %7d %7d %7d %7d %9s',
		$s->{t},
		(map { $s->{w}{$_} // -1 } qw(VmRSS RssAnon RssShmem Pss)), $s->{wctx} // '?', $s->{wused} // '?', $s->{wtop} // '?',
		(map { $s->{r}{$_} // -1 } qw(VmRSS RssAnon RssShmem Pss)), $s->{rctx} // '?');
}
my $third = int(@mem / 3) || 1;
for my $series (
	[ 'worker RssAnon (kB)', sub { $_[0]{w}{RssAnon} }, $mem_bound_kb ],
	[ 'worker memory contexts (bytes)', sub { $_[0]{wctx} }, $mem_bound_kb * 1024 ],
	[ 'worker memory contexts, used (bytes)', sub { $_[0]{wused} }, $ctx_used_bound ],
	[ 'memreader RssAnon (kB)', sub { $_[0]{r}{RssAnon} }, $mem_bound_kb ],
	[ 'memreader memory contexts (bytes)', sub { $_[0]{rctx} }, $mem_bound_kb * 1024 ],
	[ 'worker VmRSS (kB, reported only)', sub { $_[0]{w}{VmRSS} }, undef ],
	[ 'memreader VmRSS (kB, reported only)', sub { $_[0]{r}{VmRSS} }, undef ])
{
	my ($label, $get, $bound) = @$series;
	my @v = map { $get->($_) } @mem;
	if (grep { !defined } @v)
	{
		fail("$label: every sample has a value") if defined $bound;
		next;
	}
	my ($first) = sort { $b <=> $a } @v[ 0 .. $third - 1 ];
	my ($last) = sort { $b <=> $a } @v[ $#v - $third + 1 .. $#v ];
	my $rate = $mem[-1]{t} > $mem[0]{t} ? ($v[-1] - $v[0]) / ($mem[-1]{t} - $mem[0]{t}) : 0;
	my $msg = sprintf('%s: first-third max %d, last-third max %d, growth %d (first to last sample: %.1f/s)',
		$label, $first, $last, $last - $first, $rate);
	if (defined $bound)
	{
		cmp_ok($last, '<=', $first + $bound, "$msg (bound $bound)");
	}
	else
	{
		diag $msg;
	}
}

# ---- errors: clients and server log
$control->quit;
$memreader->quit;
my $log_before_shutdown = -s $node->logfile;
$node->stop('fast');
$log = slurp_file($node->logfile);
my $running_log = substr($log, 0, $log_before_shutdown);
my $shutdown_log = substr($log, $log_before_shutdown);

my @expected = (
	[ 'ES001 (raw expected_version append)', qr/wrong expected version for stream/ ],
	[ 'cancel (pg_cancel_backend, SIGINT at the end)', qr/canceling statement due to user request/ ],
	[ 'terminate (pg_terminate_backend)', qr/terminating connection due to administrator command/ ],
);
my (%server_expected, @server_unexpected);
for my $line (split /\n/, $running_log)
{
	next unless $line =~ /\b(ERROR|FATAL|PANIC|WARNING):\s+(.*)$/ || $line =~ /^TRAP:/;
	my ($level, $msg) = ($1 // 'TRAP', $2 // $line);
	my ($kind) = grep { $msg =~ $_->[1] } @expected;
	if ($kind && $level ne 'PANIC' && $level ne 'WARNING')
	{
		$server_expected{ $kind->[0] }++;
	}
	else
	{
		push @server_unexpected, $line;
	}
}
# a fast shutdown terminates the background workers
for my $line (split /\n/, $shutdown_log)
{
	next unless $line =~ /\b(ERROR|FATAL|PANIC|WARNING):\s+(.*)$/ || $line =~ /^TRAP:/;
	if ($line =~ /FATAL:\s+terminating background worker ".*" due to administrator command/)
	{
		$server_expected{'shutdown: background worker terminated (fast stop)'}++;
	}
	else
	{
		push @server_unexpected, $line;
	}
}
my $cancels_before_stop = () = substr($log, 0, $log_at_stop) =~ /canceling statement due to user request/g;
diag "server log, expected errors filtered:";
diag "  $_: $server_expected{$_}" for sort keys %server_expected;
diag "  (of the cancels, $cancels_before_stop before the writers stopped)";
diag "server log, unexpected: $_" for @server_unexpected[ 0 .. ($#server_unexpected > 40 ? 40 : $#server_unexpected) ];
is(scalar @server_unexpected, 0, 'the server log has no ERROR, FATAL, PANIC, WARNING or TRAP but the expected ones');
my @abnormal = grep { /exited with exit code|server process .* exited/ } split /\n/, $running_log;
push @abnormal, grep { /terminated by signal|Segmentation fault|^TRAP:/ } split /\n/, $log;
diag "abnormal exit: $_" for @abnormal;
is(scalar @abnormal, 0, 'no process ended abnormally (before the shutdown: none exited with a code; none ever by a signal)');

my @client_unexpected;
my %client_expected;
for my $role ((map { "writer$_" } 1 .. $n_writers), 'reader', 'consumer')
{
	my $err = -e "$tmp/$role.err" ? slurp_file("$tmp/$role.err") : '';
	for my $line (split /\n/, $err)
	{
		next unless $line =~ /\b(ERROR|FATAL|PANIC):\s+(.*)$/ || $line =~ /duplicate key/;
		my $msg = $2 // $line;
		my ($kind) = grep { $msg =~ $_->[1] } @expected;
		if ($kind) { $client_expected{"$role: $kind->[0]"}++; }
		else { push @client_unexpected, "$role: $line"; }
	}
}
diag "client stderr, expected errors: $_ $client_expected{$_}" for sort keys %client_expected;
diag "client stderr, unexpected: $_" for @client_unexpected;
is(scalar @client_unexpected, 0, 'the clients saw no unexpected error');

done_testing();
