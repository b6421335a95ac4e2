-- bench/reads-floor: the same 101 rows fetched from the heap, returning only their ids
SELECT id FROM jobs WHERE status = 'running' ORDER BY seq DESC LIMIT 101;
