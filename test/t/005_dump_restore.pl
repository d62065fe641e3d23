# pg_dump keeps the store: the events, the position counter, checkpoints,
# snapshots, processed marks and projection rows survive a dump and restore
# into a fresh database (they are registered with pg_extension_config_dump),
# appends continue after the restored positions, and an inline projection is
# brought back by reset_projection, as the README says.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('dump', undef);

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION eventstore;
CREATE TABLE rm (event_id uuid PRIMARY KEY);
CREATE FUNCTION h(e eventstore.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.rm VALUES (e.event_id) $$;
SELECT eventstore.append('order-1', '[{"type": "Created", "data": {"n": 1}}, {"type": "Paid", "metadata": {"correlation_id": "c1"}}]', 0);
SELECT eventstore.append_event('order-2', 'Created', jsonb_build_object('big', repeat('x', 5000)));
-- a rolled-back append leaves a gap in the positions
BEGIN; SELECT eventstore.append_event('order-3', 'Lost'); ROLLBACK;
SELECT eventstore.append_event('order-2', 'Shipped');
SELECT eventstore.save_checkpoint('billing', 3);
SELECT eventstore.save_snapshot('order-1', 2, '{"paid": true}');
SELECT eventstore.mark_processed('billing', '11111111-1111-1111-1111-111111111111');
SELECT eventstore.create_projection('inl', 'h(eventstore.event)', 'inline');
});

my $fingerprint = q{
SELECT count(*) || ' ' || md5(string_agg(e::text, ',' ORDER BY global_position))
FROM eventstore.events e};
my $before = $node->safe_psql('src', $fingerprint);
my $seq_before = $node->safe_psql('src', 'SELECT last_value FROM eventstore.global_position_seq');

my $dump = $node->basedir . '/src.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump of a database with the extension');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok(
	[ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a fresh database');

is($node->safe_psql('dst', $fingerprint), $before, 'every event is restored, byte for byte');
is($node->safe_psql('dst', 'SELECT last_value FROM eventstore.global_position_seq'),
	$seq_before, 'the position counter is restored, past the rolled-back gap');
is( $node->safe_psql(
		'dst', q{SELECT eventstore.get_checkpoint('billing') || ' '
          || (SELECT version || ':' || state::text FROM eventstore.load_snapshot('order-1')) || ' '
          || eventstore.mark_processed('billing', '11111111-1111-1111-1111-111111111111')}),
	'3 2:{"paid": true} false',
	'checkpoints, snapshots and processed marks are restored');

is( $node->safe_psql(
		'dst', q{SELECT stream_version || '@' || (global_position > } . $seq_before
		  . q{) FROM eventstore.append_event('order-1', 'Refunded', expected_version => 2)}),
	'3@true',
	'appends continue at the next version, above every restored position');
is($node->safe_psql('dst', 'SELECT eventstore.head_position() = max(global_position) FROM eventstore.events'),
	't', 'the global feed covers the restored events');

# The inline projection's row is restored, its trigger is not: reset brings it back.
$node->safe_psql('dst', q{
BEGIN;
TRUNCATE rm;
SELECT eventstore.reset_projection('inl', 0);
COMMIT;
SELECT eventstore.append_event('order-9', 'Created');
});
is($node->safe_psql('dst', 'SELECT (SELECT count(*) FROM rm) = (SELECT count(*) FROM eventstore.events)'),
	't', 'after reset_projection the inline projection is whole and applies new appends');

$node->stop;
done_testing();
