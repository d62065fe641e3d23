# Native logical replication of the event store: eventstore.create_publication()
# publishes inserts into eventstore.events, so another cluster can
# CREATE SUBSCRIPTION to it and pgoutput-based tools can consume it.
#
# Publisher: the extension, some events before the publication (copied by
# the initial table sync), then appends after it: single events, batches,
# a transaction over two streams, two interleaved sessions, and a rolled
# back append.  Two subscribers: one with a plain table eventstore.events
# of the same columns (no extension), one with the extension installed.
# Both must end up with exactly the publisher's events: same count, same
# checksum of (global_position, event_id, stream, stream_version) and of
# every column.  A pgoutput slot on the publisher sees one insert message
# per appended event.
#
# UPDATE, DELETE and TRUNCATE are refused on the publisher; and even with
# the immutability trigger disabled by a superuser, an UPDATE and a DELETE
# are not published: the subscribers keep the original rows and pgoutput
# sends no update or delete message.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $pub = eventstore_node('publisher', "synchronous_commit = on\nlog_statement = none\n", allows_streaming => 'logical');

my $plain = PostgreSQL::Test::Cluster->new('plain_subscriber');
$plain->init;
$plain->append_conf('postgresql.conf', "log_statement = none\n");
$plain->start;

my $ext = eventstore_node('extension_subscriber', "log_statement = none\n");

$pub->safe_psql(
	'postgres', q{
CREATE EXTENSION eventstore;
SELECT eventstore.append('early-1', '[{"type": "Early", "data": {"n": 1}}, {"type": "Early", "data": {"n": 2}}]');
SELECT eventstore.append_event('early-2', 'Early', '{"s": "quote \" and é"}', '{"correlation_id": "c-1"}');
SELECT eventstore.create_publication();
});
is( $pub->safe_psql('postgres',
		q{SELECT pubinsert || ',' || pubupdate || ',' || pubdelete || ',' || pubtruncate FROM pg_publication WHERE pubname = 'eventstore_events'}),
	'true,false,false,false',
	'create_publication() made publication eventstore_events, inserts only');
$pub->safe_psql('postgres',
	q{SELECT pg_create_logical_replication_slot('pgout', 'pgoutput')});

$plain->safe_psql(
	'postgres', q{
CREATE SCHEMA eventstore;
CREATE TABLE eventstore.events (
    global_position bigint      PRIMARY KEY,
    stream          text        COLLATE "C" NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        COLLATE "C" NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL);
});
$ext->safe_psql('postgres', 'CREATE EXTENSION eventstore');

my $connstr = $pub->connstr . ' dbname=postgres';
$plain->safe_psql('postgres',
	"CREATE SUBSCRIPTION plain_sub CONNECTION '$connstr' PUBLICATION eventstore_events");
$ext->safe_psql('postgres',
	"CREATE SUBSCRIPTION ext_sub CONNECTION '$connstr' PUBLICATION eventstore_events");
$plain->wait_for_subscription_sync($pub, 'plain_sub');
$ext->wait_for_subscription_sync($pub, 'ext_sub');

# Appends after the publication.
$pub->safe_psql(
	'postgres', q{
SELECT eventstore.append_event('live-1', 'One', '{"k": 1}');
SELECT eventstore.append('live-2', (SELECT jsonb_agg(jsonb_build_object('type', 'Batch', 'data', jsonb_build_object('i', g)))
                                      FROM generate_series(1, 50) g));
BEGIN;
SELECT eventstore.append_event('live-3', 'Two');
SELECT eventstore.append_event('live-4', 'Two', '{}', '{"causation_id": "x"}');
COMMIT;
BEGIN;
SELECT eventstore.append_event('live-5', 'RolledBack');
ROLLBACK;
});
my $a = $pub->background_psql('postgres');
my $b = $pub->background_psql('postgres');
$a->query_safe(q{BEGIN; SELECT eventstore.append_event('live-6', 'A');});
$b->query_safe(q{BEGIN; SELECT eventstore.append('live-7', '[{"type": "B"}, {"type": "B"}]');});
$b->query_safe('COMMIT');
$a->query_safe('COMMIT');
$a->quit;
$b->quit;
$pub->safe_psql('postgres',
	q{SELECT eventstore.append_event('live-' || g, 'Many') FROM generate_series(8, 30) g});

