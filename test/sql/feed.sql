\unset ECHO
\i test/pgtap_setup.psql
-- The gap-safe global feed (DESIGN.md section 4): read_all paging and
-- filters, read_category, consumer groups, head_position, argument errors,
-- and that filtered reads are answered from indexes.
--
-- Global reads only return committed events below the safe horizon, and
-- a transaction that appends holds the horizon back (even for itself), so
-- the fixture must be committed before the tests run.  Events cannot be
-- deleted, so the fixture lives in a database of its own, dropped at the
-- end; the tests themselves run in one transaction that is rolled back.
\set feed_home :DBNAME
DROP DATABASE IF EXISTS eventstore_feed_test WITH (FORCE);
CREATE DATABASE eventstore_feed_test TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
\c eventstore_feed_test
\i test/pgtap_setup.psql

-- Fixture, committed.  Streams chosen for the prefix edge cases: 'ta'
-- spans the categories ta, tally, task, tasks and tax; 'task' is both a
-- bare stream and a category; 'task-1' is a prefix of 'task-10'; 't-1',
-- 'Ta-1', 'tb-1', 'zeta-1' and 'tâche-1' must never match 'ta'.  A
-- rolled-back append leaves a gap in the positions; bulk-1 holds 1003
-- events so that the default max_count (1000) and full scans show.
DO $$
BEGIN
	PERFORM eventstore.append_event('task-1', 'TaskCreated');
	PERFORM eventstore.append_event('tax-1', 'TaxFiled');
	PERFORM eventstore.append_event('task-2', 'TaskCreated');
	PERFORM eventstore.append_event('tally', 'Counted');
	PERFORM eventstore.append_event('task-1', 'TaskStarted');
	PERFORM eventstore.append_event('other-1', 'OtherThing');
	PERFORM eventstore.append_event('task-10', 'TaskCreated');
	PERFORM eventstore.append_event('tasks-1', 'TaskCreated');
	PERFORM eventstore.append_event('task', 'TaskCreated');
	PERFORM eventstore.append_event('ta', 'Counted');
	BEGIN
		PERFORM eventstore.append_event('gap-1', 'RolledBack');
		PERFORM eventstore.append_event('gap-2', 'RolledBack');
		RAISE EXCEPTION 'roll back';
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	PERFORM eventstore.append_event('zeta-1', 'TaxFiled');
	PERFORM eventstore.append_event('Ta-1', 'TaskCreated');
	PERFORM eventstore.append_event('t-1', 'TaskCreated');
	PERFORM eventstore.append_event('tb-1', 'Counted');
	PERFORM eventstore.append_event('tax-1', 'TaxPaid');
	PERFORM eventstore.append_event('task-3', 'TaskCreated');
	PERFORM eventstore.append_event('task-6', 'TaskCreated');
	PERFORM eventstore.append('bulk-1', (
		SELECT jsonb_agg(jsonb_build_object('type', 'Bulk', 'data', jsonb_build_object('i', i)))
		FROM generate_series(1, 1003) i));
	PERFORM eventstore.append_event('task-1', 'TaskDone');
	PERFORM eventstore.append_event('task-2', 'TaskStarted');
	PERFORM eventstore.append_event('tâche-1', 'TaskCreated');
	PERFORM eventstore.append_event('tax-2', 'TaxFiled');
	PERFORM eventstore.append_event('task-6', 'TaskStarted');
	PERFORM eventstore.append_event('task-3', 'TaskStarted');
END
$$;

BEGIN;
SELECT plan(112);

