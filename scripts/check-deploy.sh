#!/usr/bin/env bash
# CI checks for the deployment files: images, compose, Helm chart, AWS CDK
# app, migrations and operator docs. Runs on a fresh Debian 12 machine as
# root (or with sudo): installs what it needs, then runs every check and
# exits non-zero if any failed.
#
# What it can NOT do here (no Docker engine, no helm binary, no AWS account):
# build or run the images, install the chart, deploy the stack. See
# docs/deploy.md.
#
#   scripts/check-deploy.sh            all checks
#   scripts/check-deploy.sh --no-install   skip installing packages
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
checks="$repo/tools/deploy-checks"

install=1
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    -h | --help)
      sed -n '2,13p' "$0"
      exit 0
      ;;
    *)
      echo "check-deploy: unknown argument $arg" >&2
      exit 2
      ;;
  esac
done

work=$(mktemp -d /tmp/orch-deploy-checks.XXXXXX)
chmod 755 "$work"
pg_data=""
pg_port=""
cleanup() {
  if [[ -n "$pg_data" && -f "$pg_data/postmaster.pid" ]]; then
    as_postgres /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0
failures=()

# run NAME COMMAND...: runs one check, shows its output only on failure.
run() {
  local name=$1
  shift
  local log="$work/log.txt"
  local start=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %-46s %3ds\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL  %-46s %3ds\n' "$name" $((SECONDS - start))
    sed 's/^/      | /' "$log" | tail -n 60
  fi
}

skip() {
  skipped=$((skipped + 1))
  printf 'skip  %-46s (%s)\n' "$1" "$2"
}

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi

as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# --- install --------------------------------------------------------------
install_packages() {
  # docker-compose: Debian's compose v1 (1.29), for `docker-compose config`.
  local pkgs=(docker-compose shellcheck python3 python3-yaml python3-jsonschema
    postgresql-15 postgresql-client-15 ca-certificates)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  if ((${#missing[@]} > 0)); then
    echo "check-deploy: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

if ((install)); then
  if ! install_packages; then
    echo "check-deploy: package installation failed" >&2
    exit 1
  fi
fi

# --- shell scripts ----------------------------------------------------------
shell_scripts() {
  local f
  for f in scripts/* .ci/* docker/*.sh; do
    [[ -f "$f" ]] || continue
    case "$f" in
      *.sh) echo "$f" ;;
      *) head -n1 "$f" | grep -Eq '^#!.*\b(ba|da|k)?sh\b' && echo "$f" ;;
    esac
  done
  return 0
}

check_shellcheck() {
  local files=()
  mapfile -t files < <(shell_scripts)
  ((${#files[@]} > 0)) || {
    echo "no scripts found"
    return 1
  }
  echo "shellcheck ${files[*]}"
  shellcheck -x "${files[@]}"
}

check_dockerfile() {
  local dir="$work/dockerfile-snippets"
  python3 "$checks/dockerfile_check.py" Dockerfile .dockerignore "$dir" || return 1
  # RUN and HEALTHCHECK run under /bin/sh -c in the image.
  shellcheck -s sh "$dir"/*.sh
}

# The entrypoint's fstab handling, on a scratch file instead of /etc/fstab.
check_entrypoint() {
  # A copy in the scratch folder, so that user nobody can read it below.
  local ep="$work/entrypoint.sh" f="$work/fstab" out
  cp docker/entrypoint.sh "$ep" && chmod 755 "$ep" || return 1
  local re='^UUID=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} / ext4 defaults 0 1$'
  printf '# UNCONFIGURED FSTAB FOR BASE SYSTEM\n' >"$f"
  out=$(ORCH_FSTAB="$f" sh "$ep" sh -c 'echo "args:$*"' x a b) || return 1
  [[ "$out" == "args:a b" ]] || {
    echo "exec did not pass arguments: $out"
    return 1
  }
  head -n1 "$f" | grep -Eq "$re" || {
    echo "no root UUID line written:"
    cat "$f"
    return 1
  }
  grep -q UNCONFIGURED "$f" || {
    echo "old content lost"
    return 1
  }
  local before
  before=$(cat "$f")
  ORCH_FSTAB="$f" sh "$ep" true || return 1
  [[ "$(cat "$f")" == "$before" ]] || {
    echo "a second start changed an fstab that already has a root UUID"
    return 1
  }
  ORCH_FSTAB="$f" sh "$ep" sh -c 'exit 7'
  [[ $? -eq 7 ]] || {
    echo "exit status of the binary not passed through"
    return 1
  }
  sh "$ep" --write-fstab "$work/fstab2" || return 1
  grep -Eq "$re" "$work/fstab2" || {
    echo "--write-fstab wrote no UUID line"
    return 1
  }
  [[ "$(cat "$work/fstab2")" != "$(head -n1 "$f")" ]] || {
    echo "UUIDs are not random"
    return 1
  }
  # A read-only fstab without a UUID: warn and still start.
  printf '# nothing\n' >"$work/ro"
  chmod 444 "$work/ro"
  if [[ $(id -u) -eq 0 ]]; then
    out=$(ORCH_FSTAB="$work/ro" runuser -u nobody -- sh "$ep" echo started 2>&1) || return 1
  else
    out=$(ORCH_FSTAB="$work/ro" sh "$ep" echo started 2>&1) || return 1
  fi
  [[ "$out" == *warning* && "$out" == *started* ]] || {
    echo "read-only fstab: expected a warning and a start, got: $out"
    return 1
  }
}

# The runtime package list covers every shared library of the binaries.
check_runtime_libs() {
  python3 "$checks/runtime_libs_check.py" scripts/install-deps.sh \
    build/api-node/api-node build/worker-node/worker-node
}

# --- compose ---------------------------------------------------------------
check_compose() {
  docker-compose -f compose.yaml config -q || return 1
  docker-compose -f compose.yaml --env-file .env.example config -q || return 1
  docker-compose -f compose.yaml --profile replica config -q || return 1
  local services
  services=$(docker-compose -f compose.yaml --profile replica config --services)
  echo "$services"
  python3 "$checks/compose_check.py" compose.yaml .env.example
}

# --- YAML ------------------------------------------------------------------
check_yaml() {
  python3 - <<'EOF'
import pathlib, sys, yaml
skip_dirs = {"node_modules", "cdk.out", ".git", "build"}
n = 0
bad = 0
for p in sorted(pathlib.Path(".").rglob("*")):
    if p.suffix not in (".yaml", ".yml") or not p.is_file():
        continue
    if any(part in skip_dirs or part.startswith("build-") for part in p.parts):
        continue
    text = p.read_text()
    if "{{" in text:
        continue  # a Helm template: checked by helm_check.py
    try:
        list(yaml.safe_load_all(text))
        n += 1
    except yaml.YAMLError as e:
        print(f"{p}: {e}")
        bad += 1
print(f"{n} YAML files parsed")
sys.exit(1 if bad or n == 0 else 0)
EOF
}

check_helm() {
  python3 "$checks/helm_check.py" helm/orch
}

# --- migrations --------------------------------------------------------------
start_postgres() {
  local bin=/usr/lib/postgresql/15/bin
  pg_data="$work/pg"
  mkdir -p "$pg_data"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$work/pg"
  fi
  as_postgres "$bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 \
    --locale=C --no-sync >/dev/null || return 1
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_postgres "$bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 30 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg_data -c fsync=off" \
    start >/dev/null || {
    cat "$pg_data/server.log"
    return 1
  }
}

psql_q() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d orch "$@"
}

check_migrations() {
  start_postgres || return 1
  createdb -h 127.0.0.1 -p "$pg_port" -U postgres orch || return 1
  # As the api-node does: schema_migrations, then each file in its own
  # transaction, in order.
  psql_q -c "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" || return 1
  local f base
  for f in migrations/[0-9][0-9][0-9][0-9]_*.sql; do
    base=$(basename "$f" .sql)
    echo "applying $f"
    psql_q -1 -f "$f" -c "INSERT INTO schema_migrations (version, name) VALUES ('${base%%_*}', '${base#*_}')" || return 1
  done
  # Views only in 0002.
  if grep -Eiv '^\s*(--.*)?$' migrations/0002_operator_views.sql | grep -Eiq '^\s*(CREATE\s+(TABLE|INDEX|UNIQUE|FUNCTION|TRIGGER)|ALTER|DROP|INSERT|UPDATE|DELETE|TRUNCATE|GRANT)\b'; then
    echo "0002 must create views only"
    return 1
  fi
  # Some rows, then every operator view and every query of the guide.
  psql_q <<'EOF' || return 1
INSERT INTO jobs (id, pipeline_name, status, attempt, worker_id, started_at, completed_at, error_message) VALUES
 ('00000000-0000-0000-0000-000000000001', 'align', 'pending', 0, NULL, NULL, NULL, NULL),
 ('00000000-0000-0000-0000-000000000002', 'align', 'running', 1, 'w1', now() - interval '40 minutes', NULL, NULL),
 ('00000000-0000-0000-0000-000000000003', 'call', 'failed', 1, 'w1', now() - interval '5 minutes', now(), 'rule bwa_mem failed');
INSERT INTO job_events (job_id, from_status, to_status, attempt, worker_id, message) VALUES
 ('00000000-0000-0000-0000-000000000003', NULL, 'pending', 0, NULL, 'submitted'),
 ('00000000-0000-0000-0000-000000000003', 'pending', 'running', 1, 'w1', 'started on w1'),
 ('00000000-0000-0000-0000-000000000003', 'running', 'failed', 1, 'w1', 'rule bwa_mem failed');
INSERT INTO workers VALUES ('w1', 'host-a', 4, 'sched-1', 'node-1', now(), now(), NULL);
EOF
  local expect
  expect=(
    "SELECT count(*) FROM ops_queue_depth WHERE status = 'pending' AND pipeline_name = 'align' AND jobs = 1|1"
    "SELECT count(*) FROM ops_stuck_jobs WHERE in_state_for > interval '30 minutes'|1"
    "SELECT sum(failed) FROM ops_throughput_per_minute|1"
    "SELECT jobs FROM ops_failure_reasons_7d WHERE error_message = 'rule bwa_mem failed'|1"
    "SELECT count(*) FROM ops_job_history WHERE job_id = '00000000-0000-0000-0000-000000000003'|3"
    "SELECT running || '/' || free_slots FROM ops_workers WHERE id = 'w1'|1/3"
    "SELECT count(*) FROM schema_migrations|$(find migrations -name '[0-9][0-9][0-9][0-9]_*.sql' | wc -l)"
  )
  local e q want got
  for e in "${expect[@]}"; do
    q=${e%|*}
    want=${e##*|}
    got=$(psql_q -tA -c "$q") || return 1
    if [[ "$got" != "$want" ]]; then
      echo "$q: expected $want, got $got"
      return 1
    fi
  done
  # Every SQL block of the operator guide runs (with :'job_id' and :minutes set).
  python3 - docs/operations.md "$work/guide" <<'EOF' || return 1
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
out = pathlib.Path(sys.argv[2]); out.mkdir()
blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
for i, b in enumerate(blocks):
    (out / f"{i:02d}.sql").write_text(b)
print(f"{len(blocks)} SQL blocks in docs/operations.md")
sys.exit(0 if len(blocks) >= 5 else 1)
EOF
  for f in "$work"/guide/*.sql; do
    psql_q -v job_id=00000000-0000-0000-0000-000000000003 -v minutes=30 -f "$f" >/dev/null || {
      echo "guide query $f failed:"
      cat "$f"
      return 1
    }
  done
  # Every table and column is documented in the operator guide.
  local rows bad=0 t c
  rows=$(psql_q -tA -F' ' -c "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE') ORDER BY 1, ordinal_position") || return 1
  while read -r t c; do
    grep -q "^## .*\`$t\`\|^### .*\`$t\`" docs/operations.md || {
      echo "docs/operations.md has no heading for table $t"
      bad=1
    }
    grep -q "^| \`$c\` |" docs/operations.md || {
      echo "docs/operations.md does not document column $t.$c"
      bad=1
    }
  done <<<"$rows"
  return $bad
}

# --- AWS CDK -------------------------------------------------------------------
check_cdk() {
  (
    cd infra/aws || exit 1
    export CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true
    npm ci --no-audit --no-fund --loglevel=error || exit 1
    npx --no-install tsc --noEmit || exit 1
    rm -rf cdk.out
    npx --no-install cdk synth --no-notices --no-version-reporting --quiet || exit 1
    test -s cdk.out/Orch.template.json || {
      echo "no template synthesized"
      exit 1
    }
    if grep -q '"missing"' cdk.out/manifest.json; then
      echo "synth needed context lookups"
      exit 1
    fi
    npm test
  )
}

# --- OpenAPI -------------------------------------------------------------------
# Redocly CLI, pinned in tools/openapi-lint, lints the api-node's OpenAPI
# document with its recommended rules (exceptions, with reasons, in
# tools/openapi-lint/redocly.yaml). Warnings fail the check too.
check_openapi() {
  (
    cd tools/openapi-lint || exit 1
    export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error || exit 1
    local out
    out=$(npx --no-install redocly lint --config redocly.yaml \
      --format=stylish ../../api-node/share/openapi.json 2>&1)
    local rc=$?
    echo "$out"
    ((rc == 0)) || exit 1
    if grep -Eq '^ +[0-9]+:[0-9]+ +warning' <<<"$out"; then
      echo "openapi.json: the linter warned"
      exit 1
    fi
  )
}

check_docs() {
  local f
  for f in docs/deploy.md docs/operations.md infra/aws/README.md; do
    [[ -s "$f" ]] || {
      echo "missing $f"
      return 1
    }
  done
  grep -q 'stateDiagram' docs/operations.md || {
    echo "docs/operations.md: no state diagram"
    return 1
  }
  grep -qi 'not run here\|not validated\|never run' docs/deploy.md || {
    echo "docs/deploy.md must say what was not run here"
    return 1
  }
}

# --- run ---------------------------------------------------------------------
run "shellcheck: scripts/ .ci/ docker/" check_shellcheck
run "Dockerfile: structure + RUN snippets" check_dockerfile
run "entrypoint: per-container CAF root UUID" check_entrypoint
if [[ -x build/api-node/api-node && -x build/worker-node/worker-node ]]; then
  run "runtime packages cover the binaries' libraries" check_runtime_libs
else
  skip "runtime packages cover the binaries' libraries" "binaries not built"
fi
run "compose: docker-compose config + structure" check_compose
run "YAML: every non-template file parses" check_yaml
run "helm: values vs schema, template lint" check_helm
run "migrations: apply on PostgreSQL 15, views, guide" check_migrations
if command -v npm >/dev/null && command -v node >/dev/null &&
  (($(node -p 'process.versions.node.split(".")[0]') >= 20)); then
  run "aws: npm ci, tsc, cdk synth, assertion tests" check_cdk
else
  failed=$((failed + 1))
  failures+=("aws cdk")
  echo "FAIL  aws: node >= 20 and npm are required (found: $(node --version 2>/dev/null || echo none))"
fi
if command -v npm >/dev/null && command -v node >/dev/null; then
  run "openapi: redocly lint api-node/share/openapi.json" check_openapi
else
  failed=$((failed + 1))
  failures+=("openapi lint")
  echo "FAIL  openapi: node and npm are required for the OpenAPI lint"
fi
run "docs: deploy.md, operations.md" check_docs

if ((failed > 0)); then
  echo "failed: ${failures[*]}"
fi
echo "deploy-checks: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
