-- One scheduler cycle for 256 no-op jobs, as orch runs it (bench/ceiling):
-- the claim (asynchronous commit, its own transaction), then one flush that
-- persists the batch's start and finish reports with their job_events rows
-- (one transaction, as a flush that holds both reports of a no-op job).
-- @APPLY_STARTS@ and @APPLY_FINISHES@ are replaced by bench/ceiling with the
-- text of the api-node's prepared statements, read from job_store.cpp, so
-- that this script cannot drift from them. With a joined flush (the
-- default; see bench/ceiling) the finish statement also writes the start,
-- and the @APPLY_STARTS@ line is dropped. The claim is job_store::claim's
-- statement (built there from parts, so copied here) with its rows
-- aggregated into arrays for pgbench's \gset.
BEGIN;
SET LOCAL synchronous_commit = off;
SET LOCAL enable_sort = off;
SET LOCAL enable_bitmapscan = off;
SELECT name FROM pipelines WHERE max_concurrent IS NOT NULL;
WITH c AS (SELECT id FROM jobs WHERE status = 'pending' AND (claimed_by IS NULL OR claim_expires_at < now()) AND (next_attempt_at IS NULL OR next_attempt_at <= now()) AND executor = ANY('{mock,command,snakemake,nextflow}'::text[]) AND NOT (pipeline_name = ANY('{}'::text[])) ORDER BY priority DESC, seq LIMIT 256 FOR UPDATE SKIP LOCKED), u AS (UPDATE jobs j SET claimed_by = 'pgbench', claim_expires_at = now() + 60000::bigint * interval '1 millisecond' FROM c WHERE j.id = c.id RETURNING j.id::text, j.attempt, j.pipeline_name, j.parameters::text, j.priority, j.seq, j.timeout_seconds, j.executor) SELECT coalesce(array_agg(id)::text, '{}') AS ids, count(*) AS n FROM u
\gset
COMMIT;
BEGIN;
SET LOCAL enable_nestloop = off;
SET LOCAL plan_cache_mode = force_custom_plan;
@APPLY_STARTS@;
@APPLY_FINISHES@;
COMMIT;
