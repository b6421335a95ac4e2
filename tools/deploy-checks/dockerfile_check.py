#!/usr/bin/env python3
"""Structural checks of the Dockerfile, and extraction of its shell snippets
for shellcheck (no Docker engine on CI, so nothing is built).

- targets api-node and worker-node exist; the build stage is debian:bookworm
  and installs with scripts/install-deps.sh; the runtime stage is
  debian:bookworm-slim and runs `scripts/install-deps.sh --runtime`;
- both targets run as a non-root USER, ENTRYPOINT in exec form;
- api-node exposes 8080 and 4242 and has a HEALTHCHECK;
- every COPY source exists and is not excluded by .dockerignore.

Usage: dockerfile_check.py DOCKERFILE DOCKERIGNORE SNIPPET_DIR
Writes each RUN / HEALTHCHECK shell snippet to SNIPPET_DIR/NN.sh.
"""
import fnmatch
import json
import os
import re
import sys

errors = []


def err(msg):
    errors.append(msg)


def logical_lines(text):
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue  # comment inside a continuation
        if line.endswith("\\"):
            cur += line + "\n"  # keep the continuation for sh
            continue
        cur += line
        out.append(cur.strip())
        cur = ""
    if cur:
        out.append(cur.strip())
    return out


def ignored(path, patterns):
    result = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        pat = pat.strip("/")
        candidates = [pat, pat.replace("**/", "")]
        hit = any(fnmatch.fnmatch(path, c) or path.startswith(c.rstrip("*") + "/") and "*" not in c
                  for c in candidates)
        if hit:
            result = not neg
    return result


def main(dockerfile, dockerignore, snippet_dir):
    root = os.path.dirname(os.path.abspath(dockerfile))
    lines = logical_lines(open(dockerfile).read())
    patterns = [l.strip() for l in open(dockerignore).read().splitlines()
                if l.strip() and not l.startswith("#")]
    args = {}
    stages = {}
    order = []
    cur = None
    os.makedirs(snippet_dir, exist_ok=True)
    n = 0
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "ARG" and cur is None:
            k, _, v = rest.partition("=")
            args[k] = v
            continue
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            base = re.sub(r"\$\{(\w+)\}", lambda x: args.get(x.group(1), ""), m.group(1))
            name = m.group(2) or f"stage{len(order)}"
            parent = stages.get(base)
            cur = {"name": name, "base": base, "parent": parent,
                   "user": parent["user"] if parent else None,
                   "entrypoint": parent["entrypoint"] if parent else None,
                   "expose": set(parent["expose"]) if parent else set(),
                   "healthcheck": parent["healthcheck"] if parent else None,
                   "runs": [], "root_base": parent["root_base"] if parent else base}
            stages[name] = cur
            order.append(name)
            continue
        if cur is None:
            continue
        if instr == "USER":
            cur["user"] = rest
        elif instr == "ENTRYPOINT":
            cur["entrypoint"] = rest
        elif instr == "EXPOSE":
            cur["expose"].update(rest.split())
        elif instr == "HEALTHCHECK":
            cur["healthcheck"] = rest
            m = re.search(r"\bCMD\s+(.*)$", rest, re.S)
            if m and not m.group(1).lstrip().startswith("["):
                n += 1
                with open(os.path.join(snippet_dir, f"{n:02d}-healthcheck.sh"), "w") as f:
                    f.write("#!/bin/sh\n" + m.group(1) + "\n")
        elif instr == "RUN":
            # Drop BuildKit flags such as --mount=... before the command.
            while rest.startswith("--"):
                rest = re.sub(r"^--\S+(\s*\\\n)?\s*", "", rest, count=1)
            cur["runs"].append(rest)
            if not rest.startswith("["):
                n += 1
                with open(os.path.join(snippet_dir, f"{n:02d}-{cur['name']}.sh"), "w") as f:
                    f.write("#!/bin/sh\n" + rest + "\n")
        elif instr in ("COPY", "ADD"):
            parts = [p for p in rest.split() if not p.startswith("--")]
            if "--from=" in rest:
                continue
            for src in parts[:-1]:
                path = os.path.normpath(src).lstrip("./") or "."
                if not os.path.exists(os.path.join(root, path)):
                    err(f"COPY source {src} does not exist")
                elif ignored(path, patterns):
                    err(f"COPY source {src} is excluded by .dockerignore")

    for target in ["api-node", "worker-node"]:
        s = stages.get(target)
        if not s:
            err(f"no target {target}")
            continue
        if s["root_base"] != "debian:bookworm-slim":
            err(f"{target} must run on debian:bookworm-slim (got {s['root_base']})")
        if not s["user"] or s["user"].split(":")[0] in ("root", "0"):
            err(f"{target} must run as a non-root USER")
        ep = s["entrypoint"] or ""
        try:
            if not isinstance(json.loads(ep), list):
                raise ValueError
        except ValueError:
            err(f"{target}: ENTRYPOINT must be in exec form (JSON array)")
    api = stages.get("api-node")
    if api:
        for port in ["8080", "4242"]:
            if port not in api["expose"]:
                err(f"api-node must EXPOSE {port}")
        if not api["healthcheck"] or "curl" not in api["healthcheck"]:
            err("api-node needs a curl HEALTHCHECK")
    build = [s for s in stages.values() if s["base"] == "debian:bookworm"]
    if not build or not any("scripts/install-deps.sh" in r and "--runtime" not in r
                            for s in build for r in s["runs"]):
        err("a debian:bookworm build stage must run scripts/install-deps.sh")
    runtime = [s for s in stages.values() if s["base"] == "debian:bookworm-slim"]
    if not runtime or not any("install-deps.sh --runtime" in r for s in runtime for r in s["runs"]):
        err("the debian:bookworm-slim stage must run install-deps.sh --runtime")

    for e in errors:
        print(f"dockerfile: {e}", file=sys.stderr)
    print(f"dockerfile: {len(order)} stages, {n} shell snippets extracted")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
