-- GET $BENCH_PATH (path and query) repeatedly.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")
