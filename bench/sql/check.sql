-- Correctness check run at the end of every measure. One line, |-separated:
--   jobs | not_terminal | terminal_events_not_one | jobs_with_two_terminal
--        | status_event_mismatch | submitted_events_not_one
-- where
--   not_terminal: jobs still pending or running;
--   terminal_events_not_one: terminal jobs without exactly one terminal event;
--   jobs_with_two_terminal: jobs with more than one terminal event;
--   status_event_mismatch: jobs whose one terminal event names another
--     status than the row;
--   submitted_events_not_one: jobs whose history does not hold exactly one
--     'submitted' event (-1 when the measure seeded no events at all).
-- The harness decides which must be zero (bench/run, check_jobs). One pass
-- over each table, joined by hash (a nested loop would be quadratic).
SET enable_nestloop = off;
SELECT count(*),
       count(*) FILTER (WHERE j.status IN ('pending', 'running')),
       count(*) FILTER (WHERE j.status IN ('completed', 'failed', 'cancelled')
                          AND coalesce(e.term, 0) <> 1),
       count(*) FILTER (WHERE e.term > 1),
       count(*) FILTER (WHERE e.term = 1 AND e.term_status <> j.status),
       CASE WHEN EXISTS (SELECT 1 FROM job_events)
            THEN count(*) FILTER (WHERE coalesce(e.submitted, 0) <> 1)
            ELSE -1 END
FROM jobs j
LEFT JOIN (
  SELECT job_id,
         count(*) FILTER (WHERE to_status IN ('completed', 'failed',
                                              'cancelled')) AS term,
         max(to_status) FILTER (WHERE to_status IN ('completed', 'failed',
                                                    'cancelled'))
           AS term_status,
         count(*) FILTER (WHERE to_status = 'pending'
                            AND from_status IS NULL) AS submitted
  FROM job_events
  GROUP BY job_id
) e ON e.job_id = j.id;
