WITH s AS (
  SELECT t.id, t.attempt, t.worker,
    timestamptz 'epoch' + t.at * interval '1 microsecond' AS at,
    timestamptz 'epoch' + t.fat * interval '1 microsecond' AS fat
  FROM unnest(':ids'::uuid[], array_fill(1, ARRAY[:n]), array_fill('w1'::text, ARRAY[:n]),
              array_fill((extract(epoch from clock_timestamp()) * 1000000)::bigint, ARRAY[:n]),
              array_fill((extract(epoch from clock_timestamp()) * 1000000)::bigint, ARRAY[:n]))
       AS t(id, attempt, worker, at, fat)),
 u AS (
  UPDATE jobs j SET status = 'completed', attempt = s.attempt,
    worker_id = s.worker, started_at = greatest(s.at, j.created_at),
    completed_at = greatest(s.fat, s.at, j.created_at),
    updated_at = greatest(s.fat, s.at, j.created_at), claimed_by = NULL,
    claim_expires_at = NULL, next_attempt_at = NULL, error_message = NULL,
    lease_expires_at = NULL,
    progress_completed = NULL, progress_total = NULL
  FROM s WHERE j.id = s.id AND j.id = ANY(':ids'::uuid[])
    AND (j.status = 'pending') IS TRUE
    AND j.attempt = s.attempt - 1 AND j.claimed_by = 'pgbench'
  RETURNING j.id, j.attempt, j.worker_id, j.started_at, j.completed_at,
    j.pipeline_name, j.status, j.created_at),
 ev AS (
  INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
  SELECT id, started_at, 'pending', 'running', attempt, worker_id, 'started on ' || worker_id FROM u
  UNION ALL
  SELECT id, completed_at, 'running', 'completed', attempt, worker_id, 'completed' FROM u)
SELECT id::text, pipeline_name, status, attempt FROM u;
