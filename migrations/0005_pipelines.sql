-- orch schema, version 5: real pipelines (issue 7).
--
-- - jobs.executor: which executor runs the job (from the catalog at
--   submission; 'mock' without a catalog). The scheduler claims only jobs
--   whose executor a connected worker with free slots can run.
-- - jobs.progress_completed / progress_total: the executor's last progress
--   report of the current attempt (null until reported).
-- - workers.executors: what each worker advertised when it registered.
-- - pipelines: the catalog as the api-nodes loaded it (each upserts its
--   own at startup). max_concurrent is enforced at claim time under a lock
--   on the pipeline's row, so the limit holds across all api-nodes.
-- - job_logs: output lines of each job, capped per job (job_log_stats).
ALTER TABLE jobs
  ADD COLUMN executor           text   NOT NULL DEFAULT 'mock',
  ADD COLUMN progress_completed bigint,
  ADD COLUMN progress_total     bigint;

ALTER TABLE workers
  ADD COLUMN executors text[] NOT NULL DEFAULT '{mock}';

CREATE TABLE pipelines (
  name           text        PRIMARY KEY,
  executor       text        NOT NULL,
  max_concurrent integer     CHECK (max_concurrent >= 1),
  definition     jsonb       NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_logs (
  id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id  uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt integer     NOT NULL,
  stream  text        NOT NULL,
  at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  line    text        NOT NULL
);
CREATE INDEX job_logs_job_idx ON job_logs (job_id, id);

-- Lines and bytes kept per job, and what the cap dropped (oldest first).
CREATE TABLE job_log_stats (
  job_id        uuid   PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  lines         bigint NOT NULL DEFAULT 0,
  bytes         bigint NOT NULL DEFAULT 0,
  dropped_lines bigint NOT NULL DEFAULT 0,
  dropped_bytes bigint NOT NULL DEFAULT 0
);
