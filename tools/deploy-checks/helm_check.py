#!/usr/bin/env python3
"""Checks of the Helm chart that run without helm (none is installed on CI).

- Chart.yaml, values.yaml and ci/*.yaml parse as YAML;
- values.yaml, and values.yaml merged with each ci/*.yaml, validate against
  values.schema.json; a few broken value sets must NOT validate;
- templates: balanced {{ }}, balanced if/range/with/define ... end blocks,
  every .Values path exists in values.yaml, every include names a define;
- required files (NOTES.txt, schema, the templates the chart promises).

Usage: helm_check.py CHART_DIR
"""
import copy
import json
import pathlib
import re
import sys

import jsonschema
import yaml

errors = []


def err(msg):
    errors.append(msg)


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_path(d, path, value):
    d = copy.deepcopy(d)
    cur = d
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[k]
    cur[keys[-1]] = value
    return d


def main(chart):
    chart = pathlib.Path(chart)
    for required in ["Chart.yaml", "values.yaml", "values.schema.json",
                     "templates/NOTES.txt", "templates/_helpers.tpl",
                     "templates/api-deployment.yaml", "templates/api-service.yaml",
                     "templates/worker-deployment.yaml", "templates/worker-hpa.yaml",
                     "templates/migrations-job.yaml", "templates/secret.yaml",
                     "templates/configmap.yaml", "templates/api-pdb.yaml",
                     "templates/worker-pdb.yaml", "templates/networkpolicy.yaml",
                     "templates/postgresql.yaml"]:
        if not (chart / required).is_file():
            err(f"missing {required}")

    chart_meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    for key in ["apiVersion", "name", "version", "appVersion"]:
        if key not in chart_meta:
            err(f"Chart.yaml lacks {key}")
    if chart_meta.get("apiVersion") != "v2":
        err("Chart.yaml apiVersion must be v2")

    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    def check_valid(name, vals):
        for e in validator.iter_errors(vals):
            err(f"{name}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}")

    check_valid("values.yaml", values)
    ci_files = sorted((chart / "ci").glob("*.yaml"))
    if not ci_files:
        err("no ci/*.yaml value sets")
    for f in ci_files:
        check_valid(f"values.yaml + {f.name}", merge(values, yaml.safe_load(f.read_text()) or {}))

    # Value sets the schema must refuse.
    broken = {
        "root pods": set_path(values, "podSecurityContext.runAsNonRoot", False),
        "privilege escalation": set_path(values, "securityContext.allowPrivilegeEscalation", True),
        "unknown top-level key": merge(values, {"replicaCount": 3}),
        "typo in worker": merge(values, {"worker": {"replica": 3}}),
        "port out of range": set_path(values, "api.httpPort", 70000),
        "bad log level": set_path(values, "config.logLevel", "verbose"),
        "zero grace beyond drain": set_path(values, "config.terminationGraceExtraSeconds", 0),
        "non-URL database": set_path(values, "database.url", "host=db user=orch"),
        "URL-unsafe password": set_path(values, "postgresql.auth.password", "p@ss word"),
        "zero slots": set_path(values, "worker.slots", 0),
        "unknown executor in the catalog": merge(values, {"pipelines": [{"name": "x", "executor": "bash"}]}),
        "work volume that cannot be shared": set_path(values, "work.persistence.accessModes", ["ReadWriteOncePod"]),
    }
    for name, vals in broken.items():
        if validator.is_valid(vals):
            err(f"schema accepts a broken value set: {name}")

    # Templates.
    defines = set()
    includes = []
    value_refs = []
    for t in sorted((chart / "templates").iterdir()):
        text = t.read_text()
        if text.count("{{") != text.count("}}"):
            err(f"{t.name}: unbalanced {{{{ }}}}")
        actions = re.findall(r"{{-?\s*(.*?)\s*-?}}", text, re.S)
        depth = 0
        for a in actions:
            if a.startswith("/*"):
                continue
            word = a.split()[0] if a.split() else ""
            if word in ("if", "range", "with", "define", "block"):
                depth += 1
            elif word == "end":
                depth -= 1
                if depth < 0:
                    err(f"{t.name}: 'end' without an open block")
                    depth = 0
            elif word in ("else",) and depth == 0:
                err(f"{t.name}: 'else' outside a block")
            m = re.match(r'define\s+"([^"]+)"', a)
            if m:
                defines.add(m.group(1))
            includes += [(t.name, n) for n in re.findall(r'include\s+"([^"]+)"', a)]
            value_refs += [(t.name, p) for p in re.findall(r"\$?\.Values((?:\.[A-Za-z0-9_]+)+)", a)]
        if depth != 0:
            err(f"{t.name}: {depth} block(s) not closed with end")
        if t.suffix == ".yaml" and "{{" not in text:
            try:
                list(yaml.safe_load_all(text))
            except yaml.YAMLError as e:
                err(f"{t.name}: {e}")
    for name, inc in includes:
        if inc not in defines:
            err(f"{name}: include of undefined template {inc!r}")
    for name, path in value_refs:
        cur = values
        for k in path.strip(".").split("."):
            if not isinstance(cur, dict) or k not in cur:
                err(f"{name}: .Values{path} is not in values.yaml")
                break
            cur = cur[k]

    text = (chart / "templates/migrations-job.yaml").read_text()
    if "pre-install,pre-upgrade" not in text or "--migrate-only" not in text:
        err("migrations-job.yaml: expected a pre-install,pre-upgrade hook running --migrate-only")
    for t in ["api-deployment.yaml", "worker-deployment.yaml"]:
        text = (chart / "templates" / t).read_text()
        if "terminationGracePeriodSeconds: {{ add .Values.config.drainSeconds" not in text:
            err(f"{t}: terminationGracePeriodSeconds must be drainSeconds + extra")
        if "orch.nodeIdInitContainer" not in text or "orch.nodeIdMount" not in text:
            err(f"{t}: missing the per-pod CAF node id (fstab) setup")
    api = (chart / "templates/api-deployment.yaml").read_text()
    for probe, path in [("livenessProbe", "/health"), ("readinessProbe", "/ready")]:
        if not re.search(probe + r":\s*\n\s*httpGet:\s*\n\s*path: " + re.escape(path), api):
            err(f"api-deployment.yaml: {probe} must GET {path}")

    for e in errors:
        print(f"helm: {e}", file=sys.stderr)
    print(f"helm: {len(ci_files) + 1} value sets valid, {len(broken)} broken sets refused, "
          f"{len(value_refs)} .Values references, {len(includes)} includes checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "helm/orch"))
