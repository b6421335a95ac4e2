-- orch schema, version 4: exact job counts by pipeline and status without
-- count(*) over the jobs table (GET /jobs "total", dashboards, metrics).
--
-- Statement-level triggers append one aggregated delta row per
-- (pipeline_name, status) a statement changed to job_count_deltas. Appends
-- never contend, so concurrent writers do not serialize on counter rows.
-- Every second one api-node folds the deltas into job_counts (under a
-- transaction-scoped advisory lock). A count is the sum of both tables,
-- which every snapshot sees consistently.
CREATE TABLE job_counts (
  pipeline_name text   NOT NULL,
  status        text   NOT NULL,
  n             bigint NOT NULL,
  PRIMARY KEY (pipeline_name, status)
);

CREATE TABLE job_count_deltas (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pipeline_name text   NOT NULL,
  status        text   NOT NULL,
  delta         bigint NOT NULL
);

CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO job_count_deltas (pipeline_name, status, delta)
  SELECT pipeline_name, status, count(*) FROM new_rows
  GROUP BY pipeline_name, status;
  RETURN NULL;
END $$;

CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO job_count_deltas (pipeline_name, status, delta)
  SELECT pipeline_name, status, -count(*) FROM old_rows
  GROUP BY pipeline_name, status;
  RETURN NULL;
END $$;

-- An update moves a row from its old (pipeline, status) to its new one:
-- -1 for every old row, +1 for every new row, summed per group (no join of
-- the transition tables, which have no indexes).
CREATE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO job_count_deltas (pipeline_name, status, delta)
  SELECT pipeline_name, status, sum(d) FROM (
    SELECT pipeline_name, status, -count(*) AS d FROM old_rows
    GROUP BY pipeline_name, status
    UNION ALL
    SELECT pipeline_name, status, count(*) FROM new_rows
    GROUP BY pipeline_name, status) c
  GROUP BY pipeline_name, status
  HAVING sum(d) <> 0;
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_insert();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_delete();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_update();

-- Existing jobs.
INSERT INTO job_counts (pipeline_name, status, n)
SELECT pipeline_name, status, count(*) FROM jobs GROUP BY 1, 2;

-- Counts by pipeline and status, always current.
CREATE VIEW ops_job_counts AS
SELECT pipeline_name, status, sum(n)::bigint AS jobs
FROM (SELECT pipeline_name, status, n FROM job_counts
      UNION ALL
      SELECT pipeline_name, status, delta FROM job_count_deltas) c
GROUP BY pipeline_name, status;
