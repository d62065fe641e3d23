# The System Board demo (scripts/demo.sh), end to end, checked by content.
#
# scripts/demo.sh needs root (apt, make install), so this test runs the same
# scenario files, demo/board/*.sql, against its own cluster, configured like
# the demo's (the async projection worker on for database "demo"), then
# checks what the scenario must produce:
#   - the read models: the systems board, tasks (scan tasks per system with
#     the priority of its classification, remediation tasks with priority
#     and due date from the CVSS score), vulnerabilities by system -- exactly
#     one critical, on pay-gateway;
#   - exactly one SystemSecurityAlert, caused by that vulnerability;
#   - the causation chain: every event carries the correlation id of its
#     command; every reaction's causation_id is an event of the same
#     correlation; the tree of the critical system's correlation has the
#     expected shape;
#   - idempotency: the reaction loop run a second time appends nothing, and
#     after every subscription is recreated from position 0 (the whole
#     history delivered again) the handlers append nothing and the read
#     models are unchanged;
#   - pg_recvlogical -P eventstore streams every event as a JSON line;
#   - the display files of the demo (read models, tree, feed) run cleanly.
use strict;
use warnings;

use Cwd qw(getcwd);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Tests run from the top directory of the tree.
my $demo = getcwd() . '/demo';
ok(-f "$demo/board/1_setup.sql" && -f "$demo/cves.json", "demo files found under $demo");

my $node = PostgreSQL::Test::Cluster->new('demo');
$node->init;
$node->append_conf('postgresql.conf', slurp_file('test/eventstore.conf'));
$node->append_conf('postgresql.conf', "eventstore.worker_databases = 'demo'\n"
	  . "eventstore.worker_naptime = '100ms'\n"
	  . "log_statement = none\n");
$node->start;
$node->safe_psql('postgres',
	q{CREATE DATABASE demo TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});

# Run demo files in one psql session, as scripts/demo.sh does.
sub run_files
{
	my @files = @_;
	my ($out, $err);
	my $rc = $node->psql(
		'demo', '',
		stdout => \$out,
		stderr => \$err,
		extra_params => [ '-v', "cves_file=$demo/cves.json", map { ('-f', "$demo/$_") } @files ]);
	is($rc, 0, "psql -f @files") or diag("stderr:\n$err\nstdout:\n$out");
	return $out;
}

sub query { return $node->safe_psql('demo', shift); }

run_files('board/1_setup.sql');
is(query(q{SELECT count(*) FROM vulnmgmt.cve}), '6', 'the CVE list is loaded from demo/cves.json');

# an external consumer, as in the demo: a slot created before any event
my $connstr = $node->connstr('demo');
$node->command_ok(
	[ 'pg_recvlogical', '-d', $connstr, '--slot', 'demo_tail', '--create-slot', '-P', 'eventstore' ],
	'pg_recvlogical creates a slot with the eventstore plugin');

my $out = run_files('board/2_register.sql');
like($out, qr/refused, SQLSTATE ES001: wrong expected version for stream "system-pay-gateway"/,
	'registering a system twice is refused with ES001');
is(query(q{SELECT count(*) FROM eventstore.events}), '5', 'five systems registered, nothing else yet');

run_files('board/3_react.sql');

# The reaction log of the first run: three rounds, then quiet.
is( query(q{SELECT string_agg(format('%s:%s:%s>%s', round, context, delivered, appended), ' '
                          ORDER BY round, context)
          FROM demo.reaction_log WHERE run = 1}),
	'1:system-management:0>0 1:task-management:5>5 1:vulnerability-management:5>5 '
	  . '2:system-management:5>1 2:task-management:10>10 2:vulnerability-management:5>10 '
	  . '3:system-management:0>0 3:task-management:0>0 3:vulnerability-management:0>0',
	'reactions propagate round by round until nothing moves');

my $events_by_type = q{SELECT string_agg(event_type || '=' || n, ' ' ORDER BY event_type)
                         FROM (SELECT event_type, count(*) AS n FROM eventstore.events GROUP BY 1) t};
my $expected_types = 'SystemRegistered=5 SystemSecurityAlert=1 TaskCompleted=5 TaskCreated=10 '
  . 'VulnScanCompleted=5 VulnScanInitiated=5 VulnerabilityDetected=5';
is(query($events_by_type), $expected_types, 'the store holds the expected events');

# --- read models -------------------------------------------------------------

my $systems = q{SELECT string_agg(concat_ws('|', system_id, classification, scan_priority, scan_status,
                                            vulnerabilities, max_cvss, alerts), E'\n' ORDER BY system_id)
                  FROM board.systems};
is(query($systems), join("\n",
		'build-runner|internal|medium|clean|0|0',
		'hr-portal|confidential|high|vulnerable|2|7.5|0',
		'pay-gateway|restricted|high|vulnerable|1|10.0|1',
		'status-page|public|low|vulnerable|1|6.1|0',
		'wiki|internal|medium|vulnerable|1|7.7|0'),
	'systems board (async projection, run by the worker)');

