# The output plugin's cache of which relation is eventstore.events follows
# catalog changes decoded in the same decoding session (one walsender, one
# SQL decoding call), as pgoutput's relation cache does.
#
# In one stretch of WAL, decoded by one pg_recvlogical and by one
# pg_logical_slot_peek_changes call:
#   1. an event is appended (the decoder learns: this relation is events);
#   2. eventstore.events is renamed to events_old and a new
#      eventstore.events is created;
#   3. a row is inserted into events_old: no longer the events table, so no
#      event (the decoder used to keep its first answer and wrote it);
#   4. a row is inserted into the new eventstore.events: an event;
#   5. DROP EXTENSION, CREATE EXTENSION, and an append to the new store:
#      an event.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;
use IPC::Run;

my $node = eventstore_node('inval', qq(
synchronous_commit = on
log_statement = none
), allows_streaming => 'logical');

$node->safe_psql('postgres', q{
CREATE EXTENSION eventstore;
SELECT pg_create_logical_replication_slot('sql_slot', 'eventstore');
SELECT pg_create_logical_replication_slot('recv_slot', 'eventstore');
});

my $insert = q{(global_position, stream, stream_version, event_id, event_type, data, metadata, created_at)
  VALUES (%d, '%s', 1, gen_random_uuid(), 'Direct', '{}', '{}', now())};

$node->safe_psql('postgres', q{SELECT eventstore.append_event('inv-first', 'A')});
$node->safe_psql('postgres', q{
BEGIN;
ALTER TABLE eventstore.events RENAME TO events_old;
CREATE TABLE eventstore.events (LIKE eventstore.events_old);
COMMIT;});
$node->safe_psql('postgres', 'INSERT INTO eventstore.events_old ' . sprintf($insert, 1000, 'inv-renamed-away'));
$node->safe_psql('postgres', 'INSERT INTO eventstore.events ' . sprintf($insert, 1001, 'inv-new-table'));
$node->safe_psql('postgres', 'DROP EXTENSION eventstore CASCADE');
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
$node->safe_psql('postgres', q{SELECT eventstore.append_event('inv-reinstalled', 'B')});

my $expected = 'inv-first,inv-new-table,inv-reinstalled';

# Streams of the decoded lines, in order.
sub streams_of
{
	my ($text) = @_;
	return join(',', map { /"stream":"([^"]+)"/ ? $1 : "?$_" } split /\n/, $text);
}

is(streams_of($node->safe_psql('postgres',
	q{SELECT data FROM pg_logical_slot_peek_changes('sql_slot', NULL, NULL)})),
	$expected, 'one SQL decoding call decodes exactly the inserts into the events table of their time');

my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		$node->installed_command('pg_recvlogical'),
		'-S', 'recv_slot', '--dbname', $node->connstr('postgres'),
		'--endpos', $end_lsn, '-f', '-', '--no-loop', '--start'
	],
	'>', \$out, '2>', \$err);
ok($ok, 'pg_recvlogical succeeds') or diag($err);
is(streams_of($out), $expected, '  and so does one walsender');

done_testing();
