-- The logical decoding output plugin "eventstore" (DESIGN.md section 5,
-- src/decoder.c): one JSON line per inserted event, in commit order, with
-- its options.  Plain SQL, not one transaction: a logical slot cannot be
-- created in a transaction that has written.
--
-- Deterministic output: no LSNs, xids, ids or timestamps are printed;
-- positions are printed relative to the last position allocated before
-- the test (:base), and the volatile fields are checked as properties
-- against the stored rows and the WAL instead.  Commit order differing
-- from position order needs two sessions: see test/t/020_decoding_order.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS eventstore;
RESET client_min_messages;
SET synchronous_commit = on;

-- A table that is not the events table, one named events in another
-- schema, and helpers that show what a slot decodes.
CREATE TABLE dec_other (x int);
CREATE SCHEMA dec_s;
CREATE TABLE dec_s.events (LIKE eventstore.events);

-- The decoded lines of a slot, the volatile fields left out: position
-- relative to base, and progress lines as progress = true.  peek keeps
-- the changes in the slot, so several option sets can look at the same
-- transactions.
CREATE FUNCTION dec_lines(slot name, base bigint, peek boolean, VARIADIC options text[] DEFAULT '{}')
RETURNS TABLE (pos bigint, stream text, version bigint, type text, data jsonb, metadata jsonb,
               seq int, progress boolean)
LANGUAGE plpgsql AS $$
DECLARE
    c refcursor;
    line text;
    j jsonb;
BEGIN
    IF peek THEN
        OPEN c FOR SELECT p.data FROM pg_logical_slot_peek_changes(slot, NULL, NULL, VARIADIC options) AS p;
    ELSE
        OPEN c FOR SELECT g.data FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC options) AS g;
    END IF;
    LOOP
        FETCH c INTO line;
        EXIT WHEN NOT FOUND;
        j := line::jsonb;
        IF j ? 'progress' THEN
            pos := NULL; stream := NULL; version := NULL; type := NULL; data := NULL;
            metadata := NULL; seq := NULL; progress := true;
        ELSE
            pos := (j ->> 'position')::bigint - base; stream := j ->> 'stream';
            version := (j ->> 'version')::bigint; type := j ->> 'type'; data := j -> 'data';
            metadata := j -> 'metadata'; seq := (j ->> 'seq')::int; progress := false;
        END IF;
        RETURN NEXT;
    END LOOP;
    CLOSE c;
END
$$;

-- Properties of the lines a slot has now (peeked, in output order): every
-- event line has exactly the documented keys and equals the stored row
-- in every column; lsn is the same inside a transaction and increases
-- from one transaction to the next; seq is 0, 1, ... inside a
-- transaction; a progress line has only the key progress and its value
-- is the end of the commit record (the lsn pg_logical_slot_peek_changes
-- reports for a line written at commit).
CREATE FUNCTION dec_check(slot name, VARIADIC options text[] DEFAULT '{}')
RETURNS TABLE (events bigint, exact_keys bigint, equal_to_row bigint, seq_ok bigint,
               lsn_ok bigint, progress bigint, progress_ok bigint)
LANGUAGE sql AS $$
    WITH l AS (
        SELECT c.lsn AS row_lsn, c.data::jsonb AS j, o
          FROM pg_logical_slot_peek_changes(slot, NULL, NULL, VARIADIC options)
               WITH ORDINALITY AS c(lsn, xid, data, o)
    ), ev AS (
        SELECT l.*, (j ->> 'lsn')::pg_lsn AS lsn, (j ->> 'seq')::int AS seq,
               lag((j ->> 'lsn')::pg_lsn) OVER (ORDER BY o) AS prev_lsn,
               lag((j ->> 'seq')::int) OVER (ORDER BY o) AS prev_seq
          FROM l WHERE NOT j ? 'progress'
    )
    SELECT count(*),
           count(*) FILTER (WHERE ARRAY(SELECT jsonb_object_keys(j) ORDER BY 1)
                                  = '{created_at,data,id,lsn,metadata,position,seq,stream,type,version}'),
           count(*) FILTER (WHERE EXISTS (
               SELECT FROM eventstore.events e
                WHERE e.global_position = (j ->> 'position')::bigint
                  AND e.stream = j ->> 'stream' AND e.stream_version = (j ->> 'version')::bigint
                  AND e.event_id = (j ->> 'id')::uuid AND e.event_type = j ->> 'type'
                  AND e.data = j -> 'data' AND e.metadata = j -> 'metadata'
                  AND e.created_at = (j ->> 'created_at')::timestamptz)),
           -- seq: 0 starts a transaction; within one it goes up (gaps are filtered events)
           count(*) FILTER (WHERE (lsn = prev_lsn AND seq > prev_seq)
                               OR (lsn IS DISTINCT FROM prev_lsn AND (prev_lsn IS NULL OR lsn > prev_lsn))),
           -- the commit lsn comes after the event's own insert record
           count(*) FILTER (WHERE lsn > row_lsn),
           (SELECT count(*) FROM l WHERE j ? 'progress'),
           (SELECT count(*) FROM l WHERE j ? 'progress' AND j = jsonb_build_object('progress', j ->> 'progress')
                                     AND (j ->> 'progress')::pg_lsn = row_lsn)
      FROM ev
