-- orch schema, version 3: job control and failure semantics.
--   retries:      max_attempts, retry_backoff_seconds, next_attempt_at
--   timeouts:     timeout_seconds (enforced by the worker, and by the reaper)
--   cancel:       cancel_requested (a running job is cancelled when its worker
--                 confirms; a cancel always wins over a late result)
--   leases:       lease_expires_at of a running job, renewed by heartbeats;
--                 any api-node's reaper returns expired jobs to pending
--   idempotency:  idempotency_key (unique) and the request's hash
ALTER TABLE jobs
  ADD COLUMN max_attempts          integer NOT NULL DEFAULT 1
             CHECK (max_attempts BETWEEN 1 AND 100),
  ADD COLUMN retry_backoff_seconds double precision NOT NULL DEFAULT 10
             CHECK (retry_backoff_seconds >= 0),
  ADD COLUMN timeout_seconds       integer NOT NULL DEFAULT 86400
             CHECK (timeout_seconds > 0),
  ADD COLUMN next_attempt_at       timestamptz,
  ADD COLUMN cancel_requested      boolean NOT NULL DEFAULT false,
  ADD COLUMN lease_expires_at      timestamptz,
  ADD COLUMN idempotency_key       text,
  ADD COLUMN request_hash          text;

CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- The reaper's scan: running jobs by lease expiry.
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at)
  WHERE status = 'running';
