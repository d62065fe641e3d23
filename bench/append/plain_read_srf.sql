-- variant: the baseline read wrapped in a PL/pgSQL set-returning function,
-- which (like any FROM-clause function that is not an inlined SQL
-- function) hands its rows to the executor through a tuplestore.
\set r random(1, :read_streams)
SELECT * FROM bench.read_stream_plpgsql('read-' || :r);