$$;

SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS base
  FROM eventstore.global_position_seq \gset
SELECT 'init' FROM pg_create_logical_replication_slot('dec_slot', 'eventstore');

-- 1. Appends: one event, a batch (seq 0..2, one lsn), a transaction with
-- two streams, and a rolled-back subtransaction (its event is not decoded
-- and takes no seq).  Nothing for a transaction without events, for
-- another table, for a table called events in another schema, for DDL, or
-- for a rolled-back append.
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('dec-1', 'Opened', '{"n": 1}', '{"by": "test"}');
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('dec-2', '[{"type": "A", "data": {"i": 0}}, {"type": "B", "data": {"i": 1}},
                                    {"type": "C", "data": {"i": 2}, "metadata": {"m": true}}]');
INSERT INTO dec_other VALUES (1);
INSERT INTO dec_s.events SELECT * FROM eventstore.events LIMIT 1;
CREATE TABLE dec_ddl (x int);
BEGIN;
SELECT stream_version, global_position - :base AS pos FROM eventstore.append_event('dec-rolledback', 'Never');
ROLLBACK;
BEGIN;
SELECT stream_version, global_position - :base AS pos FROM eventstore.append_event('dec-3', 'X');
SAVEPOINT s;
SELECT stream_version, global_position - :base AS pos FROM eventstore.append_event('dec-3', 'Undone');
ROLLBACK TO SAVEPOINT s;
INSERT INTO dec_other VALUES (2);
SELECT stream_version, global_position - :base AS pos FROM eventstore.append_event('dec-4', 'Y');
SELECT stream_version, global_position - :base AS pos FROM eventstore.append_event('dec-3', 'Z');
COMMIT;
SELECT * FROM dec_check('dec_slot');
-- with write-progress, every committed transaction ends with a progress
-- line: those with events after their events, and those without (dec_other,
-- dec_s.events, DDL; not the rolled-back one) as a line of their own
SELECT * FROM dec_lines('dec_slot', :base, true, 'write-progress', 'on');
SELECT * FROM dec_lines('dec_slot', :base, false);
-- consumed: nothing is left
SELECT * FROM dec_lines('dec_slot', :base, false);

-- 2. The lsn of an event is its transaction's commit: after everything
-- the transaction wrote, before anything written after the commit.
BEGIN;
SELECT 'appended' FROM eventstore.append('dec-lsn', '[{"type": "A"}, {"type": "B"}]');
SELECT pg_current_wal_insert_lsn() AS before_commit \gset
COMMIT;
SELECT pg_current_wal_insert_lsn() AS after_commit \gset
SELECT count(*) AS events,
       bool_and((data::jsonb ->> 'lsn')::pg_lsn >= :'before_commit'
            AND (data::jsonb ->> 'lsn')::pg_lsn < :'after_commit') AS lsn_is_the_commit
  FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL);

-- 3. JSON escaping of quotes, backslashes, newlines, tabs and control
-- characters in stream, type, data and metadata; non-ASCII text is
-- written as is.  The line is shown with id, created_at and lsn masked.
SELECT 'appended' FROM eventstore.append_event(E'dec-"q"\\b\nn\tt\x01', E'Type "q"\n',
                                               E'{"s": "a \\"b\\" \\\\ c\\nd\\u0002"}'::jsonb,
                                               '{"k": "v\"w"}');
