-- variant: the baseline read without sending the rows (OFFSET 0 keeps the
-- ordered subquery from being flattened away).
\set r random(1, :read_streams)
SELECT count(*) FROM (SELECT * FROM bench.plain_events WHERE stream = 'read-' || :r
                      ORDER BY stream_version OFFSET 0) s;
