#!/bin/sh
# orch container entrypoint.
#
#   orch-entrypoint BINARY [ARGS...]    give the container a unique CAF node
#                                       identity, then exec BINARY (it becomes
#                                       PID 1 and receives SIGTERM itself)
#   orch-entrypoint --write-fstab FILE  write a fresh root-UUID fstab to FILE
#                                       and exit (Kubernetes init container)
#
# Why: CAF 0.17 derives a node id from the MAC addresses, the root UUID in
# /etc/fstab and the pid. Containers run their binary as pid 1 and images
# carry no root UUID, so two containers with the same (or no) MAC addresses
# get the same node id; BASP then treats them as one node and a lost worker
# is never noticed. A random UUID per container start makes ids unique.
# CAF reads the first six-column line of /etc/fstab whose second column is
# "/", and accepts its first column when it is (UUID=)8-4-4-4-12 hex digits.
set -eu

fstab=${ORCH_FSTAB:-/etc/fstab}  # overridable for tests only

new_uuid() {
  if [ -r /proc/sys/kernel/random/uuid ]; then
    cat /proc/sys/kernel/random/uuid
  else
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
      sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\)$/\1-\2-\3-\4-\5/'
  fi
}

fstab_line() {
  printf 'UUID=%s / ext4 defaults 0 1\n' "$(new_uuid)"
}

# Succeeds when FILE already carries a root UUID that CAF would accept.
has_root_uuid() {
  [ -r "$1" ] || return 1
  awk '
    NF == 6 && $2 == "/" {
      id = $1; sub(/^UUID=/, "", id)
      # Spelled out: mawk, the awk of Debian, has no {n} intervals.
      h4 = "[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]"
      re = "^" h4 h4 "-" h4 "-" h4 "-" h4 "-" h4 h4 h4 "$"
      found = (id ~ re); exit
    }
    END { exit !found }' "$1"
}

if [ "${1:-}" = "--write-fstab" ]; then
  target=${2:?usage: orch-entrypoint --write-fstab FILE}
  fstab_line >"$target"
  exit 0
fi

if [ "$#" -eq 0 ]; then
  echo "usage: orch-entrypoint BINARY [ARGS...]" >&2
  exit 2
fi

if ! has_root_uuid "$fstab"; then
  if [ -w "$fstab" ]; then
    old=$(cat "$fstab" 2>/dev/null || true)
    { fstab_line; [ -z "$old" ] || printf '%s\n' "$old"; } >"$fstab"
  else
    echo "orch-entrypoint: warning: $fstab has no root UUID and is not" \
      "writable; CAF node ids of containers that share MAC addresses may" \
      "collide. Mount a per-container fstab (the Helm chart does)." >&2
  fi
fi

exec "$@"
