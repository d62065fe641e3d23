# poll decodes in the calling backend, which keeps its relation and catalog
# caches unless the WAL it decodes changed the catalogs (src/poll.c).  Each
# case stores events together with rows of another table whose definition
# then changes -- by another session after the commit, or by the polling
# transaction itself -- and shows poll delivering exactly those events,
# with a toasted value in the changed table (decoding reassembles it with
# the table's definition of that time), and the session's caches current
# afterwards (the changed table reads as it is now).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('pollcat', qq(
synchronous_commit = on
autovacuum = off
));

$node->safe_psql('postgres', q{
CREATE EXTENSION eventstore;
CREATE TABLE side (a integer, b text);
ALTER TABLE side ALTER COLUMN b SET STORAGE EXTERNAL;
SELECT eventstore.create_subscription('cat');
});

# psql's output without the empty lines of ack()
sub poll_psql
{
	my $out = $node->safe_psql('postgres', shift);
	$out =~ s/^\s*\n//mg;
	$out =~ s/\s+$//;
	return $out;
}

sub store_with_side
{
	my ($stream, $n) = @_;
	$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO side (a, b) SELECT i, repeat('x', 100000) FROM generate_series(1, $n) i;
SELECT eventstore.append('$stream', (SELECT jsonb_agg(jsonb_build_object('type', 'Happened', 'data', jsonb_build_object('i', i))) FROM generate_series(1, $n) i));
COMMIT;
});
}

# 1. Another session rewrites the table with another column type, and
#    drops the toasted column, after the events committed.
store_with_side('case-1', 3);
$node->safe_psql('postgres', q{
ALTER TABLE side ALTER COLUMN a TYPE text USING a::text;
ALTER TABLE side DROP COLUMN b;
ALTER TABLE side ADD COLUMN c bigint DEFAULT 7;
});
my $got = poll_psql(q{
BEGIN;
SELECT string_agg(stream || ':' || (data->>'i'), ',' ORDER BY (cursor).lsn, (cursor).seq) FROM eventstore.poll('cat');
SELECT eventstore.ack('cat');
COMMIT;
});
is($got, 'case-1:1,case-1:2,case-1:3', 'events stored before a table rewrite in another session are delivered');
is($node->safe_psql('postgres', q{SELECT pg_typeof(a)::text || ',' || c FROM side LIMIT 1}),
	'text,7', 'and the session reads the table as it is now');
$node->safe_psql('postgres', q{
ALTER TABLE side ADD COLUMN b text;
ALTER TABLE side ALTER COLUMN b SET STORAGE EXTERNAL;
});

# 2. The polling transaction changes the table itself before it polls,
#    then reads it in the same transaction after the poll.
store_with_side('case-2', 2);
$got = poll_psql(q{
BEGIN;
ALTER TABLE side ADD COLUMN d text DEFAULT 'new';
SELECT string_agg(stream || ':' || (data->>'i'), ',' ORDER BY (cursor).lsn, (cursor).seq) FROM eventstore.poll('cat');
SELECT count(*) FILTER (WHERE d = 'new') || '/' || count(*) FROM side;
SELECT eventstore.ack('cat');
COMMIT;
});
is($got, "case-2:1,case-2:2\n5/5", 'own uncommitted DDL before poll: events delivered, the table read with the new column after it');

# 3. The caches are kept when nothing changed the catalogs (statistics do
#    not count): a plan prepared before a poll survives it.
$node->safe_psql('postgres', q{ANALYZE side});
store_with_side('case-3', 1);
$got = poll_psql(q{
PREPARE p AS SELECT count(*) FROM side;
EXECUTE p;
BEGIN;
SELECT count(*) FROM eventstore.poll('cat');
SELECT eventstore.ack('cat');
COMMIT;
EXECUTE p;
SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE name = 'p';
});
is($got, "6\n1\n6\n2", 'after ANALYZE (statistics do not count as a catalog change), a poll delivers the event and a statement prepared before it runs after it');

# 4. Dropping the table whose rows were stored with the events.
store_with_side('case-4', 2);
$node->safe_psql('postgres', q{DROP TABLE side});
$got = poll_psql(q{
SELECT string_agg(stream || ':' || (data->>'i'), ',' ORDER BY (cursor).lsn, (cursor).seq) FROM eventstore.poll('cat');
});
is($got, 'case-4:1,case-4:2', 'events stored with rows of a table dropped since are delivered');
ok($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'side'}) eq '0',
	'and the dropped table is gone for the session');

$node->stop;
done_testing();