-- Read everything by paging through read_all (or read_category with a
-- consumer group member), page rows at a time, continuing after the last
-- position returned, as a subscriber would.
CREATE FUNCTION pg_temp.paged(page int, prefix text DEFAULT NULL, types text[] DEFAULT NULL,
							  category text DEFAULT NULL, member int DEFAULT NULL, size int DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
	ckpt bigint := 0;
	got int;
	pos bigint;
BEGIN
	FOR i IN 1 .. 10000 LOOP
		got := 0;
		IF category IS NULL THEN
			FOR pos IN
				SELECT global_position FROM eventstore.read_all(after_position => ckpt, max_count => page,
																stream_prefix => prefix, event_types => types)
			LOOP
				got := got + 1;
				ckpt := pos;
				RETURN NEXT pos;
			END LOOP;
		ELSE
			FOR pos IN
				SELECT global_position FROM eventstore.read_category(category, after_position => ckpt, max_count => page,
																	 consumer_group_member => member, consumer_group_size => size)
			LOOP
				got := got + 1;
				ckpt := pos;
				RETURN NEXT pos;
			END LOOP;
		END IF;
		EXIT WHEN got < page;
	END LOOP;
END
$$;

-- The events table as eventstore.event rows, in position order.  The
-- table's text columns are COLLATE "C" and the type's are not, so whole
-- rows of the table and of the read functions cannot be compared as
-- records (results_eq): record equality finds no common collation.
CREATE FUNCTION pg_temp.events() RETURNS SETOF eventstore.event LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY SELECT * FROM eventstore.events ORDER BY global_position;
END
$$;

-- Counters of the events table and its feed indexes in this transaction
-- (pg_stat_xact_user_tables; there is no xact view of indexes, so the
-- functions behind pg_stat_user_indexes' idx_scan and idx_tup_read).
CREATE FUNCTION pg_temp.stats(OUT cat_scan bigint, OUT cat_read bigint, OUT type_scan bigint,
							  OUT type_read bigint, OUT pkey_scan bigint, OUT seq_scan bigint)
LANGUAGE sql AS $$
	SELECT pg_stat_get_xact_numscans('eventstore.events_category_idx'::regclass),
		   pg_stat_get_xact_tuples_returned('eventstore.events_category_idx'::regclass),
		   pg_stat_get_xact_numscans('eventstore.events_type_idx'::regclass),
		   pg_stat_get_xact_tuples_returned('eventstore.events_type_idx'::regclass),
		   pg_stat_get_xact_numscans('eventstore.events_pkey'::regclass),
		   (SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'eventstore.events'::regclass)
$$;

-- ---------------------------------------------------------------------
-- Index use.  First, before anything else in this transaction touches
-- the events table: capture the counters around each read, assert later.
SELECT * FROM pg_temp.stats() \gset s0_
SELECT count(*) AS n FROM eventstore.read_all(max_count => NULL) \gset all_
SELECT * FROM pg_temp.stats() \gset s1_
SELECT count(*) AS n FROM eventstore.read_category('task', max_count => NULL) \gset cat_
SELECT * FROM pg_temp.stats() \gset s2_
SELECT count(*) AS n FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['TaskCreated', 'TaxPaid', 'TaskCreated']) \gset types_
SELECT * FROM pg_temp.stats() \gset s3_
SELECT count(*) AS n FROM eventstore.read_all(max_count => NULL, stream_prefix => 'ta') \gset ta_
SELECT * FROM pg_temp.stats() \gset s4_
SELECT count(*) AS n FROM eventstore.read_all(max_count => NULL, stream_prefix => 'task-1') \gset task1_
SELECT * FROM pg_temp.stats() \gset s5_
SELECT count(*) AS n FROM eventstore.read_category('task', max_count => NULL, consumer_group_member => 1, consumer_group_size => 3) \gset member_
SELECT * FROM pg_temp.stats() \gset s6_

-- the counters are live: an unfiltered read scans the primary key
SELECT cmp_ok((:s1_pkey_scan - :s0_pkey_scan)::bigint, '>=', 1::bigint, 'unfiltered read_all scans the primary key index');
SELECT is((:s1_seq_scan - :s0_seq_scan)::bigint, 0::bigint, 'unfiltered read_all does not scan the table sequentially');
SELECT is(:all_n::bigint, (SELECT count(*) FROM eventstore.events), 'unfiltered read_all returned every event');

-- read_category: one range of the category index, exactly its rows
SELECT cmp_ok((:s2_cat_scan - :s1_cat_scan)::bigint, '>=', 1::bigint, 'read_category scans events_category_idx');
SELECT is((:s2_cat_read - :s1_cat_read)::bigint, :cat_n::bigint, 'read_category reads only the category''s index entries');
SELECT is((:s2_pkey_scan - :s1_pkey_scan)::bigint, 0::bigint, 'read_category does not scan the primary key');
SELECT is((:s2_seq_scan - :s1_seq_scan)::bigint, 0::bigint, 'read_category does not scan the table sequentially');
SELECT is(:cat_n::bigint, (SELECT count(*) FROM eventstore.events WHERE eventstore.category(stream) = 'task'), 'read_category returned the category''s events');

-- event_types: ranges of the type index, exactly their rows
SELECT cmp_ok((:s3_type_scan - :s2_type_scan)::bigint, '>=', 1::bigint, 'read_all with event_types scans events_type_idx');
SELECT is((:s3_type_read - :s2_type_read)::bigint, :types_n::bigint, 'read_all with event_types reads only those types'' index entries');
SELECT is((:s3_pkey_scan - :s2_pkey_scan)::bigint, 0::bigint, 'read_all with event_types does not scan the primary key');
SELECT is((:s3_seq_scan - :s2_seq_scan)::bigint, 0::bigint, 'read_all with event_types does not scan the table sequentially');
SELECT is(:types_n::bigint, (SELECT count(*) FROM eventstore.events WHERE event_type IN ('TaskCreated', 'TaxPaid')), 'read_all with event_types returned those types');

-- stream_prefix without '-': the categories it spans, found in the index
SELECT cmp_ok((:s4_cat_scan - :s3_cat_scan)::bigint, '>=', 1::bigint, 'read_all with stream_prefix ta scans events_category_idx');
SELECT cmp_ok((:s4_cat_read - :s3_cat_read)::bigint, '<', (SELECT count(*) / 10 FROM eventstore.events), 'read_all with stream_prefix ta reads few index entries');
SELECT is((:s4_pkey_scan - :s3_pkey_scan)::bigint, 0::bigint, 'read_all with stream_prefix ta does not scan the primary key');
SELECT is((:s4_seq_scan - :s3_seq_scan)::bigint, 0::bigint, 'read_all with stream_prefix ta does not scan the table sequentially');
SELECT is(:ta_n::bigint, (SELECT count(*) FROM eventstore.events WHERE starts_with(stream, 'ta')), 'read_all with stream_prefix ta returned its events');

-- stream_prefix with '-': one category's range
SELECT cmp_ok((:s5_cat_scan - :s4_cat_scan)::bigint, '>=', 1::bigint, 'read_all with stream_prefix task-1 scans events_category_idx');
SELECT is((:s5_cat_read - :s4_cat_read)::bigint, :cat_n::bigint, 'read_all with stream_prefix task-1 reads only category task''s index entries');
SELECT is((:s5_pkey_scan - :s4_pkey_scan)::bigint, 0::bigint, 'read_all with stream_prefix task-1 does not scan the primary key');
SELECT is((:s5_seq_scan - :s4_seq_scan)::bigint, 0::bigint, 'read_all with stream_prefix task-1 does not scan the table sequentially');
SELECT is(:task1_n::bigint, (SELECT count(*) FROM eventstore.events WHERE starts_with(stream, 'task-1')), 'read_all with stream_prefix task-1 returned its events');

-- a consumer group member: the category's range, filtered
SELECT is((:s6_cat_read - :s5_cat_read)::bigint, :cat_n::bigint, 'a consumer group member reads only the category''s index entries');
SELECT is((:s6_pkey_scan - :s5_pkey_scan)::bigint, 0::bigint, 'a consumer group member does not scan the primary key');
SELECT is((:s6_seq_scan - :s5_seq_scan)::bigint, 0::bigint, 'a consumer group member does not scan the table sequentially');
SELECT is(:member_n::bigint, (SELECT count(*) FROM eventstore.events WHERE eventstore.category(stream) = 'task' AND eventstore.consumer_group_member(stream, 3) = 1), 'a consumer group member returned its streams'' events');

-- ---------------------------------------------------------------------
-- head_position, with nothing in flight
SELECT is(eventstore.head_position(), (SELECT max(global_position) FROM eventstore.events), 'head_position is the last position when nothing is in flight');
SELECT is(eventstore.head_position(), pg_sequence_last_value('eventstore.global_position_seq'), 'head_position is the last allocated position when nothing is in flight');

-- ---------------------------------------------------------------------
-- read_all paging
SELECT results_eq(
	'SELECT * FROM eventstore.read_all(max_count => NULL)',
	'SELECT * FROM pg_temp.events() ORDER BY global_position',
	'read_all with max_count NULL returns every event, in position order');
SELECT cmp_ok((SELECT count(*) FROM eventstore.events), '>', 1000::bigint, 'more than 1000 events stored');
SELECT results_eq(
	'SELECT global_position FROM eventstore.read_all()',
	'SELECT global_position FROM eventstore.events ORDER BY global_position LIMIT 1000',
	'read_all returns at most 1000 events by default, the first ones');
SELECT results_eq(
	'SELECT global_position FROM eventstore.read_all(max_count => 5)',
	'SELECT global_position FROM eventstore.events ORDER BY global_position LIMIT 5',
	'read_all with max_count 5 returns the first 5');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(after_position => (SELECT global_position FROM eventstore.events WHERE stream = 'ta'), max_count => 3)$$,
	$$SELECT global_position FROM eventstore.events WHERE global_position > (SELECT global_position FROM eventstore.events WHERE stream = 'ta') ORDER BY global_position LIMIT 3$$,
	'read_all continues after after_position, across the gap a rolled-back append left');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(after_position => (SELECT global_position FROM eventstore.events WHERE stream = 'tb-1'), max_count => NULL)$$,
	$$SELECT global_position FROM eventstore.events WHERE global_position > (SELECT global_position FROM eventstore.events WHERE stream = 'tb-1') ORDER BY global_position$$,
	'read_all after a position with max_count NULL returns the whole rest');
