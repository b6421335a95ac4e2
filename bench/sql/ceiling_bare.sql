-- Drain ceiling variant: also without the foreign key of job_events (a
-- checked lookup of the job per event row). What is left is the least a
-- queue that records every transition as an event can write.
ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;
