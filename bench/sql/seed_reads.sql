-- Seeds :n jobs for the reads-at-scale measure, in bulk, without events
-- (nothing here is run). The mix, by position g:
--   status:   86.8 % completed, 10 % failed, 2 % pending, 1 % cancelled,
--             0.2 % running (a realistic running set: as many as there are
--             slots, not a tenth of the table)
--   pipeline: 10 names round-robin: x, rnaseq, wgs, wes, chipseq, atac,
--             methyl, hic, scrna, variant (so 'x' holds 10 %, and failed x
--             1 % of all jobs)
--   created_at: one second apart, the newest now.
--   psql -v n=1000000 -f seed_reads.sql
BEGIN;
INSERT INTO jobs (id, status, pipeline_name, parameters, priority, attempt,
                  worker_id, error_message, created_at, updated_at,
                  started_at, completed_at)
SELECT gen_random_uuid(), s.status,
       (ARRAY['x','rnaseq','wgs','wes','chipseq','atac','methyl','hic',
              'scrna','variant'])[1 + s.g % 10],
       '{"mock_duration_ms":0,"mock_fail":false}'::jsonb,
       0,
       CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN s.status IN ('pending', 'cancelled') THEN NULL
            ELSE 'seed-worker-' || (s.g % 16) END,
       CASE WHEN s.status = 'failed' THEN 'Error in rule align_reads: seeded'
            END,
       s.t, s.t,
       CASE WHEN s.status IN ('running', 'completed', 'failed') THEN s.t END,
       CASE WHEN s.status IN ('completed', 'failed') THEN s.t END
FROM (SELECT g,
             now() - (:n - g) * interval '1 second' AS t,
             CASE WHEN g % 1000 < 2 THEN 'running'
                  WHEN g % 1000 < 22 THEN 'pending'
                  WHEN g % 1000 < 32 THEN 'cancelled'
                  WHEN g % 1000 < 132 THEN 'failed'
                  ELSE 'completed' END AS status
      FROM generate_series(1, :n) AS g) AS s
ORDER BY s.g;
COMMIT;
VACUUM (ANALYZE) jobs;
CHECKPOINT;
