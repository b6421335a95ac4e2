-- GET /jobs?status=S&pipeline_name=P&limit=100 for one of the 50 pages
-- (5 statuses x the 10 pipelines of bench/sql/seed_reads.sql), drawn at
-- random per request: the list measure without equal pages to share.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local pipelines = {"x", "rnaseq", "wgs", "wes", "chipseq", "atac", "methyl",
                   "hic", "scrna", "variant"}
local statuses = {"completed", "failed", "pending", "cancelled", "running"}

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  return wrk.format("GET", "/jobs?status=" .. statuses[math.random(#statuses)]
                    .. "&pipeline_name=" .. pipelines[math.random(#pipelines)]
                    .. "&limit=100")
end
