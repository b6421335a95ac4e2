#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster in a project-local folder, for running
# orch locally (the tests start their own clusters).
#
#   scripts/pg.sh start  [DIR] [PORT]  initdb if needed, start, create database
#                                      "orch"; prints its libpq URI
#   scripts/pg.sh stop   [DIR]         stop the cluster (data is kept)
#   scripts/pg.sh url    [DIR]         print the URI of the cluster
#   scripts/pg.sh status [DIR]         exit 0 if it runs
#   scripts/pg.sh psql   [DIR] [ARGS]  psql on database "orch"
#
# DIR defaults to .local/pg in the repository. PORT defaults to the port the
# cluster used last, else 55432, else the next free port above it.
# PostgreSQL refuses to run as root: as root, the cluster runs as the
# unprivileged "postgres" user and DIR is chowned to it. Durability settings
# are PostgreSQL's defaults. Remove DIR to start from scratch.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=$root/.local/pg
nargs=1
if [[ $# -ge 2 && "$2" != -* ]]; then
  dir=$2
  nargs=2
fi
want_port=${3:-}
# Resolve symlinks (see prepare_dir): the postgres user may not reach them.
if [[ -e "$dir" ]]; then
  dir=$(readlink -f "$dir")
fi

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

is_root() {
  [[ $(id -u) -eq 0 ]]
}

as_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Whether something accepts connections on 127.0.0.1:$1.
port_busy() {
  (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
  [[ -f "$dir/data/PG_VERSION" ]] \
    && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

url() {
  [[ -f "$dir/port" ]] || die "no cluster in $dir (run: $0 start)"
  echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/orch"
}

# As root, the postgres user must reach DIR. A repository under a private
# home (e.g. /root) is not reachable: then keep the data under /var/tmp and
# leave a symlink at DIR.
prepare_dir() {
  mkdir -p "$(dirname "$dir")"
  if ! is_root; then
    mkdir -p "$dir"
    return
  fi
  id postgres >/dev/null 2>&1 || die "no postgres user: run scripts/install-deps.sh"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  chown postgres: "$dir"
  if ! runuser -u postgres -- test -w "$dir"; then
    local hash
    hash=$(printf '%s' "$dir" | md5sum | cut -c1-12)
    local alt=/var/tmp/orch-pg-$hash
    echo "pg.sh: user postgres cannot reach $dir; keeping the cluster in $alt" >&2
    rmdir "$dir" 2>/dev/null || die "$dir is not reachable by user postgres and not empty"
    mkdir -p "$alt"
    chown postgres: "$alt"
    ln -s "$alt" "$dir"
    dir=$alt
  fi
}

case "$cmd" in
  start)
    prepare_dir
    dir=$(cd "$dir" && pwd -P)
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 \
        || die "initdb failed, see $dir/initdb.log"
    fi
    if ! running; then
      port=$want_port
      if [[ -z "$port" ]]; then
        for candidate in "$(cat "$dir/port" 2>/dev/null || true)" \
          $(seq 55432 55532); do
          if [[ -n "$candidate" ]] && ! port_busy "$candidate"; then
            port=$candidate
            break
          fi
        done
        [[ -n "$port" ]] || die "no free port in 55432..55532"
      elif port_busy "$port"; then
        die "port $port is in use"
      fi
      touch "$dir/postgres.log"
      is_root && chown postgres: "$dir/postgres.log"
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir" \
        start >/dev/null \
        || die "PostgreSQL did not start, see $dir/postgres.log"
      echo "$port" >"$dir/port"
    elif [[ -n "$want_port" && "$want_port" != "$(cat "$dir/port")" ]]; then
      echo "pg.sh: already running on port $(cat "$dir/port")" >&2
    fi
    port=$(cat "$dir/port")
    if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -XAtqc \
      "SELECT 1 FROM pg_database WHERE datname = 'orch'" postgres | grep -q 1; then
      "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres orch
    fi
    url
    ;;
  stop)
    if running; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  url)
    url
    ;;
  status)
    running
    ;;
  psql)
    shift "$nargs"
    exec "$bin/psql" "$(url)" "$@"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
