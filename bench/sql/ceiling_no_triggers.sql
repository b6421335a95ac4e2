-- Drain ceiling variant: without the statement triggers (the job counters
-- of migration 0004 and the stream's complete markers of 0006).
DROP TRIGGER jobs_count_insert ON jobs;
DROP TRIGGER jobs_count_update ON jobs;
DROP TRIGGER jobs_count_delete ON jobs;
DROP TRIGGER job_events_complete ON job_events;
