#!/usr/bin/env bash
# Renders drain throughput against the number of worker processes from a
# bench results file, as a PNG, with gnuplot.
#   bench/plot.sh [RESULTS_JSON] [OUT_PNG]
# Defaults: bench/results/latest.json -> bench/results/latest-drain.png
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
in=${1:-$here/results/latest.json}
out=${2:-$here/results/latest-drain.png}
command -v gnuplot >/dev/null || {
  echo "plot.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2
  exit 1
}
data=$(mktemp)
trap 'rm -f "$data"' EXIT
title=$(python3 - "$in" "$data" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
drain = doc.get("drain", {})
rows = sorted((v["workers"]["value"], v["throughput"]["value"])
              for v in drain.values()
              if isinstance(v, dict) and "throughput" in v
              and v["throughput"]["value"] is not None)
if not rows:
    sys.exit("plot.sh: no drain figures in " + sys.argv[1])
with open(sys.argv[2], "w") as f:
    for w, t in rows:
        f.write(f"{w} {t}\n")
m = doc.get("machine", {})
jobs = doc.get("config", {}).get("drain_jobs", {}).get("value", "?")
print(f"orch drain of {jobs:,} no-op jobs ({doc.get('mode')}, "
      f"{doc.get('timestamp')}), {m.get('cores', {}).get('value')} cores "
      f"{m.get('cpu_model', '')}")
PY
)
gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced font "sans,10"
set output "$out"
set title "$title"
set xlabel "worker-node processes"
set ylabel "jobs/s (first start to last completion)"
set xtics (1, 2, 4)
set xrange [0.5:4.5]
set yrange [0:*]
# Headroom above the tallest bar, for its label.
set offsets 0, 0, graph 0.1, 0
set grid ytics
set key off
set style fill solid 0.6
set boxwidth 0.5
plot "$data" using 1:2 with boxes lc rgb "#3465a4", \
     "$data" using 1:2:(sprintf("%.0f", \$2)) with labels offset 0,1
GP
echo "$out"