SELECT cmp_ok(
	(SELECT global_position FROM eventstore.events WHERE stream = 'zeta-1')
	- (SELECT global_position FROM eventstore.events WHERE stream = 'ta'), '>', 1::bigint,
	'the rolled-back append left a gap in the positions');
SELECT is_empty('SELECT * FROM eventstore.read_all(max_count => 0)', 'max_count 0 returns nothing');
SELECT is_empty('SELECT * FROM eventstore.read_all(after_position => eventstore.head_position())', 'nothing after the head');
SELECT is_empty('SELECT * FROM eventstore.read_all(after_position => eventstore.head_position() + 1000)', 'nothing beyond the head');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['RolledBack'])$$, 'rolled-back events are never returned');
SELECT results_eq(
	'SELECT * FROM pg_temp.paged(7)',
	'SELECT global_position FROM eventstore.events ORDER BY global_position',
	'paging through read_all 7 at a time returns every event once, in order');
SELECT results_eq(
	'SELECT * FROM pg_temp.paged(1000)',
	'SELECT global_position FROM eventstore.events ORDER BY global_position',
	'paging through read_all 1000 at a time returns every event once, in order');

-- ---------------------------------------------------------------------
-- stream_prefix
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'task-1')$$,
	$$SELECT * FROM pg_temp.events() WHERE stream IN ('task-1', 'task-10') ORDER BY global_position$$,
	'stream_prefix task-1 returns streams task-1 and task-10');
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'task-')$$,
	$$SELECT * FROM pg_temp.events() WHERE stream IN ('task-1', 'task-2', 'task-3', 'task-6', 'task-10') ORDER BY global_position$$,
	'stream_prefix task- returns the streams of category task with a "-", not the bare stream task nor tasks-1');
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'task')$$,
	$$SELECT * FROM pg_temp.events() WHERE stream IN ('task', 'task-1', 'task-2', 'task-3', 'task-6', 'task-10', 'tasks-1') ORDER BY global_position$$,
	'stream_prefix task spans the categories task and tasks');
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'ta')$$,
	$$SELECT * FROM pg_temp.events() WHERE stream IN ('ta', 'tally', 'task', 'task-1', 'task-2', 'task-3', 'task-6', 'task-10', 'tasks-1', 'tax-1', 'tax-2') ORDER BY global_position$$,
	'stream_prefix ta spans the categories ta, tally, task, tasks and tax, in position order');