my $vulns = q{SELECT string_agg(concat_ws('|', system_id, cve_id, package, version, cvss, severity),
                                E'\n' ORDER BY system_id, cve_id)
                FROM board.vulnerabilities};
is(query($vulns), join("\n",
		'hr-portal|CVE-2020-11022|jquery|3.4.1|6.1|medium',
		'hr-portal|CVE-2022-3602|openssl|3.0.5|7.5|high',
		'pay-gateway|CVE-2021-44228|log4j-core|2.14.1|10.0|critical',
		'status-page|CVE-2020-11022|jquery|3.4.1|6.1|medium',
		'wiki|CVE-2021-23017|nginx|1.20.0|7.7|high'),
	'vulnerabilities by system (inline projection); fixed versions and other packages do not match');
is( query(q{SELECT string_agg(system_id || ' ' || cve_id || ' ' || cvss, ',')
          FROM board.vulnerabilities WHERE severity = 'critical'}),
	'pay-gateway CVE-2021-44228 10.0',
	'exactly one critical vulnerability, on pay-gateway');

is( query(q{SELECT string_agg(system_id || ':' || priority || ':' || status, ' ' ORDER BY system_id)
          FROM board.tasks WHERE kind = 'scan'}),
	'build-runner:medium:done hr-portal:high:done pay-gateway:high:done status-page:low:done wiki:medium:done',
	'one scan task per system, priority from its classification, closed when the scan completed');

# Remediation tasks: priority and due date (from the detection's time) by CVSS.
is( query(q{SELECT string_agg(format('%s:%s:%s:%s:%s', v.system_id, v.cve_id, t.priority,
                                 t.due_at - v.detected_at, t.status), E'\n' ORDER BY v.system_id, v.cve_id)
          FROM board.vulnerabilities AS v
          JOIN eventstore.events AS c
            ON c.event_type = 'TaskCreated' AND c.metadata ->> 'causation_id' = v.event_id::text
          JOIN board.tasks AS t ON t.task_id = c.data ->> 'task_id'}),
	join("\n",
		'hr-portal:CVE-2020-11022:low:30 days:open',
		'hr-portal:CVE-2022-3602:medium:7 days:open',
		'pay-gateway:CVE-2021-44228:high:3 days:open',
		'status-page:CVE-2020-11022:low:30 days:open',
		'wiki:CVE-2021-23017:medium:7 days:open'),
	'one remediation task per vulnerability; the critical one high priority, due in 3 days');
is( query(q{SELECT string_agg(priority || ':' || kind || ':' || system_id, ' ') FROM board.open_tasks}),
	'high:remediation:pay-gateway medium:remediation:hr-portal medium:remediation:wiki '
	  . 'low:remediation:hr-portal low:remediation:status-page',
	'open tasks by priority (then due date, system)');

is( query(q{SELECT string_agg(format('%s@%s %s %s', a.stream, a.stream_version, a.data ->> 'cve_id',
                                 cause.event_type), ',')
          FROM eventstore.events AS a
          JOIN eventstore.events AS cause ON cause.event_id::text = a.metadata ->> 'causation_id'
         WHERE a.event_type = 'SystemSecurityAlert'}),
	'system-pay-gateway@2 CVE-2021-44228 VulnerabilityDetected',
	'exactly one SystemSecurityAlert, on pay-gateway, caused by the critical vulnerability');

is( query(q{SELECT count(*) FILTER (WHERE last_error IS NULL) || '/' || count(*) FROM eventstore.projections}),
	'3/3', 'projections without errors');

# --- causation ---------------------------------------------------------------

is( query(q{SELECT count(*) FROM eventstore.events
         WHERE NOT (metadata ? 'correlation_id' AND metadata ? 'causation_id')}),
	'0', 'every event carries correlation_id and causation_id');
is( query(q{SELECT count(*) FROM eventstore.events AS e
          JOIN sysmgmt.command_log AS c ON c.command_id::text = e.metadata ->> 'correlation_id'
                                       AND c.command_id::text = e.metadata ->> 'causation_id'
         WHERE e.event_type = 'SystemRegistered'}),
	'5', 'each SystemRegistered is caused by its command, whose id is the correlation id');
is( query(q{SELECT count(*) || ' reactions, ' || count(cause.event_id) || ' with a cause of the same correlation'
          FROM eventstore.events AS e
          LEFT JOIN eventstore.events AS cause
            ON cause.event_id::text = e.metadata ->> 'causation_id'
           AND cause.metadata ->> 'correlation_id' = e.metadata ->> 'correlation_id'
           AND cause.global_position < e.global_position
         WHERE e.event_type <> 'SystemRegistered'}),
	'31 reactions, 31 with a cause of the same correlation',
	"every reaction's causation_id is an earlier event of the same correlation");
is( query(q{SELECT string_agg(n::text, ',' ORDER BY n)
          FROM (SELECT count(*) AS n FROM eventstore.events GROUP BY metadata ->> 'correlation_id') t}),
	'5,7,7,8,9', 'one correlation per registered system, each with its own reactions');

