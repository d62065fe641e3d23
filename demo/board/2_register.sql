-- Commands: System Management registers five systems.  One of them runs a
-- log4j-core with a critical CVE; one has nothing known against it.
\set ON_ERROR_STOP on
\pset footer off
\echo
\echo '== Vulnerability Management scans against this CVE list (demo/cves.json, loaded into vulnmgmt.cve)'
SELECT cve_id, package, format('%s <= v < %s', introduced, fixed) AS affected, cvss,
       vulnmgmt.severity(cvss) AS severity, summary
  FROM vulnmgmt.cve
 ORDER BY cvss DESC, cve_id;

\echo '== Commands: System Management registers five systems'
\echo '   Each RegisterSystem command appends SystemRegistered to system-{id} with expected_version 0;'
\echo '   the command id is the correlation_id of everything that follows.'
SELECT s.system_id AS system, s.classification,
       (SELECT string_agg(p.key || ' ' || p.value, ', ' ORDER BY p.key) FROM jsonb_each_text(s.packages) AS p) AS packages,
       left(sysmgmt.register_system(s.system_id, s.name, s.classification, s.packages)::text, 8) AS correlation
  FROM (VALUES
    ('pay-gateway',  'Payment gateway',     'restricted',   '{"log4j-core": "2.14.1", "openssl": "3.0.7", "nginx": "1.22.1"}'::jsonb),
    ('hr-portal',    'HR portal',           'confidential', '{"openssl": "3.0.5", "jquery": "3.4.1"}'),
    ('wiki',         'Team wiki',           'internal',     '{"nginx": "1.20.0", "postgresql": "15.4"}'),
    ('build-runner', 'CI build runner',     'internal',     '{"curl": "8.4.0", "git": "2.43.0"}'),
    ('status-page',  'Public status page',  'public',       '{"jquery": "3.4.1"}')
  ) AS s(system_id, name, classification, packages);

\echo '== The same command again is refused by the store (the system stream already exists):'
SELECT demo.attempt($$SELECT sysmgmt.register_system('pay-gateway', 'Payment gateway', 'restricted', '{}')$$) AS outcome;
