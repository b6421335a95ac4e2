#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster in a project-local folder.
#
#   scripts/pg.sh start [DIR] [PORT]   initdb if needed, start, create db "orch"
#   scripts/pg.sh stop  [DIR]          stop the cluster
#   scripts/pg.sh url   [DIR]          print the libpq URI of a running cluster
#
# DIR defaults to .local/pg, PORT to 55432. PostgreSQL refuses to run as
# root, so as root the cluster runs as the unprivileged "postgres" user.
# Durability settings are PostgreSQL's defaults.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
cmd=${1:-}
dir=${2:-.local/pg}
port=${3:-55432}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir" \
        start >/dev/null
    fi
    echo "$port" >"$dir/port"
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = 'orch'" postgres | grep -q 1 \
      || as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres orch
    echo "postgresql://postgres@127.0.0.1:$port/orch"
    ;;
  stop)
    if [[ -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/orch"
    ;;
  *)
    echo "usage: $0 start|stop|url [DIR] [PORT]" >&2
    exit 2
    ;;
esac
