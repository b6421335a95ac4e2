#!/usr/bin/env bash
# Runs the whole system locally: a throwaway PostgreSQL under .local/pg, one
# api-node on 127.0.0.1:8080 and two worker-nodes. Ctrl-C stops everything.
#
# Settings: HTTP_PORT (8080), SCHEDULER_PORT (4242), PG_PORT (55432),
# WORKER_SLOTS (2), MOCK_MIN_SECONDS (10), MOCK_MAX_SECONDS (30), LOG_LEVEL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh

http_port=${HTTP_PORT:-8080}
sched_port=${SCHEDULER_PORT:-4242}
pg_port=${PG_PORT:-55432}
mkdir -p .local/logs
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  "$root/scripts/pg.sh" stop "$root/.local/pg"
  echo "stopped."
}
trap cleanup INT TERM EXIT

url=$(scripts/pg.sh start .local/pg "$pg_port")
echo "PostgreSQL: $url (logs in .local/pg/postgres.log)"

DATABASE_URL=$url HTTP_HOST=127.0.0.1 HTTP_PORT=$http_port \
  SCHEDULER_HOST=127.0.0.1 SCHEDULER_PORT=$sched_port \
  build/api-node/api-node >.local/logs/api-node.log 2>&1 &
pids+=($!)
for i in 1 2; do
  SCHEDULER_HOST=127.0.0.1 SCHEDULER_PORT=$sched_port WORKER_ID=worker-$i \
    WORKER_SLOTS=${WORKER_SLOTS:-2} \
    build/worker-node/worker-node >".local/logs/worker-$i.log" 2>&1 &
  pids+=($!)
done

for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:$http_port/ready" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
curl -fs "http://127.0.0.1:$http_port/ready" >/dev/null || {
  echo "api-node did not become ready; see .local/logs" >&2
  exit 1
}
cat <<EOT

orch is running: API on http://127.0.0.1:$http_port; logs in .local/logs/.
Try:
  curl -s -X POST http://127.0.0.1:$http_port/jobs -H 'Content-Type: application/json' \\
       -d '{"pipeline_name":"rnaseq","parameters":{"mock_duration_ms":2000}}'
  curl -s 'http://127.0.0.1:$http_port/jobs?status=running'
  curl -s http://127.0.0.1:$http_port/workers
Press Ctrl-C to stop everything.
EOT
wait "${pids[0]}"