my $critical = query(q{SELECT r.metadata ->> 'correlation_id'
                     FROM board.vulnerabilities AS v
                     JOIN eventstore.read_stream('system-' || v.system_id, 1, 1) AS r ON true
                    WHERE v.severity = 'critical'});
like($critical, qr/^[0-9a-f-]{36}$/, 'the critical system has one correlation id');

is( query(qq{SELECT string_agg(e.event_type || '<-' || coalesce(cause.event_type, c.command), ' '
                           ORDER BY e.global_position)
           FROM eventstore.events AS e
           LEFT JOIN eventstore.events AS cause ON cause.event_id::text = e.metadata ->> 'causation_id'
           LEFT JOIN sysmgmt.command_log AS c ON c.command_id::text = e.metadata ->> 'causation_id'
          WHERE e.metadata ->> 'correlation_id' = '$critical'}),
	'SystemRegistered<-RegisterSystem VulnScanInitiated<-SystemRegistered TaskCreated<-VulnScanInitiated '
	  . 'VulnerabilityDetected<-VulnScanInitiated VulnScanCompleted<-VulnScanInitiated '
	  . 'TaskCreated<-VulnerabilityDetected TaskCompleted<-VulnScanCompleted '
	  . 'SystemSecurityAlert<-VulnerabilityDetected',
	'the critical correlation: each event and its cause');
is( query(qq{SELECT string_agg(depth || ':' || kind, ' ') FROM demo.causation_tree('$critical')}),
	'0:RegisterSystem 1:SystemRegistered 2:VulnScanInitiated 3:TaskCreated 3:VulnerabilityDetected '
	  . '4:TaskCreated 4:SystemSecurityAlert 3:VulnScanCompleted 4:TaskCompleted',
	'the causation tree of the critical correlation has the expected shape');
$out = run_files('board/5_causation.sql');
like($out, qr/^└─ SystemRegistered  system-pay-gateway\@1 .*\n.*\n.*\n.*VulnerabilityDetected .*CVE-2021-44228.*\n\s*│  ├─ TaskCreated .*remediation task, priority high.*\n\s*│  └─ SystemSecurityAlert  system-pay-gateway\@2/m,
	'the demo prints the tree with the alert under the critical vulnerability');

# --- idempotency ---------------------------------------------------------------

my $models = "$systems; $vulns; SELECT string_agg(concat_ws('|', task_id, kind, system_id, priority, due_at, status), ',' ORDER BY task_id) FROM board.tasks";
my $models_before = query($models);

run_files('board/3_react.sql');
is( query(q{SELECT string_agg(format('%s:%s>%s', round, delivered, appended), ' ' ORDER BY round, context)
          FROM demo.reaction_log WHERE run = 2}),
	'1:0>0 1:0>0 1:0>0', 'the reaction loop run again: nothing delivered, nothing appended');

run_files('board/6_redeliver.sql');
is( query(q{SELECT string_agg(format('%s:%s:%s>%s', round, context, delivered, appended), ' '
                          ORDER BY round, context)
          FROM demo.reaction_log WHERE run = 3}),
	'1:system-management:5>0 1:task-management:15>0 1:vulnerability-management:10>0 '
	  . '2:system-management:0>0 2:task-management:0>0 2:vulnerability-management:0>0',
	'subscriptions recreated from position 0 deliver the whole history again; handlers append nothing');
is(query($events_by_type), $expected_types, 'no event was appended twice');
is(query(q{SELECT count(*) FROM eventstore.processed}), '30', 'mark_processed: one row per event handled per context');
run_files('board/3_react.sql');    # and the projections are caught up
is(query($models), $models_before, 'read models unchanged by the redelivery');

# --- the display files and the external tail ------------------------------------

$out = run_files('board/4_read_models.sql', 'board/7_feed.sql');
like($out, qr/upgrade log4j-core 2.14.1 to 2.15.0 on pay-gateway \(CVE-2021-44228\)/,
	'the demo prints the open tasks');
like($out, qr/^\s*36\s*\|\s*system-pay-gateway\s*\|\s*2\s*\|\s*SystemSecurityAlert\s*\|/m,
	'the demo prints the global feed');

my $endpos = query(q{SELECT pg_current_wal_lsn()});
my $tail = PostgreSQL::Test::Utils::tempdir() . '/tail.jsonl';
$node->command_ok(
	[ 'pg_recvlogical', '-d', $connstr, '--slot', 'demo_tail', '--start', '--no-loop',
	  '--endpos', $endpos, '-f', $tail ],
	'pg_recvlogical tails the store up to the current WAL position');
my @lines = split /\n/, slurp_file($tail);
is(scalar(@lines), 36, 'one JSON line per event');
is( join(',', map { /"position":(\d+),/ ? $1 : '?' } @lines),
	join(',', 1 .. 36), 'in position order (commit order here)');
is(scalar(grep { /"type":"SystemSecurityAlert"/ && /"correlation_id": "$critical"/ } @lines),
	1, 'the alert is in the tail with its correlation id');

$node->stop;
done_testing();
