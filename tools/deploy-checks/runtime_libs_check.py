#!/usr/bin/env python3
"""Does `scripts/install-deps.sh --runtime` provide every shared library the
built binaries load? Works from dpkg's database (/var/lib/dpkg/status), so
it needs no apt lists.

Usage: runtime_libs_check.py INSTALL_DEPS_SH BINARY...
"""
import os
import re
import subprocess
import sys


def parse_status(path="/var/lib/dpkg/status"):
    pkgs, provides = {}, {}
    for stanza in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        name = fields.get("Package")
        if not name or "install ok installed" not in fields.get("Status", ""):
            continue
        deps = []
        for field in ("Depends", "Pre-Depends"):
            for group in filter(None, (g.strip() for g in fields.get(field, "").split(","))):
                deps.append([re.split(r"[\s(:]", alt.strip())[0] for alt in group.split("|")])
        pkgs[name] = {"deps": deps, "essential": fields.get("Essential") == "yes",
                      "required": fields.get("Priority") == "required"}
        for p in filter(None, (x.strip() for x in fields.get("Provides", "").split(","))):
            provides.setdefault(re.split(r"[\s(]", p)[0], []).append(name)
    return pkgs, provides


def main(script, binaries):
    text = open(script).read()
    m = re.search(r"^runtime_pkgs=\((.*?)^\)", text, re.S | re.M)
    if not m:
        print("cannot find runtime_pkgs=( ... ) in " + script)
        return 1
    runtime = m.group(1).split()
    pkgs, provides = parse_status()
    bad = 0
    closure = {n for n, p in pkgs.items() if p["essential"] or p["required"]}
    todo = []
    for name in runtime:
        if name not in pkgs:
            print(f"runtime package {name} is not installed here, cannot follow its dependencies")
            bad = 1
        todo.append(name)
    while todo:
        name = todo.pop()
        for cand in [name] + provides.get(name, []):
            if cand in pkgs and cand not in closure:
                closure.add(cand)
                for group in pkgs[cand]["deps"]:
                    todo.extend(group)
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            print(f"{binary}: not built")
            bad = 1
            continue
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        libs = sorted({m.group(1) for m in re.finditer(r"(/\S+)\s+\(0x", out)})
        for lib in libs:
            owner = None
            for cand in {lib, os.path.realpath(lib), "/usr" + lib, lib.removeprefix("/usr")}:
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0].split(",")[0].strip()
                    break
            if owner is None:
                print(f"{binary}: {lib} belongs to no Debian package")
                bad = 1
            elif owner not in closure:
                print(f"{binary}: {lib} comes from {owner}, which install-deps.sh --runtime does not install")
                bad = 1
        print(f"{binary}: {len(libs)} libraries covered" if not bad else f"{binary}: checked")
    print("runtime packages: " + " ".join(runtime))
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