SELECT 'appended' FROM eventstore.append_event('dec-ünï', 'Ωmega', '{"emoji": "😀", "é": "ß"}');
SELECT * FROM dec_check('dec_slot');
SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(data,
           '"position":[0-9]+', '"position":P'),
           '"id":"[0-9a-f-]{36}"', '"id":"ID"'),
           '"created_at":"[^"]+"', '"created_at":"TS"'),
           '"lsn":"[0-9A-F]+/[0-9A-F]+"', '"lsn":"LSN"') AS line
  FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL)
 WHERE data NOT LIKE '%ünï%';
SELECT data LIKE '%"stream":"dec-ünï"%"type":"Ωmega"%"emoji": "😀"%' AS non_ascii_as_is,
       data::jsonb ->> 'stream' = 'dec-ünï' AS stream_round_trips
  FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL)
 WHERE data LIKE '%ünï%';
SELECT count(*) FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL);

-- 3b. Every line is exactly the text PostgreSQL itself writes for the
-- row: strings as to_json(text), data and metadata as jsonb::text,
-- created_at as to_json(timestamptz), in the session's time zone.  Values
-- cover every jsonb entry type, nesting, empty containers, top-level
-- scalars (data; metadata is an object), numbers in every form, escapes and every control character,
-- long strings and objects big enough for stored offsets (more than 32
-- entries) and TOAST.
SET timezone = 'Asia/Kolkata';
SELECT 'appended' FROM eventstore.append('dec-text', (
    SELECT jsonb_agg(jsonb_build_object('type', 'T' || i, 'data', d, 'metadata', jsonb_build_object('m', m)) ORDER BY i)
      FROM (VALUES
        (1, '{}'::jsonb, '[]'::jsonb),
        (2, '{"a": {}, "b": [], "c": [{}, []], "d": [[[]]]}', '{"x": null}'),
        (3, '"just a string"', '12.50'),
        (4, 'true', 'false'),
        (5, 'null', '[null, true, false, "", 0]'),
        (6, '[1, -2, 3.0, -4.25, 1e3, 1.5e-7, 12345678901234567890123456789, 0.000, -0]', '{"n": 9223372036854775807}'),
        (7, jsonb_build_object('ctl', (SELECT string_agg(chr(c), '') FROM generate_series(1, 31) AS c) || E'"\\/\x7f'),
            jsonb_build_object(E'key "q"\n', E'\t', 'é', 'ünï 😀')),
        (8, (SELECT jsonb_object_agg('k' || lpad(g::text, 3, '0'), CASE g % 4 WHEN 0 THEN to_jsonb(g) WHEN 1 THEN to_jsonb('v' || g)
                                                                       WHEN 2 THEN jsonb_build_array(g, jsonb_build_object('g', g)) ELSE 'null' END)
               FROM generate_series(1, 100) AS g),
            (SELECT jsonb_agg(g * 1.5) FROM generate_series(1, 70) AS g)),
        (9, jsonb_build_object('long', repeat('abcdefghij', 5000), 'n', 1), jsonb_build_object('same', repeat('z', 3000)))
      ) AS v(i, d, m)));
SELECT count(*) AS lines,
       count(*) FILTER (WHERE split_part(p.data, ',"lsn":', 1) =
           '{"position":' || e.global_position || ',"stream":' || to_json(e.stream)::text ||
           ',"version":' || e.stream_version || ',"id":"' || e.event_id || '","type":' || to_json(e.event_type)::text ||
           ',"data":' || e.data::text || ',"metadata":' || e.metadata::text ||
           ',"created_at":' || to_json(e.created_at)::text) AS equal_to_postgres_text,
       count(*) FILTER (WHERE p.data ~ ',"lsn":"[0-9A-F]+/[0-9A-F]+","seq":[0-9]+}$'
                          AND (p.data::jsonb ->> 'lsn')::pg_lsn::text = p.data::jsonb ->> 'lsn') AS lsn_as_pg_lsn
  FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL) AS p
  JOIN eventstore.events AS e ON e.global_position = (p.data::jsonb ->> 'position')::bigint;
