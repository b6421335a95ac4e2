-- Drain ceiling variant: also without the indexes that serve reads (GET
-- /jobs filters, the lease reaper, a job's event history).
DROP INDEX jobs_pipeline_status_seq_idx, jobs_status_seq_idx,
  jobs_running_lease_idx, jobs_running_worker_idx, job_events_job_idx;
