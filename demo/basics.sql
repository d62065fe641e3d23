-- The basics, shown on a fresh database: append with optimistic
-- concurrency, an idempotent retry, stream reads and the global feed.
\pset footer off
CREATE EXTENSION eventstore;

\echo '== register a task: expected_version 0 means "the stream must be new"'
SELECT * FROM eventstore.append('task-42', '[
  {"type": "TaskCreated",  "data": {"title": "Patch openssl"}, "metadata": {"correlation_id": "c-1"}},
  {"type": "TaskAssigned", "data": {"to": "alice"},            "metadata": {"correlation_id": "c-1"}}
]', expected_version => 0);

\echo '== a writer that read version 2 appends: it wins'
SELECT * FROM eventstore.append_event('task-42', 'TaskStarted', '{"by": "alice"}', expected_version => 2);

\echo '== a second writer that also read version 2 loses with ES001'
\set ON_ERROR_STOP off
SELECT * FROM eventstore.append_event('task-42', 'TaskStarted', '{"by": "bob"}', expected_version => 2);
\echo 'SQLSTATE:' :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP on

\echo '== a client retries an append whose reply it lost: same ids, same result, nothing written twice'
SELECT * FROM eventstore.append('system-7', '[{"type": "SystemRegistered", "id": "6f1c1a52-0b1e-4d0a-9a53-3c2f8e3f5a01", "data": {"name": "web-1"}}]', 0);
SELECT * FROM eventstore.append('system-7', '[{"type": "SystemRegistered", "id": "6f1c1a52-0b1e-4d0a-9a53-3c2f8e3f5a01", "data": {"name": "web-1"}}]', 0);

\echo '== read the stream'
SELECT stream_version, event_type, data, metadata FROM eventstore.read_stream('task-42');

\echo '== the global feed, from position 0, and the category feed'
SELECT global_position, stream, stream_version, event_type FROM eventstore.read_all(after_position => 0);
SELECT global_position, stream, event_type FROM eventstore.read_category('task');
SELECT eventstore.head_position() AS head_position;