SELECT set_eq(
	$$SELECT DISTINCT eventstore.category(stream) FROM eventstore.read_all(max_count => NULL, stream_prefix => 'ta')$$,
	ARRAY['ta', 'tally', 'task', 'tasks', 'tax'],
	'stream_prefix ta: exactly those categories');
SELECT results_eq(
	$$SELECT stream, event_type FROM eventstore.read_all(max_count => NULL, stream_prefix => 'tally')$$,
	$$VALUES ('tally'::text, 'Counted'::text)$$,
	'stream_prefix naming a bare stream without "-" returns it');
SELECT results_eq(
	$$SELECT event_type FROM eventstore.read_all(max_count => NULL, stream_prefix => 'tax-1')$$,
	ARRAY['TaxFiled', 'TaxPaid'],
	'stream_prefix naming a whole stream returns that stream in order');
SELECT results_eq(
	$$SELECT stream FROM eventstore.read_all(max_count => NULL, stream_prefix => 'Ta')$$,
	ARRAY['Ta-1'],
	'stream_prefix is case-sensitive');
SELECT results_eq(
	$$SELECT stream FROM eventstore.read_all(max_count => NULL, stream_prefix => 'tâ')$$,
	ARRAY['tâche-1'],
	'stream_prefix with multibyte characters');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'tax-9')$$, 'stream_prefix matching no stream of an existing category returns nothing');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'nothing')$$, 'stream_prefix matching no category returns nothing');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'zz')$$, 'stream_prefix beyond every category returns nothing');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(max_count => NULL, stream_prefix => '')$$,
	'SELECT global_position FROM eventstore.events ORDER BY global_position',
	'an empty stream_prefix matches every stream');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(max_count => 4, stream_prefix => 'ta')$$,
	$$SELECT global_position FROM eventstore.events WHERE starts_with(stream, 'ta') ORDER BY global_position LIMIT 4$$,
	'stream_prefix with max_count returns the first matching events');
