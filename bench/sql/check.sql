-- Correctness check run at the end of every measure. One line, |-separated:
--   jobs | not_terminal | terminal_events_not_one | jobs_with_two_terminal
--        | status_event_mismatch | submitted_events_not_one
-- where
--   not_terminal: jobs still pending or running;
--   terminal_events_not_one: terminal jobs without exactly one terminal event;
--   jobs_with_two_terminal: jobs with more than one terminal event (any
--     status);
--   status_event_mismatch: terminal jobs whose terminal event names another
--     status than the row;
--   submitted_events_not_one: jobs whose history does not start with exactly
--     one 'submitted' event (-1 when the measure seeds no events).
-- The harness decides which must be zero (see bench/run, check_jobs).
WITH term AS (
  SELECT job_id, count(*) AS n, max(to_status) AS to_status
  FROM job_events
  WHERE to_status IN ('completed', 'failed', 'cancelled')
  GROUP BY job_id
), sub AS (
  SELECT job_id, count(*) AS n
  FROM job_events
  WHERE to_status = 'pending' AND from_status IS NULL
  GROUP BY job_id
)
SELECT
  (SELECT count(*) FROM jobs),
  (SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')),
  (SELECT count(*) FROM jobs j LEFT JOIN term t ON t.job_id = j.id
    WHERE j.status IN ('completed', 'failed', 'cancelled')
      AND coalesce(t.n, 0) <> 1),
  (SELECT count(*) FROM term WHERE n > 1),
  (SELECT count(*) FROM jobs j JOIN term t ON t.job_id = j.id
    WHERE t.n = 1 AND t.to_status <> j.status),
  CASE WHEN EXISTS (SELECT 1 FROM job_events)
       THEN (SELECT count(*) FROM jobs j LEFT JOIN sub s ON s.job_id = j.id
              WHERE coalesce(s.n, 0) <> 1)
       ELSE -1 END;
