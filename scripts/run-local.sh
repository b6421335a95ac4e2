#!/usr/bin/env bash
# Runs the whole system locally: installs missing Debian packages, builds
# into build/, starts a throwaway PostgreSQL under .local/pg, one api-node on
# 127.0.0.1:8080 and two worker-nodes (worker-1, worker-2). Ctrl-C stops
# everything it started; the database stays in .local/pg for the next run.
#
#   scripts/run-local.sh [--no-build]
#
# Settings (environment): HTTP_PORT (8080), SCHEDULER_PORT (4242),
# PG_PORT (55432 or the next free port), WORKER_SLOTS (2),
# MOCK_MIN_SECONDS (10), MOCK_MAX_SECONDS (30), MOCK_SUCCESS_RATE (0.8),
# PIPELINES_FILE (examples/pipelines.yaml: scatter-gather, primes, mock;
# set it empty to run every pipeline name on the mock), WORK_ROOT
# (.local/work), LOG_LEVEL (info), LOG_FORMAT (text). Logs go to
# .local/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ "${1:-}" != "--no-build" ]]; then
  scripts/install-deps.sh --build
  scripts/build.sh
fi
api_bin=$root/build/api-node/api-node
worker_bin=$root/build/worker-node/worker-node
[[ -x "$api_bin" && -x "$worker_bin" ]] || {
  echo "run-local: binaries missing in build/; run without --no-build" >&2
  exit 1
}

http_port=${HTTP_PORT:-8080}
sched_port=${SCHEDULER_PORT:-4242}
export LOG_LEVEL=${LOG_LEVEL:-info} LOG_FORMAT=${LOG_FORMAT:-text}

port_busy() {
  (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$http_port" "$sched_port"; do
  if port_busy "$p"; then
    echo "run-local: port $p is in use; set HTTP_PORT / SCHEDULER_PORT" >&2
    exit 1
  fi
done

mkdir -p .local/logs
pids=()
names=()
pg_started=0
# shellcheck disable=SC2317  # invoked through the trap below
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  echo
  echo "run-local: stopping..."
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Up to 10 s for a clean shutdown, then SIGKILL.
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((pg_started)); then
    "$root/scripts/pg.sh" stop "$root/.local/pg" || true
  fi
  echo "run-local: stopped."
  exit "$rc"
}
trap cleanup INT TERM EXIT

# Each process in its own session: Ctrl-C reaches only this script, which
# then stops them (SIGTERM, then SIGKILL after 10 s).
start() {
  local name=$1
  shift
  setsid "$@" >"$root/.local/logs/$name.log" 2>&1 </dev/null &
  pids+=($!)
  names+=("$name")
}

pg_started=1
url=$(scripts/pg.sh start .local/pg "${PG_PORT:-}")
echo "PostgreSQL: $url (data and log in .local/pg)"

pipelines=${PIPELINES_FILE-$root/examples/pipelines.yaml}
work_root=${WORK_ROOT:-$root/.local/work}
mkdir -p "$work_root"
start api-node env DATABASE_URL="$url" HTTP_HOST=127.0.0.1 \
  HTTP_PORT="$http_port" SCHEDULER_HOST=127.0.0.1 \
  SCHEDULER_PORT="$sched_port" PIPELINES_FILE="$pipelines" \
  WORK_ROOT="$work_root" "$api_bin"
for i in 1 2; do
  start "worker-$i" env SCHEDULER_HOST=127.0.0.1 SCHEDULER_PORT="$sched_port" \
    WORKER_ID="worker-$i" WORKER_SLOTS="${WORKER_SLOTS:-2}" \
    METRICS_HOST=127.0.0.1 METRICS_PORT=0 \
    WORK_ROOT="$work_root" "$worker_bin"
done

api=http://127.0.0.1:$http_port
ready=0
for _ in $(seq 1 600); do
  if curl -fs "$api/ready" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
if ((!ready)); then
  echo "run-local: the api-node did not become ready; last lines of its log:" >&2
  tail -n 30 .local/logs/api-node.log >&2
  exit 1
fi
for _ in $(seq 1 100); do
  [[ $(curl -fs "$api/workers" | grep -o '"id"' | wc -l) -ge 2 ]] && break
  sleep 0.1
done

cat <<EOT

orch is running.
  API:        $api  (GET /ready answers 200)
  dashboard:  $api/ui   API docs: $api/docs
  scheduler:  127.0.0.1:$sched_port (CAF), workers worker-1 and worker-2
  database:   $url
              scripts/pg.sh psql   opens psql on it
  logs:       .local/logs/{api-node,worker-1,worker-2}.log

Try:
  curl -s $api/pipelines
  curl -s -X POST $api/jobs -H 'Content-Type: application/json' \\
       -d '{"pipeline_name":"scatter-gather","parameters":{"batch_count":5}}'
  curl -s $api/jobs/<id>             (progress, status)
  curl -s $api/jobs/<id>/logs
  curl -s $api/jobs/<id>/outputs
  curl -s $api/jobs/<id>/outputs/report.json
  curl -s -X POST $api/jobs -H 'Content-Type: application/json' \\
       -d '{"pipeline_name":"mock","parameters":{"mock_duration_ms":2000}}'
  curl -s '$api/jobs?status=running'
  curl -s $api/workers

Press Ctrl-C to stop everything.
EOT

# Until Ctrl-C, or until one of the processes exits on its own.
set +e
wait -n "${pids[@]}"
rc=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "run-local: ${names[$i]} exited ($rc); see .local/logs/${names[$i]}.log" >&2
  fi
done
exit 1
