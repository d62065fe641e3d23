-- variant (profile only): the PL/pgSQL set-returning function of
-- plain_read_srf.sql, rows counted in the server, not sent.
\set r random(1, :read_streams)
SELECT count(*) FROM bench.read_stream_plpgsql('read-' || :r);
