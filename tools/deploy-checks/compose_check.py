#!/usr/bin/env python3
"""Structural checks of compose.yaml and .env.example (docker-compose config -q
runs separately and validates the schema).

- every ${VAR} that compose.yaml reads is documented in .env.example;
- db is postgres:15 with a named volume and a healthcheck;
- api-node waits for a healthy db, publishes 8080, checks /ready, and gives
  a stop grace period;
- worker-node builds a worker target (worker-node or
  worker-node-snakemake), reaches the scheduler by service name and has no
  container_name or published port, so `--scale worker-node=N` works;
- api-node and worker-node mount the same named volume at the same path
  and set WORK_ROOT to it (outputs are served from what workers wrote);
- a second api-node replica is defined (profile).

Usage: compose_check.py COMPOSE_FILE ENV_EXAMPLE
"""
import re
import sys

import yaml

errors = []


def err(msg):
    errors.append(msg)


def main(compose_path, env_path):
    text = open(compose_path).read()
    doc = yaml.safe_load(text)
    env_text = open(env_path).read()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", env_text, re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}", text))
    for var in sorted(used - documented):
        err(f".env.example does not document {var}")

    services = doc.get("services", {})
    for name in ["db", "api-node", "worker-node"]:
        if name not in services:
            err(f"no service {name}")
    if errors:
        return report()
    db, api, worker = services["db"], services["api-node"], services["worker-node"]

    if db.get("image") != "postgres:15":
        err("db must use postgres:15")
    if "healthcheck" not in db:
        err("db has no healthcheck")
    volumes = doc.get("volumes") or {}
    if not any(str(v).split(":")[0] in volumes for v in db.get("volumes", [])):
        err("db has no named volume")

    if (api.get("depends_on") or {}).get("db", {}).get("condition") != "service_healthy":
        err("api-node must depend on a healthy db")
    if not any(str(p).endswith(":8080") for p in api.get("ports", [])):
        err("api-node must publish 8080")
    if "/ready" not in " ".join(map(str, api.get("healthcheck", {}).get("test", []))):
        err("api-node healthcheck must call /ready")
    if api.get("build", {}).get("target") != "api-node":
        err("api-node must build the api-node target")
    if "stop_grace_period" not in api:
        err("api-node needs a stop_grace_period longer than DRAIN_SECONDS")
    api_env = api.get("environment", {})
    for k, v in {"HTTP_HOST": "0.0.0.0", "SCHEDULER_HOST": "0.0.0.0"}.items():
        if str(api_env.get(k)) != v:
            err(f"api-node must set {k}={v}")
    if "@db:" not in str(api_env.get("DATABASE_URL", "")):
        err("api-node DATABASE_URL must point at the db service")

    if worker.get("build", {}).get("target") not in ("worker-node", "worker-node-snakemake"):
        err("worker-node must build the worker-node or worker-node-snakemake target")
    if worker.get("environment", {}).get("SCHEDULER_HOST") != "api-node":
        err("worker-node must reach the scheduler by service name api-node")
    for key in ["container_name", "ports", "hostname"]:
        if key in worker:
            err(f"worker-node must not set {key} (breaks --scale)")
    if "WORKER_ID" in worker.get("environment", {}):
        err("worker-node must not fix WORKER_ID (replicas would collide)")

    def named_mounts(service):
        out = {}
        for v in service.get("volumes", []) or []:
            parts = str(v).split(":")
            if len(parts) >= 2 and parts[0] in volumes:
                out[parts[1]] = parts[0]
        return out
    for name, svc in (("api-node", api), ("worker-node", worker)):
        root = str(svc.get("environment", {}).get("WORK_ROOT", ""))
        if not root or root.startswith("$"):
            err(f"{name} must set WORK_ROOT to the path of the shared work volume")
        elif root not in named_mounts(svc):
            err(f"{name}: WORK_ROOT {root} is not a named volume mount")
    api_root = str(api.get("environment", {}).get("WORK_ROOT", ""))
    if named_mounts(api).get(api_root) != named_mounts(worker).get(api_root):
        err("api-node and worker-node must mount the same named volume at WORK_ROOT")

    replicas = [n for n, s in services.items()
                if n != "api-node" and s.get("build", {}).get("target") == "api-node"]
    if not replicas:
        err("no second api-node replica service")
    for n in replicas:
        if not services[n].get("profiles"):
            err(f"{n} should sit behind a profile")
    return report()


def report():
    for e in errors:
        print(f"compose: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*(sys.argv[1:3] if len(sys.argv) > 2 else ["compose.yaml", ".env.example"])))
