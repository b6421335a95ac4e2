-- orch schema, version 6: one ordered stream of job events for
-- Server-Sent Events (issue 6).
--
-- GET /jobs/{id}/events and GET /events number their events with ids that
-- a client hands back as Last-Event-ID to resume "with no gap and no
-- duplicate". Events come from three tables, so all three draw their ids
-- from one sequence, the one of job_events.id:
--
--   job_events   status changes ('status' events), as before
--   job_logs     output lines ('log' events)
--   job_signals  progress reports ('progress') and a 'complete' marker that
--                a trigger appends after every terminal status change
--
-- Ids are unique across the three tables and increase in allocation order.
-- A transaction may commit after one that drew a higher id; the api-nodes'
-- event hubs therefore advance their read position only over contiguous
-- ids, waiting briefly for a missing one (see api-node/include/orch/api/
-- sse_hub.hpp).

-- job_logs takes its ids from the job_events sequence from now on.
ALTER TABLE job_logs ALTER COLUMN id DROP IDENTITY IF EXISTS;
ALTER TABLE job_logs
  ALTER COLUMN id SET DEFAULT nextval(pg_get_serial_sequence('job_events', 'id')::regclass);
SELECT setval(pg_get_serial_sequence('job_events', 'id'),
              greatest((SELECT max(id) FROM job_events),
                       (SELECT max(id) FROM job_logs), 0) + 1, false);

CREATE TABLE job_signals (
  id        bigint      PRIMARY KEY
            DEFAULT nextval(pg_get_serial_sequence('job_events', 'id')::regclass),
  job_id    uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempt   integer     NOT NULL,
  kind      text        NOT NULL CHECK (kind IN ('progress', 'complete')),
  -- progress: steps done and in all
  completed bigint,
  total     bigint,
  -- complete: the terminal status
  status    text
);
CREATE INDEX job_signals_job_idx ON job_signals (job_id, id);

-- A 'complete' marker after each terminal status change, in the same
-- statement's transaction (so every writer of job_events gets it: the
-- scheduler's batches, cancels of pending jobs, the reaper).
CREATE FUNCTION job_events_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO job_signals (job_id, at, attempt, kind, status)
  SELECT job_id, at, attempt, 'complete', to_status FROM new_rows
  WHERE to_status IN ('completed', 'failed', 'cancelled')
  ORDER BY id;
  RETURN NULL;
END $$;

-- Jobs that ended before this migration get their marker now, so that
-- their event streams end too.
INSERT INTO job_signals (job_id, at, attempt, kind, status)
SELECT id, coalesce(completed_at, updated_at), attempt, 'complete', status
FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
ORDER BY coalesce(completed_at, updated_at), id;

CREATE TRIGGER job_events_complete AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_events_complete();
