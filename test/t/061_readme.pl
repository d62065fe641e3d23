# Every SQL block of README.md runs as written (the brief's rule; issue
# "README blocks that do not hold when pasted").
#
# The blocks run in README order, each in a psql session of its own (so a
# block's BEGIN ... COMMIT is its own), in one database of a fresh cluster
# without the extension (the Install block creates it).  A block may show
# the errors it expects as comment lines "-- ERROR:  message" right after
# the statement; the errors psql reports must be exactly those, in order,
# and a block without such lines must raise none.  The native logical
# replication block runs "on the subscriber": a second cluster, with the
# block's connection string pointed at the first.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('readme', "synchronous_commit = on\n", allows_streaming => 'logical');
my $subscriber = eventstore_node('readme_subscriber', "synchronous_commit = on\n");
$node->safe_psql('postgres', 'CREATE DATABASE app');
$subscriber->safe_psql('postgres', 'CREATE DATABASE app');
$subscriber->safe_psql('app', 'CREATE EXTENSION eventstore');

my @lines = split /\n/, slurp_file('README.md');
my @blocks;
for (my $i = 0; $i <= $#lines; $i++)
{
	next unless $lines[$i] =~ /^(\s*)```sql\s*$/;
	my $indent = $1;
	my $start = $i + 1;
	my @body;
	for ($i++; $i <= $#lines && $lines[$i] !~ /^\s*```\s*$/; $i++)
	{
		(my $l = $lines[$i]) =~ s/^\Q$indent\E//;
		push @body, $l;
	}
	push @blocks, { line => $start, sql => join("\n", @body) . "\n" };
}
ok(@blocks >= 8, scalar(@blocks) . ' SQL blocks in README.md');

for my $b (@blocks)
{
	my $sql = $b->{sql};
	my $target = $node;
	my $where = "README.md line $b->{line}";
	if ($sql =~ /CREATE SUBSCRIPTION/)
	{
		my $connstr = 'host=' . $node->host . ' port=' . $node->port . ' dbname=app';
		$sql =~ s/CONNECTION '[^']*'/CONNECTION '$connstr'/;
		$target = $subscriber;
		$where .= ' (on the subscriber)';
	}
	my @want = map { /^\s*--\s*ERROR:\s+(.*\S)\s*$/ ? ($1) : () } split /\n/, $sql;
	my ($out, $err) = ('', '');
	$target->psql('app', $sql, stdout => \$out, stderr => \$err, on_error_stop => 0);
	my @have = map { /ERROR:\s+(.*\S)\s*$/ ? ($1) : () } split /\n/, $err;
	is(join("\n", @have), join("\n", @want), "$where runs as written")
	  or diag("block:\n$b->{sql}\nstderr:\n$err");
}

# the replicated copy arrived (the subscriber block really subscribed)
ok($subscriber->poll_query_until('app', q{SELECT count(*) > 0 FROM eventstore.events}),
	'the subscriber block replicates the events');
my ($rc, $out, $err) = $subscriber->psql('app', q{SELECT eventstore.append_event('copy-1', 'X')},
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  23505: cannot append to stream "copy-1": global position \d+ is taken.*logical replication copy/s,
	'an append on the copy says it is a copy');
$subscriber->safe_psql('app', 'DROP SUBSCRIPTION events_copy');

done_testing();
