# Test clusters for the TAP tests in test/t: a PostgreSQL::Test::Cluster
# configured for eventstore (test/eventstore.conf) plus the test's own
# postgresql.conf lines, started.
#
#   use lib 'test/perl';
#   use EventstoreNode;
#   my $node = eventstore_node('name', "synchronous_commit = on\n", allows_streaming => 'logical');
package EventstoreNode;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(eventstore_node wait_backend_gone start_psql_script readme_block worker_pid worker_rounds);

# eventstore_node(name, extra postgresql.conf text or undef, init options)
sub eventstore_node
{
	my ($name, $conf, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%init);
	$node->append_conf('postgresql.conf', slurp_file('test/eventstore.conf'));
	$node->append_conf('postgresql.conf', $conf) if defined $conf;
	$node->start;
	return $node;
}

# Wait until the backend with that pid has exited.
sub wait_backend_gone
{
	my ($node, $pid) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid")
	  or die "backend $pid did not exit";
	return;
}

# Write sql to file and run it with psql in the background (unaligned,
# tuples only, stopping at the first error); extra connection options
# (say application_name=...) are appended to the connection string.
# Returns { h => the IPC::Run harness, out => stdout, err => stderr }.
sub start_psql_script
{
	my ($node, $file, $sql, $conninfo) = @_;
	my %run = (out => '', err => '');

	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh $sql;
	close $fh;
	$run{h} = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') . (defined $conninfo ? " $conninfo" : ''),
			'-f', $file
		],
		'<', \undef, '>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# The SQL block of README.md that follows the line "<!-- test: NAME -->",
# as written there: tests run the README's own text.
sub readme_block
{
	my ($name) = @_;
	my $readme = slurp_file('README.md');

	$readme =~ /^<!-- test: \Q$name\E -->\n```sql\n(.*?)^```$/ms
	  or die "README.md has no block <!-- test: $name -->";
	return $1;
}

# The pid of the running projection worker (waits for it to start).
sub worker_pid
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker'})
	  or die 'the projection worker does not run';
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventstore projection worker'});
}

# How many rounds the worker with that pid has logged (log_min_messages = debug1).
sub worker_rounds
{
	my ($node, $pid) = @_;
	my $log = slurp_file($node->logfile);
	my @r = ($log =~ /\[$pid\] DEBUG:  eventstore worker: \d+ projections due/g);
	return scalar @r;
}

1;
