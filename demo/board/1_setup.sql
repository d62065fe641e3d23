-- The System Board: three bounded contexts that collaborate only through
-- events in one eventstore database.
--
--   System Management         system-{id}      SystemRegistered, SystemSecurityAlert
--   Vulnerability Management  vuln-scan-{id}   VulnScanInitiated, VulnerabilityDetected, VulnScanCompleted
--   Task Management           task-{id}        TaskCreated, TaskCompleted
--
-- Cross-context reactions are delivered by subscriptions (logical decoding):
-- demo.react() polls each context's subscription, runs its handler and acks,
-- all in one transaction per batch, until nothing moves.  Read models are
-- projections: two inline (in the appending transaction), one async (run by
-- the extension's background worker).
--
-- Run with psql against an empty database; -v cves_file=PATH names the CVE
-- list (default demo/cves.json, relative to psql's working directory).
\set ON_ERROR_STOP on
\if :{?cves_file}
\else
\set cves_file demo/cves.json
\endif
\set cves `cat :'cves_file'`

SET client_min_messages = warning;
\o /dev/null
CREATE EXTENSION IF NOT EXISTS eventstore;
CREATE SCHEMA sysmgmt;   -- System Management
CREATE SCHEMA vulnmgmt;  -- Vulnerability Management
CREATE SCHEMA taskmgmt;  -- Task Management
CREATE SCHEMA board;     -- read models (projections)
CREATE SCHEMA demo;      -- plumbing: the reaction loop, the causation tree

-- Shared helpers ------------------------------------------------------------

-- Metadata of a reaction to event e: the correlation id of the command that
-- started it all, and e as the cause.
CREATE FUNCTION demo.caused_by(e eventstore.event, source text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('correlation_id', e.metadata ->> 'correlation_id',
                              'causation_id', e.event_id::text,
                              'source', source)
$$;

-- '2.14.1' -> {2,14,1}: versions compare as integer arrays.
CREATE FUNCTION demo.version_key(v text) RETURNS int[]
    LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT string_to_array(regexp_replace(v, '[^0-9.]', '', 'g'), '.')::int[] $$;

-- A stable short id (8 hex digits) for a task derived from what caused it:
-- the same cause always names the same task stream.
CREATE FUNCTION demo.short_id(key text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT left(md5(key), 8) $$;

-- One line describing an event, for the tree and the feed.
CREATE FUNCTION demo.describe(event_type text, d jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE event_type
        WHEN 'SystemRegistered' THEN
            format('%s, %s, %s packages', d ->> 'name', d ->> 'classification',
                   (SELECT count(*) FROM jsonb_object_keys(d -> 'packages')))
        WHEN 'VulnScanInitiated' THEN format('scan %s, priority %s', left(d ->> 'scan_id', 8), d ->> 'priority')
        WHEN 'VulnerabilityDetected' THEN
            format('%s in %s %s, CVSS %s %s', d ->> 'cve_id', d ->> 'package', d ->> 'version',
                   d ->> 'cvss', d ->> 'severity')
        WHEN 'VulnScanCompleted' THEN format('found %s', d ->> 'vulnerabilities')
        WHEN 'TaskCreated' THEN
            format('%s task, priority %s%s', d ->> 'kind', d ->> 'priority',
                   CASE WHEN d ? 'due_at' THEN ', due ' || left(d ->> 'due_at', 10) ELSE '' END)
        WHEN 'TaskCompleted' THEN coalesce(d ->> 'result', '')
        WHEN 'SystemSecurityAlert' THEN d ->> 'message'
        ELSE d::text
    END
$$;

-- System Management -----------------------------------------------------------

CREATE TABLE sysmgmt.command_log (
    command_id uuid PRIMARY KEY,
    command    text NOT NULL,
    system_id  text NOT NULL,
    issued_by  text NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The RegisterSystem command.  Its id is the correlation id of everything
-- that follows; expected_version 0: a system is registered once.
CREATE FUNCTION sysmgmt.register_system(system_id text, name text, classification text,
                                        packages jsonb, issued_by text DEFAULT 'ops@example.com')
RETURNS uuid
    LANGUAGE plpgsql
AS $$
DECLARE
    command_id uuid := gen_random_uuid();
BEGIN
    IF classification NOT IN ('public', 'internal', 'confidential', 'restricted') THEN
        RAISE EXCEPTION 'unknown security classification "%"', classification;
    END IF;
    INSERT INTO sysmgmt.command_log VALUES (command_id, 'RegisterSystem', system_id, issued_by);
    PERFORM eventstore.append_event(
        'system-' || system_id, 'SystemRegistered',
        jsonb_build_object('system_id', system_id, 'name', name,
                           'classification', classification, 'packages', packages),
        jsonb_build_object('correlation_id', command_id, 'causation_id', command_id,
                           'user_id', issued_by, 'source', 'system-management'),
        expected_version => 0);
    RETURN command_id;
END
$$;

-- Reaction: a critical vulnerability raises a SystemSecurityAlert on the
-- system's own stream.  Rebuilds the system from its stream and appends at
-- the version it read.
CREATE FUNCTION sysmgmt.on_event(e eventstore.event) RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    stream text := 'system-' || (e.data ->> 'system_id');
    version bigint := 0;
    name text;
    x eventstore.event;
BEGIN
    IF e.event_type <> 'VulnerabilityDetected' THEN
        RETURN 0;
    END IF;
    IF NOT eventstore.mark_processed('system-management', e.event_id) THEN
        RETURN 0;   -- delivered again: already handled
    END IF;
    IF (e.data ->> 'cvss')::numeric < 9.0 THEN
        RETURN 0;
    END IF;
    FOR x IN SELECT * FROM eventstore.read_stream(stream) LOOP
        version := x.stream_version;
        IF x.event_type = 'SystemRegistered' THEN
            name := x.data ->> 'name';
        END IF;
    END LOOP;
    IF version = 0 THEN
        RAISE EXCEPTION 'system % is not registered', e.data ->> 'system_id';
    END IF;
    PERFORM eventstore.append_event(
        stream, 'SystemSecurityAlert',
        jsonb_build_object('system_id', e.data ->> 'system_id', 'cve_id', e.data ->> 'cve_id',
                           'cvss', (e.data ->> 'cvss')::numeric, 'severity', e.data ->> 'severity',
                           'message', format('critical %s on %s: isolate or patch now',
                                             e.data ->> 'cve_id', name)),
        demo.caused_by(e, 'system-management'),
        expected_version => version);
    RETURN 1;
END
$$;

-- Vulnerability Management ----------------------------------------------------

CREATE TABLE vulnmgmt.cve (
    cve_id     text PRIMARY KEY,
    package    text NOT NULL,
    introduced text NOT NULL,   -- first affected version
    fixed      text NOT NULL,   -- first fixed version
    cvss       numeric(3,1) NOT NULL,
    summary    text NOT NULL
);
INSERT INTO vulnmgmt.cve
SELECT c.cve_id, c.package, c.introduced, c.fixed, c.cvss, c.summary
  FROM jsonb_to_recordset(:'cves'::jsonb)
       AS c(cve_id text, package text, introduced text, fixed text, cvss numeric, summary text);

CREATE FUNCTION vulnmgmt.severity(cvss numeric) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN cvss >= 9.0 THEN 'critical' WHEN cvss >= 7.0 THEN 'high'
                WHEN cvss >= 4.0 THEN 'medium' ELSE 'low' END
$$;

CREATE FUNCTION vulnmgmt.scan_priority(classification text) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN classification IN ('restricted', 'confidential') THEN 'high'
                WHEN classification = 'internal' THEN 'medium' ELSE 'low' END
$$;

-- Reactions: SystemRegistered starts a scan; VulnScanInitiated runs it
-- (the scanner), matching the packages against the CVE list.
CREATE FUNCTION vulnmgmt.on_event(e eventstore.event) RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    system_id text := e.data ->> 'system_id';
    stream text := 'vuln-scan-' || (e.data ->> 'system_id');
    version bigint;
    open_scan text;
    x eventstore.event;
    found jsonb;
BEGIN
    IF e.event_type NOT IN ('SystemRegistered', 'VulnScanInitiated') THEN
        RETURN 0;
    END IF;
    IF NOT eventstore.mark_processed('vulnerability-management', e.event_id) THEN
        RETURN 0;
    END IF;

    version := eventstore.stream_version(stream);
    IF e.event_type = 'SystemRegistered' THEN
        PERFORM eventstore.append_event(
            stream, 'VulnScanInitiated',
            jsonb_build_object('scan_id', gen_random_uuid(), 'system_id', system_id,
                               'priority', vulnmgmt.scan_priority(e.data ->> 'classification'),
                               'packages', e.data -> 'packages'),
            demo.caused_by(e, 'vulnerability-management'),
            expected_version => version);
        RETURN 1;
    END IF;

    -- The scanner: the scan must be the open one of this stream.
    FOR x IN SELECT * FROM eventstore.read_stream(stream) LOOP
        open_scan := CASE x.event_type WHEN 'VulnScanInitiated' THEN x.data ->> 'scan_id'
                                       WHEN 'VulnScanCompleted' THEN NULL ELSE open_scan END;
    END LOOP;
    IF open_scan IS DISTINCT FROM e.data ->> 'scan_id' THEN
        RETURN 0;   -- superseded or already completed
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'type', 'VulnerabilityDetected',
               'data', jsonb_build_object('scan_id', e.data ->> 'scan_id', 'system_id', system_id,
                                          'cve_id', c.cve_id, 'package', p.key, 'version', p.value,
                                          'fixed', c.fixed, 'cvss', c.cvss,
                                          'severity', vulnmgmt.severity(c.cvss), 'summary', c.summary),
               'metadata', demo.caused_by(e, 'vulnerability-management'))
             ORDER BY c.cvss DESC, c.cve_id), '[]')
      INTO found
      FROM jsonb_each_text(e.data -> 'packages') AS p
      JOIN vulnmgmt.cve AS c ON c.package = p.key
     WHERE demo.version_key(p.value) >= demo.version_key(c.introduced)
       AND demo.version_key(p.value) < demo.version_key(c.fixed);
    found := found || jsonb_build_array(jsonb_build_object(
        'type', 'VulnScanCompleted',
        'data', jsonb_build_object('scan_id', e.data ->> 'scan_id', 'system_id', system_id,
                                   'vulnerabilities', jsonb_array_length(found)),
        'metadata', demo.caused_by(e, 'vulnerability-management')));
    PERFORM eventstore.append(stream, found, expected_version => version);
    RETURN jsonb_array_length(found);
END
$$;

-- Task Management -------------------------------------------------------------

-- Reactions: a scan gets a scan task (closed when the scan completes); a
-- vulnerability gets a remediation task whose priority and due date follow
-- its CVSS score.  Task ids derive from the cause, and a new task stream is
-- appended with expected_version 0: a duplicate could never slip in.
CREATE FUNCTION taskmgmt.on_event(e eventstore.event) RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    task_id text;
    cvss numeric;
    version bigint := 0;
    status text;
    x eventstore.event;
BEGIN
    IF e.event_type NOT IN ('VulnScanInitiated', 'VulnerabilityDetected', 'VulnScanCompleted') THEN
        RETURN 0;
    END IF;
    IF NOT eventstore.mark_processed('task-management', e.event_id) THEN
        RETURN 0;
    END IF;

    IF e.event_type = 'VulnScanInitiated' THEN
        task_id := demo.short_id('scan:' || (e.data ->> 'scan_id'));
        PERFORM eventstore.append_event(
            'task-' || task_id, 'TaskCreated',
            jsonb_build_object('task_id', task_id, 'kind', 'scan', 'system_id', e.data ->> 'system_id',
                               'title', format('scan %s for known CVEs', e.data ->> 'system_id'),
                               'priority', e.data ->> 'priority'),
            demo.caused_by(e, 'task-management'),
            expected_version => 0);
        RETURN 1;
    END IF;

    IF e.event_type = 'VulnerabilityDetected' THEN
        cvss := (e.data ->> 'cvss')::numeric;
        task_id := demo.short_id('remediation:' || e.event_id);
        PERFORM eventstore.append_event(
            'task-' || task_id, 'TaskCreated',
            jsonb_build_object(
                'task_id', task_id, 'kind', 'remediation', 'system_id', e.data ->> 'system_id',
                'cve_id', e.data ->> 'cve_id',
                'title', format('upgrade %s %s to %s on %s (%s)', e.data ->> 'package',
                                e.data ->> 'version', e.data ->> 'fixed', e.data ->> 'system_id',
                                e.data ->> 'cve_id'),
                'priority', CASE WHEN cvss >= 9.0 THEN 'high' WHEN cvss >= 7.0 THEN 'medium' ELSE 'low' END,
                'due_at', e.created_at + CASE WHEN cvss >= 9.0 THEN interval '3 days'
                                              WHEN cvss >= 7.0 THEN interval '7 days'
                                              ELSE interval '30 days' END),
            demo.caused_by(e, 'task-management'),
            expected_version => 0);
        RETURN 1;
    END IF;

    -- VulnScanCompleted: close the scan's task, at the version we read.
    task_id := demo.short_id('scan:' || (e.data ->> 'scan_id'));
    FOR x IN SELECT * FROM eventstore.read_stream('task-' || task_id) LOOP
        version := x.stream_version;
        status := CASE x.event_type WHEN 'TaskCreated' THEN 'open' WHEN 'TaskCompleted' THEN 'done' ELSE status END;
    END LOOP;
    IF status IS DISTINCT FROM 'open' THEN
        RETURN 0;
    END IF;
    PERFORM eventstore.append_event(
        'task-' || task_id, 'TaskCompleted',
        jsonb_build_object('task_id', task_id,
                           'result', format('scan done: %s found', e.data ->> 'vulnerabilities')),
        demo.caused_by(e, 'task-management'),
        expected_version => version);
    RETURN 1;
END
$$;

-- Read models (projections) ---------------------------------------------------

CREATE TABLE board.systems (
    system_id       text PRIMARY KEY,
    name            text NOT NULL,
    classification  text NOT NULL,
    packages        integer NOT NULL,
    scan_priority   text,
    scan_status     text NOT NULL DEFAULT 'not scanned',
    vulnerabilities integer NOT NULL DEFAULT 0,
    max_cvss        numeric(3,1),
    alerts          integer NOT NULL DEFAULT 0,
    registered_at   timestamptz NOT NULL
);

CREATE TABLE board.vulnerabilities (
    event_id    uuid PRIMARY KEY,
    system_id   text NOT NULL,
    cve_id      text NOT NULL,
    package     text NOT NULL,
    version     text NOT NULL,
    fixed       text NOT NULL,
    cvss        numeric(3,1) NOT NULL,
    severity    text NOT NULL,
    detected_at timestamptz NOT NULL
);

CREATE TABLE board.tasks (
    task_id      text PRIMARY KEY,
    kind         text NOT NULL,
    system_id    text NOT NULL,
    title        text NOT NULL,
    priority     text NOT NULL,
    due_at       timestamptz,
    status       text NOT NULL,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz
);

CREATE FUNCTION board.priority_rank(priority text) RETURNS integer
    LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE priority WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END $$;

CREATE VIEW board.open_tasks AS
SELECT t.priority, t.due_at::date AS due, t.kind, t.system_id, t.title, t.task_id
  FROM board.tasks AS t
 WHERE t.status = 'open'
 ORDER BY board.priority_rank(t.priority), t.due_at NULLS LAST, t.system_id, t.task_id;

-- async (the background worker): the systems board, from every stream.
CREATE FUNCTION board.project_systems(e eventstore.event) RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    id text := e.data ->> 'system_id';
BEGIN
    CASE e.event_type
    WHEN 'SystemRegistered' THEN
        INSERT INTO board.systems (system_id, name, classification, packages, registered_at)
        VALUES (id, e.data ->> 'name', e.data ->> 'classification',
                (SELECT count(*) FROM jsonb_object_keys(e.data -> 'packages')), e.created_at);
    WHEN 'VulnScanInitiated' THEN
        UPDATE board.systems SET scan_priority = e.data ->> 'priority', scan_status = 'scanning'
         WHERE system_id = id;
    WHEN 'VulnerabilityDetected' THEN
        UPDATE board.systems
           SET vulnerabilities = vulnerabilities + 1,
               max_cvss = greatest(max_cvss, (e.data ->> 'cvss')::numeric)
         WHERE system_id = id;
    WHEN 'VulnScanCompleted' THEN
        UPDATE board.systems
           SET scan_status = CASE WHEN (e.data ->> 'vulnerabilities')::int = 0 THEN 'clean' ELSE 'vulnerable' END
         WHERE system_id = id;
    WHEN 'SystemSecurityAlert' THEN
        UPDATE board.systems SET alerts = alerts + 1 WHERE system_id = id;
    ELSE
        NULL;
    END CASE;
END
$$;

-- inline (in the appending transaction): vulnerabilities by system.
CREATE FUNCTION board.project_vulnerability(e eventstore.event) RETURNS void
    LANGUAGE sql
AS $$
    INSERT INTO board.vulnerabilities
    VALUES (e.event_id, e.data ->> 'system_id', e.data ->> 'cve_id', e.data ->> 'package',
            e.data ->> 'version', e.data ->> 'fixed', (e.data ->> 'cvss')::numeric,
            e.data ->> 'severity', e.created_at)
$$;

-- inline: tasks.
CREATE FUNCTION board.project_task(e eventstore.event) RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    IF e.event_type = 'TaskCreated' THEN
        INSERT INTO board.tasks (task_id, kind, system_id, title, priority, due_at, status, created_at)
        VALUES (e.data ->> 'task_id', e.data ->> 'kind', e.data ->> 'system_id', e.data ->> 'title',
                e.data ->> 'priority', (e.data ->> 'due_at')::timestamptz, 'open', e.created_at);
    ELSIF e.event_type = 'TaskCompleted' THEN
        UPDATE board.tasks SET status = 'done', completed_at = e.created_at
         WHERE task_id = e.data ->> 'task_id';
    END IF;
END
$$;

SELECT eventstore.create_projection('systems_board', 'board.project_systems(eventstore.event)', 'async');
SELECT eventstore.create_projection('vulnerabilities', 'board.project_vulnerability(eventstore.event)', 'inline',
                                    event_types => '{VulnerabilityDetected}');
SELECT eventstore.create_projection('tasks', 'board.project_task(eventstore.event)', 'inline',
                                    stream_prefix => 'task-');

-- Cross-context delivery: one subscription per reacting context --------------

CREATE TABLE demo.reactor (
    ord          integer NOT NULL,
    context      text PRIMARY KEY,
    subscription text NOT NULL UNIQUE,
    handler      regproc NOT NULL,
    event_types  text[] NOT NULL
);
INSERT INTO demo.reactor VALUES
    (1, 'vulnerability-management', 'vulnerability_mgmt', 'vulnmgmt.on_event', '{SystemRegistered,VulnScanInitiated}'),
    (2, 'task-management',          'task_mgmt',          'taskmgmt.on_event', '{VulnScanInitiated,VulnerabilityDetected,VulnScanCompleted}'),
    (3, 'system-management',        'system_mgmt',        'sysmgmt.on_event',  '{VulnerabilityDetected}');

-- create_subscription runs outside a transaction block: one statement each.
SELECT eventstore.create_subscription('vulnerability_mgmt', event_types => '{SystemRegistered,VulnScanInitiated}', from_position => 0);
SELECT eventstore.create_subscription('task_mgmt', event_types => '{VulnScanInitiated,VulnerabilityDetected,VulnScanCompleted}', from_position => 0);
SELECT eventstore.create_subscription('system_mgmt', event_types => '{VulnerabilityDetected}', from_position => 0);

CREATE TABLE demo.reaction_log (
    run       integer NOT NULL,
    round     integer NOT NULL,
    context   text NOT NULL,
    delivered integer NOT NULL,   -- events polled
    appended  integer NOT NULL,   -- events the handler appended in reaction
    conflicts integer NOT NULL,   -- batches rolled back on ES001, delivered again
    PRIMARY KEY (run, round, context)
);

-- One batch of one subscription: poll, handle, ack -- the caller's
-- transaction, so the handler's appends and the checkpoint commit together.
CREATE FUNCTION demo.consume(sub text, handler regproc, max_count integer DEFAULT 100,
                             OUT delivered integer, OUT appended integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    r record;
    k integer;
BEGIN
    delivered := 0;
    appended := 0;
    FOR r IN SELECT * FROM eventstore.poll(sub, max_count) LOOP
        EXECUTE format('SELECT %s($1)', handler) INTO k
          USING ROW(r.global_position, r.stream, r.stream_version, r.event_id, r.event_type,
                    r.data, r.metadata, r.created_at)::eventstore.event;
        delivered := delivered + 1;
        appended := appended + k;
    END LOOP;
    PERFORM eventstore.ack(sub);
END
$$;

-- The reaction loop: round after round, each context consumes one batch in
-- its own transaction, until a round delivers nothing.  A batch that hits
-- ES001 (someone appended to the target stream meanwhile) is rolled back
-- and delivered again in the next round.
CREATE PROCEDURE demo.react(max_rounds integer DEFAULT 20)
    LANGUAGE plpgsql
AS $$
DECLARE
    run_no integer;
    round_no integer := 0;
    moved integer;
    subs demo.reactor[];
    s demo.reactor;
    d integer;
    a integer;
    c integer;
BEGIN
    SELECT coalesce(max(l.run), 0) + 1 INTO run_no FROM demo.reaction_log AS l;
    SELECT array_agg(t ORDER BY t.ord) INTO subs FROM demo.reactor AS t;
    LOOP
        round_no := round_no + 1;
        moved := 0;
        FOREACH s IN ARRAY subs LOOP
            c := 0;
            BEGIN
                SELECT x.delivered, x.appended INTO d, a FROM demo.consume(s.subscription, s.handler) AS x;
            EXCEPTION WHEN SQLSTATE 'ES001' THEN
                d := 0; a := 0; c := 1;
            END;
            INSERT INTO demo.reaction_log VALUES (run_no, round_no, s.context, d, a, c);
            COMMIT;
            moved := moved + d + c;
        END LOOP;
        EXIT WHEN moved = 0;
        IF round_no >= max_rounds THEN
            RAISE EXCEPTION 'reactions did not settle after % rounds', max_rounds;
        END IF;
    END LOOP;
END
$$;

-- Wait until the async projections have applied every event they match
-- (the background worker runs them; appends wake it).
CREATE PROCEDURE demo.await_projections(timeout_s numeric DEFAULT 20)
    LANGUAGE plpgsql
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
    behind text;
BEGIN
    LOOP
        SELECT string_agg(format('%s (checkpoint %s, last_error %s)', p.name, p.checkpoint,
                                 coalesce(p.last_error, 'none')), ', ')
          INTO behind
          FROM eventstore.projections AS p
         WHERE p.mode = 'async'
           AND EXISTS (SELECT FROM eventstore.read_all(p.checkpoint, 1, p.stream_prefix, p.event_types));
        EXIT WHEN behind IS NULL;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'async projections still behind after % s: %', timeout_s, behind
                USING HINT = 'Is the database listed in eventstore.worker_databases?';
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

-- The causation tree of one correlation id: the command, the events it
-- caused, the reactions to those, ... (causation_id -> event_id), siblings
-- in append order.
CREATE FUNCTION demo.causation_tree(correlation_id text)
RETURNS TABLE (depth integer, line text, kind text, event_id text, global_position bigint)
    LANGUAGE sql STABLE
AS $$
WITH RECURSIVE node AS (
    SELECT c.command_id::text AS id, NULL::text AS parent, 0::bigint AS pos, c.command AS kind,
           format('%s %s  (command %s by %s)', c.command, c.system_id, left(c.command_id::text, 8),
                  c.issued_by) AS label,
           true AS last
      FROM sysmgmt.command_log AS c
     WHERE c.command_id::text = correlation_id
    UNION ALL
    SELECT e.event_id::text, e.metadata ->> 'causation_id', e.global_position, e.event_type,
           format('%s  %s@%s  %s', e.event_type, e.stream, e.stream_version,
                  demo.describe(e.event_type, e.data)),
           row_number() OVER (PARTITION BY e.metadata ->> 'causation_id'
                              ORDER BY e.global_position DESC) = 1
      FROM eventstore.events AS e
     WHERE e.metadata ->> 'correlation_id' = correlation_id
),
tree AS (
    SELECT n.id, n.pos, n.kind, n.label, 0 AS depth, ''::text AS prefix, ''::text AS indent,
           ARRAY[n.pos] AS path
      FROM node AS n
     WHERE n.parent IS NULL OR NOT EXISTS (SELECT FROM node AS p WHERE p.id = n.parent AND p.id <> n.id)
    UNION ALL
    SELECT n.id, n.pos, n.kind, n.label, t.depth + 1,
           t.indent || CASE WHEN n.last THEN '└─ ' ELSE '├─ ' END,
           t.indent || CASE WHEN n.last THEN '   ' ELSE '│  ' END,
           t.path || n.pos
      FROM tree AS t
      JOIN node AS n ON n.parent = t.id AND n.id <> t.id
)
SELECT t.depth, t.prefix || t.label, t.kind, t.id, nullif(t.pos, 0)
  FROM tree AS t
 ORDER BY t.path
$$;

-- Run a statement; report how it ended (for showing refused commands).
CREATE FUNCTION demo.attempt(statement text) RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    state text;
    message text;
    detail text;
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    RETURN format('refused, SQLSTATE %s: %s%s', state, message,
                  CASE WHEN detail <> '' THEN ' -- ' || detail ELSE '' END);
END
$$;

\o