$pub->wait_for_catchup('plain_sub');
$pub->wait_for_catchup('ext_sub');

my $keys_sql = q{SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', global_position, event_id, stream, stream_version), ',' ORDER BY global_position)) FROM eventstore.events};
my $rows_sql = q{SELECT md5(string_agg(concat_ws('|', global_position, stream, stream_version, event_id, event_type, data::text, metadata::text, extract(epoch FROM created_at)), E'\n' ORDER BY global_position)) FROM eventstore.events};
my $pub_keys = $pub->safe_psql('postgres', $keys_sql);
my $pub_rows = $pub->safe_psql('postgres', $rows_sql);
is($pub->safe_psql('postgres', 'SELECT count(*) FROM eventstore.events'), '82',
	'the publisher has 3 early + 79 later events (the rolled back one is not there)');
is($plain->safe_psql('postgres', $keys_sql), $pub_keys,
	'plain subscriber: same count and checksum of (global_position, event_id, stream, stream_version)');
is($plain->safe_psql('postgres', $rows_sql), $pub_rows, 'plain subscriber: every column of every event');
is($ext->safe_psql('postgres', $keys_sql), $pub_keys,
	'subscriber with the extension: same count and checksum of (global_position, event_id, stream, stream_version)');
is($ext->safe_psql('postgres', $rows_sql), $pub_rows,
	'subscriber with the extension: every column of every event');
is( $ext->safe_psql('postgres',
		q{SELECT string_agg(stream_version::text, ',') FROM eventstore.read_stream('live-7')}),
	'1,2', 'subscriber with the extension: read_stream reads replicated events');

my $pgout_sql = q{
SELECT count(*) FILTER (WHERE get_byte(data, 0) = ascii('I')) || ' inserts, '
    || count(*) FILTER (WHERE get_byte(data, 0) IN (ascii('U'), ascii('D'), ascii('T'))) || ' updates/deletes/truncates'
  FROM pg_logical_slot_peek_binary_changes('pgout', NULL, NULL, 'proto_version', '1', 'publication_names', 'eventstore_events')};
is($pub->safe_psql('postgres', $pgout_sql), '79 inserts, 0 updates/deletes/truncates',
	'pgoutput: one insert message per event appended after the publication');

# UPDATE, DELETE and TRUNCATE are refused on the publisher.
for my $sql (
	q{UPDATE eventstore.events SET data = '{"x": 1}' WHERE stream = 'live-1'},
	q{DELETE FROM eventstore.events WHERE stream = 'live-1'},
	q{TRUNCATE eventstore.events})
{
	my ($rc, $out, $err) = $pub->psql('postgres', $sql);
	isnt($rc, 0, "refused on the publisher: $sql");
}

# Not published either: with the trigger disabled, change the publisher.
$pub->safe_psql(
	'postgres', q{
BEGIN;
ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable;
UPDATE eventstore.events SET data = '{"tampered": true}' WHERE stream = 'live-1';
DELETE FROM eventstore.events WHERE stream = 'live-3';
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;
COMMIT;
SELECT eventstore.append_event('live-31', 'AfterTampering');
});
$pub->wait_for_catchup('plain_sub');
$pub->wait_for_catchup('ext_sub');
for my $node ($plain, $ext)
{
	is( $node->safe_psql('postgres',
			q{SELECT (SELECT data::text FROM eventstore.events WHERE stream = 'live-1') || ' '
			      || (SELECT count(*) FROM eventstore.events WHERE stream = 'live-3') || ' '
			      || (SELECT count(*) FROM eventstore.events WHERE stream = 'live-31')}),
		'{"k": 1} 1 1',
		$node->name . ': the UPDATE and DELETE did not arrive, the next insert did');
}
is($pub->safe_psql('postgres', $pgout_sql), '80 inserts, 0 updates/deletes/truncates',
	'pgoutput: no update or delete message, one more insert');

$pub->safe_psql('postgres', q{SELECT pg_drop_replication_slot('pgout')});
$plain->safe_psql('postgres', 'DROP SUBSCRIPTION plain_sub');
$ext->safe_psql('postgres', 'DROP SUBSCRIPTION ext_sub');
is($pub->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'dropping the subscriptions dropped their slots on the publisher');

$plain->stop;
$ext->stop;
$pub->stop;
done_testing();
