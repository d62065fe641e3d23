-- eventstore: read a whole stream of read_len events.
\set r random(1, :read_streams)
SELECT * FROM eventstore.read_stream('read-' || :r);
