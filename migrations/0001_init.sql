-- orch schema, version 1: jobs, their event history, and connected workers.
-- Applied by the api-node at startup inside one transaction, under an advisory
-- lock, and recorded in schema_migrations.

-- Job state machine (see shared/include/orch/job.hpp):
--   pending -> running -> completed | failed
--   running -> pending        (worker lost: requeued, attempt is kept)
--   pending | running -> cancelled
CREATE TABLE jobs (
  id               uuid        PRIMARY KEY,
  -- Submission order; the tie-breaker for equal priorities and the keyset
  -- for listing (newest first).
  seq              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  status           text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending','running','completed','failed','cancelled')),
  pipeline_name    text        NOT NULL,
  parameters       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  description      text,
  priority         integer     NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
  -- 0 until the job first runs; incremented for every attempt.
  attempt          integer     NOT NULL DEFAULT 0,
  worker_id        text,
  error_message    text,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at       timestamptz,
  completed_at     timestamptz,
  -- Dispatch claim: which scheduler took this pending job and until when the
  -- claim holds. A claim that expires (its api-node died) is free again.
  claimed_by       text,
  claim_expires_at timestamptz
);

-- Claim order: highest priority first, then submission order.
CREATE INDEX jobs_pending_idx ON jobs (priority DESC, seq) WHERE status = 'pending';
-- Listing, newest first, optionally filtered.
CREATE INDEX jobs_status_seq_idx ON jobs (status, seq DESC);
CREATE INDEX jobs_pipeline_status_seq_idx ON jobs (pipeline_name, status, seq DESC);
-- Jobs a given worker holds (requeue on worker loss).
CREATE INDEX jobs_running_worker_idx ON jobs (worker_id) WHERE status = 'running';

-- Every state change, in order. An operator reads a job's history with
--   SELECT * FROM job_events WHERE job_id = '...' ORDER BY id;
CREATE TABLE job_events (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  from_status text,
  to_status   text        NOT NULL,
  attempt     integer     NOT NULL,
  worker_id   text,
  message     text
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- Workers as registered with some api-node's scheduler. Rows of workers that
-- disconnected keep disconnected_at; GET /workers lists the connected ones
-- (disconnected_at IS NULL and a recent last_seen) and counts their running
-- jobs from the jobs table.
CREATE TABLE workers (
  id              text        PRIMARY KEY,
  host            text        NOT NULL,
  slots           integer     NOT NULL,
  scheduler_id    text        NOT NULL,
  node_id         text        NOT NULL,
  connected_at    timestamptz NOT NULL,
  last_seen       timestamptz NOT NULL,
  disconnected_at timestamptz
);
