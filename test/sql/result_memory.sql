-- The result memory of the read functions (src/result.c): a backend keeps
-- a buffer between queries while it reads, gives it back once it has not
-- read for eventstore.result_buffer_idle_timeout (checked when a
-- transaction ends), and never keeps more than
-- eventstore.result_buffer_size.  Plain SQL: it needs transaction
-- boundaries, which pgTAP's single transaction does not have.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS eventstore;

-- 500 events of ~250 bytes: a page of ~150 kB
SELECT stream_version AS appended FROM eventstore.append('resmem-1',
    (SELECT jsonb_agg(jsonb_build_object('type', 'Padded', 'data', jsonb_build_object('pad', repeat('x', 200))))
       FROM generate_series(1, 500)));

-- this backend's kept result buffers
CREATE FUNCTION pg_temp.kept(OUT buffers bigint, OUT bytes bigint) LANGUAGE sql AS $$
    SELECT count(*), coalesce(sum(total_bytes), 0)
      FROM pg_backend_memory_contexts WHERE name = 'eventstore result'
$$;

-- No idle timeout (0) while showing what is kept, so that nothing here
-- depends on how fast the statements run.
SET eventstore.result_buffer_idle_timeout = 0;

-- Kept while reading: after two pages (the second sizes the buffer to
-- the page), one buffer holds more than a minimal context.
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT buffers, bytes > 64 * 1024 AS sized_to_the_page FROM pg_temp.kept();

-- Not read for longer than the idle timeout: the end of the next
-- transaction gives it back.
SET eventstore.result_buffer_idle_timeout = '10ms';
SELECT pg_sleep(0.05);
SELECT buffers, bytes FROM pg_temp.kept();
SET eventstore.result_buffer_idle_timeout = 0;

-- Read again: kept again.
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT buffers, bytes > 64 * 1024 AS sized_to_the_page FROM pg_temp.kept();

-- The size bound: lowered below the kept buffer, the buffer goes at the
-- end of the transaction; what it keeps afterwards stays within it.
SET eventstore.result_buffer_size = '32kB';
SELECT buffers, bytes FROM pg_temp.kept();
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT buffers, bytes <= 32 * 1024 AS within_the_bound FROM pg_temp.kept();

-- 0 keeps nothing: results live in the query's memory.
SET eventstore.result_buffer_size = 0;
SELECT count(*) AS read FROM eventstore.read_stream('resmem-1');
SELECT count(*) AS read FROM eventstore.read_all(0, 10);
SELECT buffers, bytes FROM pg_temp.kept();
RESET eventstore.result_buffer_size;

-- Both settings refuse negative values.
SET eventstore.result_buffer_size = -1;
SET eventstore.result_buffer_idle_timeout = -1;
