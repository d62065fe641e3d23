# create_subscription while a catalog change commits during the slot's
# snapshot build.  Building the slot's first snapshot decodes that commit,
# and PostgreSQL decodes it in an internal subtransaction, whose end leaves
# CurrentResourceOwner at the top transaction's.  The PL/pgSQL statement
# that called eventstore_internal.create_slot then released its snapshot
# under the wrong owner: "snapshot reference ... is not owned by resource
# owner TopTransaction", and the subscription was not created.  (Found
# under valgrind in 021_subscription_seam.pl, whose slower creations let
# the writers' commits fall in that window.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('slotddl');
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# X1 holds a transaction id from before the slot's start, X2 one from
# between its start and its full snapshot; the DDL commits after the full
# snapshot and before X2 ends (the slot is consistent only then).
my %x = map { $_ => $node->background_psql('postgres') } qw(X1 X2);
$x{X1}->query_safe('BEGIN; SELECT pg_current_xact_id();');
my $log_offset = -s $node->logfile;
my $creator = start_psql_script($node, $node->basedir . '/create.sql',
	q{SELECT eventstore.create_subscription('during_ddl');});
$log_offset = $node->wait_for_log(qr/logical decoding found initial starting point/, $log_offset);
$x{X2}->query_safe('BEGIN; SELECT pg_current_xact_id();');
$x{X1}->query_safe('COMMIT');
$node->safe_psql('postgres', 'CHECKPOINT');
$log_offset = $node->wait_for_log(qr/logical decoding found initial consistent point/, $log_offset);
$node->safe_psql('postgres', 'CREATE TABLE ddl_during_slot_build (a int); DROP TABLE ddl_during_slot_build;');
$x{X2}->query_safe('COMMIT');
$node->safe_psql('postgres', 'CHECKPOINT');
$creator->{h}->finish;
is($? >> 8, 0, 'create_subscription succeeds while a catalog change commits during the slot build')
  or diag($creator->{err});
$_->quit for values %x;

is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM eventstore.subscription WHERE name = 'during_ddl'}),
	'1', 'the subscription exists');
$node->safe_psql('postgres', q{SELECT eventstore.append_event('after-ddl', 'A')});
is( $node->safe_psql('postgres',
		q{SELECT string_agg(event_type, ',') FROM eventstore.poll('during_ddl') WHERE stream = 'after-ddl'}),
	'A', 'and delivers an event stored after it');

$node->stop;
done_testing();
