-- orch schema, version 2: read-only views for operators (docs/operations.md).
-- Views only: no table, index or data changes. Every view reads the tables of
-- 0001 at query time, so they are always current. Applied like every
-- migration: one transaction, recorded in schema_migrations.

-- Jobs waiting or running, by status and pipeline, with the age of the
-- oldest one. Terminal jobs are left out (they only grow); see
-- docs/operations.md for counts of every status.
CREATE VIEW ops_queue_depth AS
SELECT status,
       pipeline_name,
       count(*)                          AS jobs,
       min(created_at)                   AS oldest_created_at,
       clock_timestamp() - min(created_at) AS oldest_age
FROM jobs
WHERE status IN ('pending', 'running')
GROUP BY status, pipeline_name;

COMMENT ON VIEW ops_queue_depth IS
  'pending and running jobs by status and pipeline; oldest_age is now - oldest created_at';

-- Every pending or running job with how long it has been in that state:
-- running since started_at, pending since it last became pending (its
-- updated_at). Filter on in_state_for, e.g.
--   SELECT * FROM ops_stuck_jobs WHERE in_state_for > interval '30 minutes';
CREATE VIEW ops_stuck_jobs AS
SELECT id,
       status,
       pipeline_name,
       priority,
       attempt,
       worker_id,
       claimed_by,
       claim_expires_at,
       created_at,
       started_at,
       updated_at,
       clock_timestamp() - CASE WHEN status = 'running'
                                THEN coalesce(started_at, updated_at)
                                ELSE updated_at END AS in_state_for
FROM jobs
WHERE status IN ('pending', 'running');

COMMENT ON VIEW ops_stuck_jobs IS
  'pending/running jobs with in_state_for; filter e.g. in_state_for > interval ''30 minutes''';

-- Jobs that reached a terminal state, per minute, over the last hour
-- (from job_events, so a job requeued and finished later counts once, at
-- its finish). Minutes without any finish are absent.
CREATE VIEW ops_throughput_per_minute AS
SELECT date_trunc('minute', at)                          AS minute,
       count(*) FILTER (WHERE to_status = 'completed')   AS completed,
       count(*) FILTER (WHERE to_status = 'failed')      AS failed,
       count(*) FILTER (WHERE to_status = 'cancelled')   AS cancelled,
       count(*)                                          AS finished
FROM job_events
WHERE to_status IN ('completed', 'failed', 'cancelled')
  AND at >= date_trunc('minute', clock_timestamp()) - interval '59 minutes'
GROUP BY 1;

COMMENT ON VIEW ops_throughput_per_minute IS
  'terminal transitions per minute over the last 60 minutes (ORDER BY minute)';

-- Failure reasons of the last 7 days, by pipeline, most frequent first when
-- ordered by jobs DESC.
CREATE VIEW ops_failure_reasons_7d AS
SELECT pipeline_name,
       coalesce(error_message, '(no message)') AS error_message,
       count(*)                                AS jobs,
       min(completed_at)                       AS first_at,
       max(completed_at)                       AS last_at
FROM jobs
WHERE status = 'failed'
  AND completed_at >= clock_timestamp() - interval '7 days'
GROUP BY 1, 2;

COMMENT ON VIEW ops_failure_reasons_7d IS
  'failed jobs of the last 7 days by pipeline and error_message (ORDER BY jobs DESC)';

-- Every event of every job, with the job's pipeline and current status.
--   SELECT * FROM ops_job_history WHERE job_id = '...' ORDER BY event_id;
CREATE VIEW ops_job_history AS
SELECT e.job_id,
       e.id          AS event_id,
       e.at,
       e.from_status,
       e.to_status,
       e.attempt,
       e.worker_id,
       e.message,
       j.pipeline_name,
       j.status      AS current_status
FROM job_events e
JOIN jobs j ON j.id = e.job_id;

COMMENT ON VIEW ops_job_history IS
  'job_events joined with jobs; filter on job_id and ORDER BY event_id';

-- Workers that are connected now (no disconnected_at), with the jobs each
-- runs and its free slots. GET /workers additionally requires a recent
-- last_seen; compare last_seen with now() to spot a stale row.
CREATE VIEW ops_workers AS
SELECT w.id,
       w.host,
       w.slots,
       count(j.id)                   AS running,
       w.slots - count(j.id)         AS free_slots,
       w.scheduler_id,
       w.node_id,
       w.connected_at,
       w.last_seen,
       clock_timestamp() - w.last_seen AS last_seen_ago
FROM workers w
LEFT JOIN jobs j ON j.worker_id = w.id AND j.status = 'running'
WHERE w.disconnected_at IS NULL
GROUP BY w.id;

COMMENT ON VIEW ops_workers IS
  'connected workers with running job count and free slots';