SELECT results_eq(
	$$SELECT * FROM pg_temp.paged(3, prefix => 'ta')$$,
	$$SELECT global_position FROM eventstore.events WHERE starts_with(stream, 'ta') ORDER BY global_position$$,
	'paging with stream_prefix ta 3 at a time returns every matching event once, in order');
SELECT throws_ok(
	$$SELECT * FROM eventstore.read_all(stream_prefix => repeat('x', 256))$$,
	'22023', NULL, 'a stream_prefix longer than a stream name is an error');

-- ---------------------------------------------------------------------
-- event_types
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['TaskCreated'])$$,
	$$SELECT * FROM pg_temp.events() WHERE event_type = 'TaskCreated' ORDER BY global_position$$,
	'event_types with one type');
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['TaxPaid', 'TaskStarted', 'Counted'])$$,
	$$SELECT * FROM pg_temp.events() WHERE event_type IN ('TaxPaid', 'TaskStarted', 'Counted') ORDER BY global_position$$,
	'event_types with several types: merged in position order');
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['TaxFiled', 'TaxPaid', 'TaxFiled', 'TaxFiled'])$$,
	$$SELECT * FROM pg_temp.events() WHERE event_type IN ('TaxFiled', 'TaxPaid') ORDER BY global_position$$,
	'event_types with duplicates returns each event once');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => '{}')$$, 'an empty event_types returns nothing');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, event_types => ARRAY['NoSuchType'])$$, 'an unknown event type returns nothing');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(after_position => (SELECT global_position FROM eventstore.events WHERE stream = 'task'), max_count => 2, event_types => ARRAY['TaskCreated', 'TaskStarted'])$$,
	$$SELECT global_position FROM eventstore.events WHERE event_type IN ('TaskCreated', 'TaskStarted') AND global_position > (SELECT global_position FROM eventstore.events WHERE stream = 'task') ORDER BY global_position LIMIT 2$$,
	'event_types with after_position and max_count');
SELECT results_eq(
	$$SELECT * FROM pg_temp.paged(2, types => ARRAY['TaskCreated', 'TaxFiled'])$$,
	$$SELECT global_position FROM eventstore.events WHERE event_type IN ('TaskCreated', 'TaxFiled') ORDER BY global_position$$,
	'paging with event_types 2 at a time returns every matching event once, in order');
