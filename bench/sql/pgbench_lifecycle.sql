-- One scheduler flush cycle for 256 no-op jobs, as orch writes it (bench/ceiling):
-- claim (asynchronous commit), start (running + event), finish (completed +
-- event), each its own transaction, on orch's schema.
BEGIN;
SET LOCAL synchronous_commit = off;
WITH c AS (SELECT id FROM jobs WHERE status = 'pending' AND claimed_by IS NULL ORDER BY priority DESC, seq LIMIT 256 FOR UPDATE SKIP LOCKED), u AS (UPDATE jobs j SET claimed_by = 'pgbench', claim_expires_at = now() + interval '1 minute' FROM c WHERE j.id = c.id RETURNING j.id) SELECT coalesce(array_agg(id)::text, '{}') AS ids FROM u
\gset
COMMIT;
BEGIN;
SET LOCAL enable_nestloop = off;
WITH u AS (UPDATE jobs j SET status = 'running', attempt = 1, worker_id = 'w1', started_at = clock_timestamp(), updated_at = clock_timestamp(), claimed_by = NULL, claim_expires_at = NULL, lease_expires_at = now() + interval '20 seconds' WHERE j.id = ANY(':ids'::uuid[]) AND (j.status = 'pending') IS TRUE RETURNING j.id, j.started_at, j.worker_id) INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message) SELECT id, started_at, 'pending', 'running', 1, worker_id, 'started on w1' FROM u;
COMMIT;
BEGIN;
SET LOCAL enable_nestloop = off;
WITH u AS (UPDATE jobs j SET status = 'completed', completed_at = clock_timestamp(), updated_at = clock_timestamp(), lease_expires_at = NULL WHERE j.id = ANY(':ids'::uuid[]) AND (j.status = 'running') IS TRUE RETURNING j.id, j.completed_at, j.worker_id) INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message) SELECT id, completed_at, 'running', 'completed', 1, worker_id, 'completed' FROM u;
COMMIT;
