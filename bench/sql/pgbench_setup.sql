-- Scratch table of the pgbench baseline (see pgbench_insert.sql).
DROP TABLE IF EXISTS bench_insert;
CREATE TABLE bench_insert (
  id            uuid        PRIMARY KEY,
  pipeline_name text        NOT NULL,
  parameters    jsonb       NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
