-- Transaction-level refusals, in plain SQL (PREPARE TRANSACTION cannot run
-- inside pgTAP's transaction):
--  * a transaction that appended events cannot be PREPAREd (0A000);
--  * appends are refused in read-only transactions (25006).
-- max_prepared_transactions is 5 in test/eventstore.conf.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS eventstore;

-- Control: a transaction that only read the store can be prepared.
BEGIN;
SELECT eventstore.stream_version('tx-1');
PREPARE TRANSACTION 'eventstore_tx_read_only';
SELECT gid FROM pg_prepared_xacts WHERE gid = 'eventstore_tx_read_only';
ROLLBACK PREPARED 'eventstore_tx_read_only';

-- A transaction that appended with append is refused, and rolled back.
BEGIN;
SELECT stream_version FROM eventstore.append('tx-1', '[{"type": "A"}, {"type": "B"}]', 0);
PREPARE TRANSACTION 'eventstore_tx_append';
\echo :LAST_ERROR_SQLSTATE
-- The refusal released this session's hold on the global feed at once:
-- the safe horizon is again the last allocated position.
SELECT eventstore.head_position() = last_value AS feed_released
  FROM eventstore.global_position_seq;
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'eventstore_tx_append';
-- (were it prepared, roll it back so that no later statement waits on it)
SELECT count(*) > 0 AS was_prepared FROM pg_prepared_xacts WHERE gid = 'eventstore_tx_append' \gset
\if :was_prepared
ROLLBACK PREPARED 'eventstore_tx_append';
\endif
SELECT eventstore.stream_version('tx-1') AS version_after;

-- Likewise with append_event, followed by other work.
BEGIN;
SELECT stream_version FROM eventstore.append_event('tx-2', 'A');
SELECT count(*) AS events_inside FROM eventstore.read_stream('tx-2');
PREPARE TRANSACTION 'eventstore_tx_append_event';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'eventstore_tx_append_event';
-- (were it prepared, roll it back so that no later statement waits on it)
SELECT count(*) > 0 AS was_prepared FROM pg_prepared_xacts WHERE gid = 'eventstore_tx_append_event' \gset
\if :was_prepared
ROLLBACK PREPARED 'eventstore_tx_append_event';
\endif
SELECT eventstore.stream_version('tx-2') AS version_after;

-- The session works afterwards: append and roll back in a plain transaction.
BEGIN;
SELECT stream_version FROM eventstore.append('tx-4', '[{"type": "A"}]', 0);
SELECT eventstore.stream_version('tx-4') AS version_inside;
ROLLBACK;

-- Read-only transactions: appends refused, reads allowed.
BEGIN READ ONLY;
SELECT * FROM eventstore.append('tx-3', '[{"type": "A"}]');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT * FROM eventstore.append_event('tx-3', 'A');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT eventstore.stream_version('tx-3') AS version, count(*) AS events
  FROM eventstore.read_stream('tx-3');
ROLLBACK;

-- Nothing was left behind.
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'eventstore_tx%';
SELECT count(*) AS events FROM eventstore.events WHERE stream LIKE 'tx-%';