SELECT throws_ok(
	$$SELECT * FROM eventstore.read_all(event_types => ARRAY['TaskCreated', NULL])$$,
	'22004', NULL, 'event_types containing NULL is an error');

-- ---------------------------------------------------------------------
-- stream_prefix and event_types together
SELECT results_eq(
	$$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'ta', event_types => ARRAY['TaskCreated', 'Counted'])$$,
	$$SELECT * FROM pg_temp.events() WHERE starts_with(stream, 'ta') AND event_type IN ('TaskCreated', 'Counted') ORDER BY global_position$$,
	'stream_prefix ta and event_types together');
SELECT results_eq(
	$$SELECT stream, event_type FROM eventstore.read_all(max_count => NULL, stream_prefix => 'task-1', event_types => ARRAY['TaskDone', 'TaskCreated'])$$,
	$$VALUES ('task-1'::text, 'TaskCreated'::text), ('task-10', 'TaskCreated'), ('task-1', 'TaskDone')$$,
	'stream_prefix task-1 and event_types together');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_all(after_position => (SELECT global_position FROM eventstore.events WHERE stream = 'task-2' AND stream_version = 1), max_count => 3, stream_prefix => 'task', event_types => ARRAY['TaskCreated', 'TaskStarted', 'TaskCreated'])$$,
	$$SELECT global_position FROM eventstore.events WHERE starts_with(stream, 'task') AND event_type IN ('TaskCreated', 'TaskStarted') AND global_position > (SELECT global_position FROM eventstore.events WHERE stream = 'task-2' AND stream_version = 1) ORDER BY global_position LIMIT 3$$,
	'stream_prefix, event_types, after_position and max_count together');
SELECT is_empty($$SELECT * FROM eventstore.read_all(max_count => NULL, stream_prefix => 'ta', event_types => '{}')$$, 'stream_prefix with an empty event_types returns nothing');

-- ---------------------------------------------------------------------
-- read_category
SELECT results_eq(
	$$SELECT * FROM eventstore.read_category('task', max_count => NULL)$$,
	$$SELECT * FROM pg_temp.events() WHERE eventstore.category(stream) = 'task' ORDER BY global_position$$,
	'read_category returns the category''s streams, the bare stream included, in position order');
SELECT ok(NOT EXISTS (SELECT FROM eventstore.read_category('task', max_count => NULL) WHERE stream = 'tasks-1'), 'read_category task does not return category tasks');
SELECT results_eq(
	$$SELECT stream FROM eventstore.read_category('tally')$$,
	ARRAY['tally'],
	'read_category of a bare stream''s category');
SELECT results_eq(
	$$SELECT stream FROM eventstore.read_category('tâche')$$,
	ARRAY['tâche-1'],
	'read_category with multibyte characters');
SELECT results_eq(
	$$SELECT global_position FROM eventstore.read_category('task', after_position => (SELECT global_position FROM eventstore.events WHERE stream = 'task'), max_count => 2)$$,
	$$SELECT global_position FROM eventstore.events WHERE eventstore.category(stream) = 'task' AND global_position > (SELECT global_position FROM eventstore.events WHERE stream = 'task') ORDER BY global_position LIMIT 2$$,
	'read_category with after_position and max_count');
SELECT is((SELECT count(*) FROM eventstore.read_category('bulk')), 1000::bigint, 'read_category returns at most 1000 events by default');
SELECT is_empty($$SELECT * FROM eventstore.read_category('nothing')$$, 'read_category of an unknown category returns nothing');
SELECT is_empty($$SELECT * FROM eventstore.read_category('task', max_count => 0)$$, 'read_category with max_count 0 returns nothing');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task-1')$$, '22023', NULL, 'a category containing "-" is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('')$$, '22023', NULL, 'an empty category is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category(NULL)$$, '22004', NULL, 'a NULL category is an error');

-- ---------------------------------------------------------------------
-- consumer groups: task -> 0, task-1 -> 2, task-2 -> 1, task-3 -> 0,
-- task-6 -> 2, task-10 -> 0 (FNV-1a 64 of the name, unsigned, mod 3)
CREATE TEMP TABLE members AS
	SELECT m AS member, e.*
	FROM generate_series(0, 2) m,
		 LATERAL eventstore.read_category('task', max_count => NULL, consumer_group_member => m, consumer_group_size => 3) e;