-- created_at in every form: whole seconds, fractions with trailing zeros,
-- one microsecond, both sides of a daylight-saving change (Berlin, 01:00
-- UTC), before 2000, BC, after 9999, infinities, and last the second of
-- the first row again (written in one time zone, then first in another);
-- one transaction, so the lines are written back to back.  Appends stamp
-- created_at themselves, so these rows are inserted directly (which the
-- table's owner can do).
BEGIN;
INSERT INTO eventstore.events
SELECT nextval('eventstore.global_position_seq'), 'dec-ts', v, gen_random_uuid(), 'Ts', '{}', '{}', t::timestamptz
  FROM unnest(ARRAY['2026-03-29 00:59:59.999999+00', '2026-03-29 01:00:00+00', '2026-03-29 01:00:00.5+00',
                    '2026-03-29 01:00:00.000001+00', '2026-03-29 01:00:00.12+00', '2026-03-29 01:00:00.1203+00',
                    '2026-10-25 00:59:59+00', '2026-10-25 01:00:00.25+00', '1999-12-31 23:59:59.75+00',
                    '1970-01-01 00:00:00+00', '0044-03-15 12:00:00.5 BC', '12345-06-07 08:09:10.11+00',
                    'infinity', '-infinity', '2026-03-29 00:59:59.25+00']) WITH ORDINALITY AS x(t, v);
COMMIT;
-- the lines of dec-ts, and how many show created_at as to_json() does in
-- the session's time zone; consume: get instead of peek
CREATE FUNCTION dec_created_at(consume boolean, OUT lines bigint, OUT as_to_json bigint)
LANGUAGE sql AS $$
    SELECT count(*),
           count(*) FILTER (WHERE p.data LIKE '%,"created_at":' || to_json(e.created_at)::text || ',"lsn":%')
      FROM (SELECT data FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL) WHERE NOT consume
            UNION ALL
            SELECT data FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL) WHERE consume) AS p
      JOIN eventstore.events AS e ON e.global_position = (p.data::jsonb ->> 'position')::bigint
     WHERE e.stream = 'dec-ts'
$$;
SET timezone = 'Europe/Berlin';
SELECT * FROM dec_created_at(false);
SET timezone = 'Asia/Kolkata';
SELECT * FROM dec_created_at(true);
RESET timezone;

-- 4. Options, all on the same transactions (peek):
--   T1: deca-1 DecX, decb-1 DecY              T2: deca-10 DecXY
--   T3: decc-1 DecZ, DecX, DecY (one batch)   T4: dec_other only
--   T5: decb-2 DecY
BEGIN;
SELECT 'T1' FROM eventstore.append_event('deca-1', 'DecX');
SELECT 'T1' FROM eventstore.append_event('decb-1', 'DecY');
COMMIT;
SELECT 'T2' FROM eventstore.append_event('deca-10', 'DecXY');
SELECT 'T3' FROM eventstore.append('decc-1', '[{"type": "DecZ"}, {"type": "DecX"}, {"type": "DecY"}]');
INSERT INTO dec_other VALUES (3);
SELECT 'T5' FROM eventstore.append_event('decb-2', 'DecY');
-- no options: everything
SELECT * FROM dec_lines('dec_slot', :base, true);
-- stream prefixes: a prefix, not a category (deca-1 matches deca-10)
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'deca,decc');
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'deca-1');
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'decb-2,nomatch,decc-1');
-- spaces around list items are not part of them
SELECT (SELECT array_agg(data) FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL, 'stream-prefixes', ' decb-2 , decc-1 ', 'event-types', ' DecX ,DecY '))
     = (SELECT array_agg(data) FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL, 'stream-prefixes', 'decb-2,decc-1', 'event-types', 'DecX,DecY')) AS spaces_are_trimmed;
-- event types: exact names (DecX does not match DecXY); seq keeps its
-- index in the transaction, counted before filtering
SELECT * FROM dec_lines('dec_slot', :base, true, 'event-types', 'DecX');
SELECT * FROM dec_lines('dec_slot', :base, true, 'event-types', 'DecXY,DecZ');
-- both: an event must match both
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'decc,decb', 'event-types', 'DecY');
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'decc', 'event-types', 'DecY,DecX');
-- nothing matches: nothing at all
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', 'nomatch');
-- format-version 1 is the default
SELECT (SELECT array_agg(data) FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL, 'format-version', '1'))
     = (SELECT array_agg(data) FROM pg_logical_slot_peek_changes('dec_slot', NULL, NULL)) AS format_1_is_the_default;
