-- POST /jobs with a no-op mock job, as fast as the connections allow.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = "POST"
wrk.path = "/jobs"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
  or '{"pipeline_name":"bench","parameters":{"mock_duration_ms":0,"mock_fail":false}}'
