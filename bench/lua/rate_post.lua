-- POST /jobs at a fixed aggregate rate of $BENCH_RATE requests per second
-- (open loop, like wrk2): each wrk thread owns rate/threads of it and hands
-- every request the next slot of its own schedule. delay() waits until that
-- slot, so a slow response does not slow the schedule as long as a
-- connection is free; with too few connections the rate falls short, which
-- the harness reports (achieved rate).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.path = "/jobs"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"pipeline_name":"' .. (os.getenv("BENCH_PIPELINE") or "bench")
  .. '","parameters":{"mock_duration_ms":0,"mock_fail":false}}'

local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local interval_ms = 1000 / (tonumber(os.getenv("BENCH_RATE")) / threads)
local next_slot = nil

function delay()
  local now = now_ms()
  if next_slot == nil then
    next_slot = now
  end
  next_slot = next_slot + interval_ms
  local wait = next_slot - now
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end