SELECT results_eq(
	'SELECT * FROM eventstore.read_category(''task'', max_count => NULL)',
	'SELECT global_position, stream, stream_version, event_id, event_type, data, metadata, created_at FROM members ORDER BY global_position',
	'the members of a group of 3 together receive every event of the category exactly once');
SELECT is_empty(
	'SELECT stream FROM members GROUP BY stream HAVING count(DISTINCT member) > 1',
	'each stream goes wholly to one member');
SELECT is_empty(
	'SELECT * FROM members WHERE member <> eventstore.consumer_group_member(stream, 3)',
	'consumer_group_member() names the member that received each stream');
SELECT set_eq(
	'SELECT DISTINCT stream, member FROM members',
	$$VALUES ('task'::text, 0), ('task-1', 2), ('task-2', 1), ('task-3', 0), ('task-6', 2), ('task-10', 0)$$,
	'the streams go to the members FNV-1a says');
SELECT results_eq(
	'SELECT global_position FROM eventstore.read_category(''task'', max_count => NULL, consumer_group_member => 2, consumer_group_size => 3)',
	$$SELECT global_position FROM eventstore.events WHERE stream IN ('task-1', 'task-6') ORDER BY global_position$$,
	'a member receives its streams in position order');
SELECT results_eq(
	$$SELECT * FROM pg_temp.paged(1, category => 'task', member => 0, size => 3)$$,
	$$SELECT global_position FROM eventstore.events WHERE stream IN ('task', 'task-3', 'task-10') ORDER BY global_position$$,
	'paging a member one event at a time returns its events once, in order');
SELECT results_eq(
	'SELECT global_position FROM eventstore.read_category(''task'', max_count => NULL, consumer_group_member => 0, consumer_group_size => 1)',
	'SELECT global_position FROM eventstore.read_category(''task'', max_count => NULL)',
	'the only member of a group of 1 receives everything');
SELECT is(eventstore.consumer_group_member('task', 2147483647), 980011565, 'consumer_group_member hashes unsigned (FNV-1a of task has the top bit set)');
SELECT is(eventstore.consumer_group_member('task-1', 2147483647), 431026386, 'consumer_group_member is FNV-1a 64 of the name');
SELECT is(eventstore.consumer_group_member('tâche-1', 2147483647), 379436740, 'consumer_group_member hashes the UTF-8 bytes of the name');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', consumer_group_member => 3, consumer_group_size => 3)$$, '22023', NULL, 'member = size is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', consumer_group_member => -1, consumer_group_size => 3)$$, '22023', NULL, 'a negative member is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', consumer_group_member => 0, consumer_group_size => 0)$$, '22023', NULL, 'group size 0 is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', consumer_group_member => 0)$$, '22023', NULL, 'a member without a size is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', consumer_group_size => 3)$$, '22023', NULL, 'a size without a member is an error');
SELECT throws_ok($$SELECT eventstore.consumer_group_member('task-1', 0)$$, '22023', NULL, 'consumer_group_member with group size 0 is an error');

-- ---------------------------------------------------------------------
-- Result memory (src/result.c): each page is kept in a result buffer,
-- emptied and kept for the next call when the query that read it ends.
-- A page must stay intact while other reads start and end around it, and
-- a read that fails leaves nothing behind, even while another read's
-- page is still held.
CREATE TEMP VIEW feed_result_mem AS
    SELECT coalesce(max(used_bytes), 0)::numeric AS max_used, coalesce(sum(total_bytes), 0)::numeric AS total, count(*) AS buffers
      FROM pg_backend_memory_contexts WHERE name = 'eventstore result';
CREATE TEMP TABLE feed_expected AS
    SELECT global_position, event_id FROM eventstore.events ORDER BY global_position LIMIT 600;
DECLARE feed_cursor SCROLL CURSOR FOR SELECT global_position, event_id FROM eventstore.read_all(0, 600);
CREATE TEMP TABLE feed_fetched (global_position bigint, event_id uuid);
MOVE FORWARD 100 IN feed_cursor;
SELECT is((SELECT count(*) FROM eventstore.read_all(0, 800)), 800::bigint,
          'a second read runs and ends while a cursor holds the first page');
