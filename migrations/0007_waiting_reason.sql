-- orch schema, version 7: why a pending job waits, as a function.
--
-- The api-node used to compute a job's waiting_reason with a CASE of three
-- subqueries inside every statement that reads jobs. PostgreSQL plans a
-- list page's statement again on every execution (its custom plan picks
-- the index that suits the filter's values), and planning those
-- subqueries was most of that: 0.43 ms of planning per page with them,
-- 0.13 ms without, against 0.3 ms of execution. A PL/pgSQL function keeps
-- the plans of its queries for the session, and the statement's planner
-- sees one function call. It is called for pending rows only.
--
-- Operators can ask it for any job:
--   SELECT id, job_waiting_reason(next_attempt_at, executor, pipeline_name)
--   FROM jobs WHERE status = 'pending';
CREATE FUNCTION job_waiting_reason(next_attempt_at timestamptz,
                                   executor text, pipeline_name text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  cap integer;
BEGIN
  IF next_attempt_at > now() THEN
    RETURN 'retry backoff: next attempt at '
           || to_char(next_attempt_at AT TIME ZONE 'UTC',
                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  END IF;
  -- Workers count as connected when seen in the last 15 s.
  IF NOT EXISTS (SELECT 1 FROM workers w
                 WHERE w.disconnected_at IS NULL
                   AND w.last_seen > now() - interval '15 seconds'
                   AND job_waiting_reason.executor = ANY (w.executors)) THEN
    RETURN 'no connected worker can run executor '
           || job_waiting_reason.executor;
  END IF;
  SELECT p.max_concurrent INTO cap FROM pipelines p
  WHERE p.name = job_waiting_reason.pipeline_name;
  IF cap IS NOT NULL
     AND cap <= (SELECT count(*) FROM jobs r
                 WHERE r.pipeline_name = job_waiting_reason.pipeline_name
                   AND r.status = 'running') THEN
    RETURN 'pipeline ' || job_waiting_reason.pipeline_name
           || ' is at its max_concurrent limit (' || cap || ' running)';
  END IF;
  RETURN NULL;
END $$;
