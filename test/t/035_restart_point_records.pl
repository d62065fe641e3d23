# eventstore_internal.log_running_xacts (called by poll): for a slot whose
# restart_lsn trails its confirmed position by more than 256 kB it logs a
# running-transactions record, flushed, and returns its LSN -- but at most
# one per 128 kB of WAL for the whole server: an immediate second call, for
# the same slot or another lagging one, logs nothing; after 128 kB more WAL
# it logs again.
#
# A slot lags here by construction: created, then ~1 MB of appends, then
# advanced to the end of WAL.  The background writer logs such records
# itself every 15 s; if one lands in the last 256 kB the slot does not lag,
# so an attempt that finds no lag is made again (at most 5 times).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use EventstoreNode;

my $node = eventstore_node('restartrec', "synchronous_commit = on\n");
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# ~1 MB of WAL through appends (40 transactions of 20 events of ~1.3 kB).
sub generate
{
	my ($tag) = @_;
	$node->safe_psql('postgres', qq{
SELECT FROM generate_series(1, 40) t,
	LATERAL eventstore.append('gen-$tag-' || t,
		(SELECT jsonb_agg(jsonb_build_object('type', 'Pad', 'data',
			jsonb_build_object('pad', repeat(md5(t::text || e::text), 40))))
		 FROM generate_series(1, 20) e));
});
	return;
}

my ($first, $second, $other) = ('', '', '');
for my $attempt (1 .. 5)
{
	$node->safe_psql('postgres', qq{
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots;
SELECT FROM pg_create_logical_replication_slot('lag_a', 'eventstore');
SELECT FROM pg_create_logical_replication_slot('lag_b', 'eventstore');
});
	generate($attempt);
	$node->safe_psql('postgres', q{
SELECT FROM pg_replication_slot_advance('lag_a', pg_current_wal_lsn());
SELECT FROM pg_replication_slot_advance('lag_b', pg_current_wal_lsn());
});
	# the three calls in one statement: no WAL is written between them
	($first, $second, $other) = split /\|/, $node->safe_psql('postgres', q{
SELECT coalesce(eventstore_internal.log_running_xacts('lag_a')::text, ''),
       coalesce(eventstore_internal.log_running_xacts('lag_a')::text, ''),
       coalesce(eventstore_internal.log_running_xacts('lag_b')::text, '')
}), -1;
	note "attempt $attempt: '$first' '$second' '$other'";
	last if $first ne '';
}
isnt($first, '', 'a slot trailing by more than 256 kB gets a running-transactions record');
is($node->safe_psql('postgres', "SELECT '$first'::pg_lsn <= pg_current_wal_flush_lsn()"),
	't', '  flushed, so decoding can reach it at once');
is($second, '', 'an immediate second call for the same slot logs nothing');
is($other, '', '  nor one for another lagging slot: the limit is for the whole server');

generate('more');
isnt($node->safe_psql('postgres',
		"SELECT coalesce(eventstore_internal.log_running_xacts('lag_b')::text, '')"),
	'', 'after more than 128 kB of WAL a lagging slot gets a record again');

$node->safe_psql('postgres',
	'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots');
$node->stop;
done_testing();
