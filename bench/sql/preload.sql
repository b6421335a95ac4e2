-- Preloads :n pending no-op jobs for the drain measure, as a submission
-- would leave them: a jobs row plus its 'submitted' event.
--   psql -v n=100000 -f preload.sql
BEGIN;
INSERT INTO jobs (id, pipeline_name, parameters)
SELECT gen_random_uuid(), 'bench',
       '{"mock_duration_ms":0,"mock_fail":false}'::jsonb
FROM generate_series(1, :n);
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, message)
SELECT id, created_at, NULL, 'pending', 0, 'submitted' FROM jobs ORDER BY seq;
COMMIT;
ANALYZE jobs;
ANALYZE job_events;
CHECKPOINT;
