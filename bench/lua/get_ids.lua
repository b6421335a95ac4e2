-- GET /jobs/{id} for ids drawn at random from the file $BENCH_IDS (one a line).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local ids = {}

function init(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do
    if #line > 0 then
      ids[#ids + 1] = line
    end
  end
  if #ids == 0 then
    error("no ids in " .. os.getenv("BENCH_IDS"))
  end
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  return wrk.format("GET", "/jobs/" .. ids[math.random(#ids)])
end
