-- baseline: the same rows by a plain index scan.
\set r random(1, :read_streams)
SELECT * FROM bench.plain_events WHERE stream = 'read-' || :r ORDER BY stream_version;