-- write-progress: one progress line at the end of every transaction (T1 to
-- T5, with or without matching events), in commit order
SELECT * FROM dec_lines('dec_slot', :base, true, 'write-progress', 'on');
SELECT * FROM dec_lines('dec_slot', :base, true, 'write-progress', 'true', 'event-types', 'DecZ');
SELECT * FROM dec_lines('dec_slot', :base, true, 'write-progress', 'off');
SELECT * FROM dec_check('dec_slot', 'write-progress', 'on');
SELECT * FROM dec_check('dec_slot', 'write-progress', 'on', 'stream-prefixes', 'decb', 'format-version', '1');
-- errors: the slot is left as it was
SELECT * FROM dec_lines('dec_slot', :base, true, 'format-version', '2');
SELECT * FROM dec_lines('dec_slot', :base, true, 'format-version', '');
SELECT * FROM dec_lines('dec_slot', :base, true, 'stream-prefixes', '');
SELECT * FROM dec_lines('dec_slot', :base, true, 'event-types', ',,');
SELECT * FROM dec_lines('dec_slot', :base, true, 'write-progress', 'maybe');
SELECT * FROM dec_lines('dec_slot', :base, true, 'no-such-option', '1');
SELECT * FROM dec_lines('dec_slot', :base, true, 'include-xids', '0');
SELECT count(*) AS still_there FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL);

-- 5. Many changes: 150 events in one transaction of which one matches
-- (seq 149), and 150 rows of another table.
SELECT 'appended' FROM eventstore.append('decbig-1',
    (SELECT jsonb_agg(jsonb_build_object('type', CASE WHEN g = 150 THEN 'DecLast' ELSE 'DecBulk' END,
                                         'data', jsonb_build_object('g', g)))
       FROM generate_series(1, 150) g));
INSERT INTO dec_other SELECT generate_series(1, 150);
SELECT * FROM dec_lines('dec_slot', :base, true, 'event-types', 'DecLast', 'write-progress', 'on');
SELECT count(*) AS events, min((data::jsonb ->> 'seq')::int) AS min_seq, max((data::jsonb ->> 'seq')::int) AS max_seq,
       count(DISTINCT data::jsonb ->> 'lsn') AS transactions
  FROM pg_logical_slot_get_changes('dec_slot', NULL, NULL);

-- 6. A slot created after an append does not see it.
SELECT 'appended' FROM eventstore.append_event('dec-before', 'Before');
SELECT 'init' FROM pg_create_logical_replication_slot('dec_slot_late', 'eventstore');
SELECT 'appended' FROM eventstore.append_event('dec-after', 'After');
SELECT * FROM dec_lines('dec_slot_late', :base, false);

-- 7. output-format cursors (eventstore.poll's format, src/decoder.h): 'E'
-- and an EsDecodedEvent per event, whose padding bytes (after the xid, on
-- 64-bit platforms) are zero: they were uninitialised stack bytes.
SELECT 'appended' FROM eventstore.append('dec-cursors', '[{"type": "C1"}, {"type": "C2"}, {"type": "C3"}]');
SELECT count(*) AS events,
       count(*) FILTER (WHERE length(data) = 33 AND substr(data, 30) <> '\x00000000'::bytea) AS padding_not_zero
  FROM pg_logical_slot_get_binary_changes('dec_slot_late', NULL, NULL, 'output-format', 'cursors')
 WHERE get_byte(data, 0) = ascii('E');

SELECT pg_drop_replication_slot('dec_slot');
SELECT pg_drop_replication_slot('dec_slot_late');
DROP FUNCTION dec_lines(name, bigint, boolean, text[]);
DROP FUNCTION dec_check(name, text[]);
DROP FUNCTION dec_created_at(boolean);
DROP TABLE dec_other, dec_ddl;
DROP TABLE dec_s.events;
DROP SCHEMA dec_s;
