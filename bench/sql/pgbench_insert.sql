-- pgbench baseline: one single-row INSERT per transaction (pgbench wraps
-- each script run in its own implicit transaction), a row shaped like a
-- submitted job: a uuid key, a jsonb payload, a timestamp.
INSERT INTO bench_insert (id, pipeline_name, parameters)
VALUES (gen_random_uuid(), 'bench', '{"mock_duration_ms": 0, "mock_fail": false}');
