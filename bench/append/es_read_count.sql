-- variant: read_stream without sending the rows (server-side cost only).
\set r random(1, :read_streams)
SELECT count(*) FROM eventstore.read_stream('read-' || :r);
