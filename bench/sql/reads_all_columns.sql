-- bench/reads-floor: the cheapest statement that returns every column of the same page: no conversions, no subplans, no total
SELECT * FROM jobs WHERE status = 'running' ORDER BY seq DESC LIMIT 101;
