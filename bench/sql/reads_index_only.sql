-- bench/reads-floor: the same page's keys from the index alone (index-only scan, no heap)
SELECT seq FROM jobs WHERE status = 'running' ORDER BY seq DESC LIMIT 101;