SELECT is((SELECT count(*) FROM eventstore.read_stream('bulk-1')), 1003::bigint,
          'a stream read runs and ends while a cursor holds the first page');
MOVE ABSOLUTE 0 IN feed_cursor;
DO $$
DECLARE
    c refcursor := 'feed_cursor';
    r record;
BEGIN
    LOOP
        FETCH c INTO r;
        EXIT WHEN NOT FOUND;
        INSERT INTO feed_fetched VALUES (r.global_position, r.event_id);
    END LOOP;
END
$$;
CLOSE feed_cursor;
SELECT results_eq('SELECT * FROM feed_fetched ORDER BY global_position',
                  'SELECT * FROM feed_expected ORDER BY global_position',
                  'the cursor''s page is intact after other reads came and went');
SELECT results_eq($$SELECT a.global_position, s.global_position FROM
                      eventstore.read_all(0, 5) AS a,
                      LATERAL (SELECT r.global_position FROM eventstore.read_all(a.global_position - 1, 1) AS r) AS s$$,
                  $$SELECT global_position, global_position FROM feed_expected ORDER BY global_position LIMIT 5$$,
                  'a read rescanned once per outer row (LATERAL) returns the right rows');
SELECT throws_ok($$SELECT 1 / (a.global_position - a.global_position) FROM eventstore.read_all(0, 500) AS a$$,
                 '22012', NULL, 'a query fails after its page was read');
SELECT cmp_ok((SELECT max_used FROM feed_result_mem), '<', 4096::numeric,
              'the failed query''s page was freed when the query ended');
-- While a loop holds one page, 100 reads fail one after the other (caught):
-- each failed page is freed at its subtransaction's abort.
CREATE TEMP TABLE feed_loop_mem (total numeric);
DO $$
DECLARE
    e record;
BEGIN
    FOR e IN SELECT * FROM eventstore.read_all(0, 3) LOOP
        FOR i IN 1..100 LOOP
            BEGIN
                PERFORM 1 / (a.global_position - a.global_position) FROM eventstore.read_all(0, 500) AS a;
            EXCEPTION WHEN division_by_zero THEN
                NULL;
            END;
        END LOOP;
        INSERT INTO feed_loop_mem SELECT total FROM feed_result_mem;
    END LOOP;
END
$$;
SELECT cmp_ok((SELECT max(total) FROM feed_loop_mem), '<', 4 * 1024 * 1024::numeric,
              'failed reads inside a loop that holds a page leave nothing behind (below 4 MB after 300 failures of ~150 kB pages)');
SELECT cmp_ok((SELECT buffers FROM feed_result_mem), '<=', 2::bigint, 'at most two idle result buffers are kept');
SELECT cmp_ok((SELECT max_used FROM feed_result_mem), '<', 4096::numeric,
              'after the reads, the result buffers hold nothing');

-- ---------------------------------------------------------------------
-- argument errors
SELECT throws_ok($$SELECT * FROM eventstore.read_all(after_position => -1)$$, '22023', NULL, 'read_all: negative after_position is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_all(max_count => -1)$$, '22023', NULL, 'read_all: negative max_count is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', after_position => -1)$$, '22023', NULL, 'read_category: negative after_position is an error');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('task', max_count => -1)$$, '22023', NULL, 'read_category: negative max_count is an error');

-- ---------------------------------------------------------------------
-- An open append holds the horizon back, even for its own transaction:
-- the event is in the table, yet not in the feed until it commits.
SELECT global_position AS head0 FROM eventstore.events ORDER BY global_position DESC LIMIT 1 \gset
SELECT global_position AS own FROM eventstore.append_event('task-1', 'TaskReopened') \gset
SELECT is(eventstore.head_position(), (:own - 1)::bigint, 'an open append holds head_position just below its position');
SELECT is_empty(format('SELECT * FROM eventstore.read_all(after_position => %s)', :head0), 'read_all does not return the open append');

SELECT * FROM finish();
ROLLBACK;

\c :feed_home
DROP DATABASE eventstore_feed_test WITH (FORCE);
