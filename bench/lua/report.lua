-- Shared by the bench/lua scripts: done() prints one machine-readable line,
--   BENCH_JSON {...}
-- with the request count, duration, errors and the latency distribution
-- (microseconds) that wrk measured. bench/lib/benchlib.py parses it.

function done(summary, latency, requests)
  local e = summary.errors
  local out = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"errors_connect":%d', e.connect),
    string.format('"errors_read":%d', e.read),
    string.format('"errors_write":%d', e.write),
    string.format('"errors_timeout":%d', e.timeout),
    string.format('"errors_status":%d', e.status),
    string.format('"latency_min_us":%d', latency.min),
    string.format('"latency_max_us":%d', latency.max),
    string.format('"latency_mean_us":%.1f', latency.mean),
    string.format('"latency_stdev_us":%.1f', latency.stdev),
  }
  for _, p in ipairs({50, 90, 99, 99.9}) do
    out[#out + 1] = string.format('"latency_p%s_us":%d',
      (tostring(p):gsub("%.", "_")), latency:percentile(p))
  end
  io.write("BENCH_JSON {" .. table.concat(out, ",") .. "}\n")
end
