#!/usr/bin/env python3
"""Helpers of bench/run (standard library only).

Every measure appends "facts" to one file, a line each:
    name <TAB> value (JSON) <TAB> unit
and `report` turns them into the results JSON and the table. Subcommands:

    freeport N                     print N free TCP ports on 127.0.0.1
    rusage OUT -- CMD...           run CMD, write its CPU time and peak RSS
    procsnap OUT NAME=SPEC...      CPU time of process groups, SPEC is
                                   pid[,pid...] or tree:PID (PID plus its
                                   children, and children it has reaped)
    procdiff PREFIX A B            facts: CPU seconds and cores used between
                                   two snapshots
    rss PREFIX PID                 facts: VmRSS and VmHWM of PID
    wrk-facts PREFIX OUT [RUSAGE]  facts from wrk's BENCH_JSON line
    pgbench-facts PREFIX OUT       facts from pgbench's summary
    floor-server-facts PREFIX OUT  facts from least-server's closing line
    wait-http URL SECONDS          wait until URL answers 2xx
    wait-workers BASE N SECONDS    wait until GET /workers lists N workers
    wait-quiet PREFIX MAX CORES    wait until the machine is nearly idle
    follow-cursor BASE PATH PAGES  print the path of page PAGES+1
    idle BASE N OUT [PIPELINE]     submit N jobs one at a time (idle latency)
    submit BASE N PIPELINE MS      submit N mock jobs of MS ms, print their ids
    sse-expect PREFIX IDS_FILE     facts: count and digest of completed jobs
    sse-summary FACTS RUN ROUNDS   facts: the sse measure, with and without
                                   clients, from the per-phase facts and files
    latency PREFIX SAMPLES TIMES   facts: idle dispatch latency percentiles
    dist PREFIX UNIT FILE          facts: p50/p90/p99/max of one number a line
    report FACTS RESULTS_DIR STAMP MODE [--strict] [--partial]
                                   (--partial: some measures only; leaves
                                   latest.json alone)
    markdown RESULTS_JSON          the table and targets as Markdown
    statement SOURCE NAME [$N=SQL...]
                                   the SQL of the prepared statement NAME in
                                   SOURCE (job_store.cpp), with parameters
                                   replaced by SQL expressions
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")


def fact(name, value, unit):
    """Prints one fact line."""
    print(f"{name}\t{json.dumps(value)}\t{unit}")


# -- processes ---------------------------------------------------------------


def cmd_freeport(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_rusage(out, *cmd):
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"user_s": ru.ru_utime, "sys_s": ru.ru_stime,
                   "wall_s": wall, "max_rss_kb": ru.ru_maxrss,
                   "exit": code}, f)
    sys.exit(code if code >= 0 else 128 - code)


def stat_ticks(pid, with_children=False):
    """utime+stime of a process (and of its reaped children), in ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16,
    # cstime 17.
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(
            f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def group_ticks(spec):
    if spec.startswith("tree:"):
        root = int(spec[5:])
        return stat_ticks(root, True) + sum(stat_ticks(c)
                                            for c in children(root))
    return sum(stat_ticks(int(p)) for p in spec.split(",") if p)


def machine_ticks():
    """Busy ticks of the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def steal_ticks():
    """Ticks the hypervisor gave to others while this machine's CPUs wanted
    to run (the steal column of /proc/stat): a slow run of a virtual
    machine shows here."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    return int(parts[7]) if len(parts) > 7 else 0


def pressure(kind):
    """Cumulative microseconds during which some task stalled on `kind`."""
    try:
        with open(f"/proc/pressure/{kind}") as f:
            for line in f:
                if line.startswith("some "):
                    return int(line.split("total=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def cmd_procsnap(out, *specs):
    snap = {"t": time.monotonic(), "groups": {},
            "machine": machine_ticks(), "steal": steal_ticks(),
            "psi_cpu": pressure("cpu"),
            "psi_io": pressure("io")}
    for spec in specs:
        name, _, what = spec.partition("=")
        snap["groups"][name] = group_ticks(what)
    with open(out, "w") as f:
        json.dump(snap, f)


def cmd_procdiff(prefix, a, b):
    with open(a) as f:
        sa = json.load(f)
    with open(b) as f:
        sb = json.load(f)
    wall = sb["t"] - sa["t"]
    fact(f"{prefix}.wall", round(wall, 3), "s")
    ours = 0.0
    for name, ticks in sb["groups"].items():
        secs = (ticks - sa["groups"].get(name, 0)) / CLK_TCK
        ours += secs
        fact(f"{prefix}.{name}.cpu", round(secs, 2), "s")
        fact(f"{prefix}.{name}.cores", round(secs / wall, 2) if wall else None,
             "cores")
    if not wall:
        return
    # Everything else that ran on the machine meanwhile (the harness's own
    # helpers, the load generator, other users): the noise floor.
    busy = (sb["machine"] - sa["machine"]) / CLK_TCK
    fact(f"{prefix}.machine_busy.cores", round(busy / wall, 2), "cores")
    fact(f"{prefix}.other.cores", round(max(0.0, busy - ours) / wall, 2),
         "cores")
    if "steal" in sa:
        fact(f"{prefix}.machine_steal.cores",
             round((sb["steal"] - sa["steal"]) / CLK_TCK / wall, 2), "cores")
    for kind in ("cpu", "io"):
        a, b = sa.get(f"psi_{kind}"), sb.get(f"psi_{kind}")
        if a is not None and b is not None:
            fact(f"{prefix}.pressure_{kind}_some",
                 round((b - a) / 1e6 / wall * 100, 1), "% of wall time")


def cmd_wait_quiet(prefix, max_seconds, threshold, settle="3"):
    """Waits (at most max_seconds) until the whole machine has used less than
    `threshold` cores for `settle` consecutive seconds: on a shared machine
    this keeps other users' bursts (builds, test suites) out of a measure.
    Prints facts: how long it waited and how busy the machine was."""
    start = time.monotonic()
    last = machine_ticks()
    quiet = 0
    busy = None
    while time.monotonic() - start < float(max_seconds):
        time.sleep(1)
        now = machine_ticks()
        busy = (now - last) / CLK_TCK
        last = now
        quiet = quiet + 1 if busy < float(threshold) else 0
        if quiet >= int(settle):
            break
    fact(f"{prefix}.quiet_wait", round(time.monotonic() - start, 1), "s")
    fact(f"{prefix}.machine_busy_before", None if busy is None
         else round(busy, 2), "cores")
    fact(f"{prefix}.quiet_before", quiet >= int(settle), "-")


def read_status(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    vals[key] = int(rest.split()[0])
    except OSError:
        pass
    return vals


def cmd_rss(prefix, pid):
    vals = read_status(pid)
    fact(f"{prefix}.rss", round(vals.get("VmRSS", 0) / 1024, 1), "MiB")
    fact(f"{prefix}.peak_rss", round(vals.get("VmHWM", 0) / 1024, 1), "MiB")


# -- load generator output ---------------------------------------------------


def bench_json(out, who):
    """The last `BENCH_JSON {...}` line a load tool printed to OUT."""
    data = None
    with open(out) as f:
        for line in f:
            if line.startswith("BENCH_JSON "):
                data = json.loads(line[len("BENCH_JSON "):])
    if data is None:
        sys.exit(f"{who}: no BENCH_JSON line in {out}")
    return data


def cmd_wrk_facts(prefix, out, rusage=None):
    data = bench_json(out, "wrk-facts")
    dur = data["duration_us"] / 1e6
    fact(f"{prefix}.requests", data["requests"], "requests")
    fact(f"{prefix}.duration", round(dur, 3), "s")
    fact(f"{prefix}.throughput", round(data["requests"] / dur, 1), "req/s")
    non2xx = data["errors_status"]
    fact(f"{prefix}.non_2xx", non2xx, "responses")
    fact(f"{prefix}.ok_responses", data["requests"] - non2xx, "responses")
    socket_errors = sum(data[k] for k in ("errors_connect", "errors_read",
                                          "errors_write", "errors_timeout"))
    fact(f"{prefix}.socket_errors", socket_errors, "errors")
    for key, label in (("latency_p50_us", "p50"), ("latency_p90_us", "p90"),
                       ("latency_p99_us", "p99"),
                       ("latency_p99_9_us", "p99_9"),
                       ("latency_max_us", "max"),
                       ("latency_mean_us", "mean")):
        fact(f"{prefix}.latency_{label}", round(data[key] / 1000, 3), "ms")
    if rusage:
        with open(rusage) as f:
            ru = json.load(f)
        cpu = ru["user_s"] + ru["sys_s"]
        fact(f"{prefix}.wrk_cpu", round(cpu, 2), "s")
        fact(f"{prefix}.wrk_cores", round(cpu / ru["wall_s"], 2), "cores")


def cmd_pgbench_facts(prefix, out):
    with open(out) as f:
        text = f.read()
    def grab(pattern):
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else None
    tps = grab(r"^tps = ([0-9.]+) \(without initial connection time\)")
    if tps is None:
        tps = grab(r"^tps = ([0-9.]+)")
    if tps is None:
        sys.exit(f"pgbench-facts: no tps in {out}")
    fact(f"{prefix}.throughput", round(tps, 1), "tx/s")
    fact(f"{prefix}.transactions",
         int(grab(r"^number of transactions actually processed: (\d+)") or 0),
         "transactions")
    fact(f"{prefix}.failed",
         int(grab(r"^number of failed transactions: (\d+)") or 0),
         "transactions")
    fact(f"{prefix}.latency_mean", grab(r"^latency average = ([0-9.]+) ms"),
         "ms")
    fact(f"{prefix}.latency_stddev", grab(r"^latency stddev = ([0-9.]+) ms"),
         "ms")


# -- HTTP --------------------------------------------------------------------


def split_base(base):
    u = urllib.parse.urlsplit(base)
    return u.hostname, u.port or 80


def http_get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def cmd_floor_server_facts(prefix, out):
    """The counts bench/tools/least_server.cpp printed when it stopped."""
    data = bench_json(out, "floor-server-facts")
    if data.get("commits"):
        fact(f"{prefix}.commits", data["commits"], "transactions")
        fact(f"{prefix}.jobs_per_commit",
             round(data["committed"] / data["commits"], 1), "jobs")
    if data.get("lookup_batches"):
        fact(f"{prefix}.lookup_statements", data["lookup_batches"],
             "statements")
        fact(f"{prefix}.lookups_per_statement",
             round(data["lookups"] / data["lookup_batches"], 1), "lookups")
    fact(f"{prefix}.bad_requests", data["bad_requests"], "requests")
    fact(f"{prefix}.db_errors", data["db_errors"], "errors")


def cmd_wait_http(url, seconds):
    deadline = time.monotonic() + float(seconds)
    host, port = split_base(url)
    path = urllib.parse.urlsplit(url).path or "/"
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            status, _ = http_get(c, path)
            c.close()
            if 200 <= status < 300:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"wait-http: {url} not ready after {seconds} s")


def cmd_wait_workers(base, n, seconds):
    deadline = time.monotonic() + float(seconds)
    host, port = split_base(base)
    seen = -1
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            status, body = http_get(c, "/workers")
            c.close()
            if status == 200:
                seen = len(json.loads(body)["workers"])
                if seen >= int(n):
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    sys.exit(f"wait-workers: {seen} of {n} workers after {seconds} s")


def cmd_follow_cursor(base, path, pages):
    host, port = split_base(base)
    c = http.client.HTTPConnection(host, port, timeout=30)
    for i in range(int(pages)):
        status, body = http_get(c, path)
        if status != 200:
            sys.exit(f"follow-cursor: {path} answered {status}")
        cursor = json.loads(body).get("next_cursor")
        if not cursor:
            sys.exit(f"follow-cursor: page {i + 1} has no next_cursor")
        u = urllib.parse.urlsplit(path)
        q = [(k, v) for k, v in urllib.parse.parse_qsl(u.query)
             if k != "cursor"]
        q.append(("cursor", cursor))
        path = u.path + "?" + urllib.parse.urlencode(q)
    print(path)


def cmd_idle(base, n, out, pipeline="bench"):
    """Submits N jobs one at a time to an idle system. After each 2xx it
    records the wall clock (microseconds since the epoch, the clock the
    worker stamps started_at with), then waits until the job is finished
    before the next submission, so that every sample meets an idle worker.
    Writes 'id <TAB> response_us' lines; the harness reads started_at from
    PostgreSQL (GET /jobs has only millisecond timestamps)."""
    host, port = split_base(base)
    c = http.client.HTTPConnection(host, port, timeout=10)
    body = json.dumps({"pipeline_name": pipeline,
                       "parameters": {"mock_duration_ms": 0,
                                      "mock_fail": False}})
    headers = {"Content-Type": "application/json"}
    deadline = time.monotonic() + 10 + 0.5 * int(n)
    with open(out, "w") as f:
        for _ in range(int(n)):
            c.request("POST", "/jobs", body, headers)
            r = c.getresponse()
            data = r.read()
            t_resp = time.time_ns() // 1000
            if r.status != 201:
                sys.exit(f"idle: POST /jobs answered {r.status}: {data!r}")
            job_id = json.loads(data)["id"]
            f.write(f"{job_id}\t{t_resp}\n")
            # Let the dispatch happen undisturbed, then poll for the end.
            time.sleep(0.01)
            while True:
                status, data = http_get(c, "/jobs/" + job_id)
                if status == 200 and json.loads(data)["status"] in (
                        "completed", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    sys.exit(f"idle: job {job_id} did not finish in time")
                time.sleep(0.002)


def percentile(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def dist_facts(prefix, unit, xs):
    xs = sorted(xs)
    fact(f"{prefix}.samples", len(xs), "samples")
    for label, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        v = percentile(xs, p)
        fact(f"{prefix}.{label}", None if v is None else round(v, 3), unit)
    fact(f"{prefix}.max", round(xs[-1], 3) if xs else None, unit)


def cmd_latency(prefix, samples, times):
    """samples: id <TAB> response_us; times: id|created_us|started_us."""
    resp = {}
    with open(samples) as f:
        for line in f:
            job_id, t = line.split("\t")
            resp[job_id] = int(t)
    from_resp, from_created = [], []
    with open(times) as f:
        for line in f:
            job_id, created, started = line.strip().split("|")
            if job_id in resp and started:
                from_resp.append((int(started) - resp[job_id]) / 1000)
                from_created.append((int(started) - int(created)) / 1000)
    dist_facts(f"{prefix}.from_response", "ms", from_resp)
    dist_facts(f"{prefix}.from_created_at", "ms", from_created)


def cmd_dist(prefix, unit, path):
    with open(path) as f:
        xs = [float(x) for x in f.read().split()]
    dist_facts(prefix, unit, xs)


# -- sse: event-stream clients against dispatch ------------------------------


def cmd_submit(base, n, pipeline, duration_ms):
    """Submits N mock jobs of DURATION_MS and prints their ids."""
    host, port = split_base(base)
    c = http.client.HTTPConnection(host, port, timeout=10)
    body = json.dumps({"pipeline_name": pipeline,
                       "parameters": {"mock_duration_ms": int(duration_ms),
                                      "mock_fail": False}})
    for _ in range(int(n)):
        c.request("POST", "/jobs", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 201:
            sys.exit(f"submit: POST /jobs answered {r.status}: {data!r}")
        print(json.loads(data)["id"])


def fnv1a64(text):
    h = 1469598103934665603
    for b in text.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def cmd_sse_expect(prefix, ids_file):
    """What a firehose client should have counted: the jobs PostgreSQL
    completed (one id a line), as a count and the XOR of their FNV-1a 64
    hashes, the digest sse-clients computes of the completions it saw."""
    with open(ids_file) as f:
        ids = f.read().split()
    digest = 0
    for job_id in ids:
        digest ^= fnv1a64(job_id)
    fact(f"{prefix}.completions", len(ids), "jobs")
    fact(f"{prefix}.digest", f"{digest:016x}", "-")


def read_idle_latencies(samples, times):
    resp = {}
    with open(samples) as f:
        for line in f:
            job_id, t = line.split("\t")
            resp[job_id] = int(t)
    out = []
    with open(times) as f:
        for line in f:
            job_id, _, started = line.strip().split("|")
            if job_id in resp and started:
                out.append((int(started) - resp[job_id]) / 1000)
    return out


def cmd_sse_summary(facts_path, run, rounds):
    """The sse measure's figures: phases a<r> ran without event-stream
    clients and b<r> with them, alternating, r = 1..ROUNDS. Samples of the
    same kind are pooled over the rounds."""
    facts = load_facts(facts_path)
    rounds = int(rounds)
    pooled = {}
    for kind, letter in (("without", "a"), ("with", "b")):
        idle, dispatch = [], []
        for r in range(1, rounds + 1):
            tag = f"{letter}{r}"
            xs = read_idle_latencies(f"{run}/sse-{tag}-idle.tsv",
                                     f"{run}/sse-{tag}-idle-times.txt")
            idle += xs
            dist_facts(f"sse.phases.{tag}.idle", "ms", xs)
            with open(f"{run}/sse-{tag}-dispatch.txt") as f:
                ys = [float(x) for x in f.read().split()]
            dispatch += ys
            dist_facts(f"sse.phases.{tag}.dispatch", "ms", ys)
        pooled[kind] = {"idle": sorted(idle), "dispatch": sorted(dispatch)}
        dist_facts(f"sse.idle.{kind}", "ms", idle)
        dist_facts(f"sse.sustained.{kind}.dispatch", "ms", dispatch)

        def mean_of(name):
            vs = [val(facts, f"sse.phases.{letter}{r}.{name}")
                  for r in range(1, rounds + 1)]
            vs = [v for v in vs if isinstance(v, (int, float))]
            return round(sum(vs) / len(vs), 3) if vs else None

        def max_of(name):
            vs = [val(facts, f"sse.phases.{letter}{r}.{name}")
                  for r in range(1, rounds + 1)]
            vs = [v for v in vs if isinstance(v, (int, float))]
            return max(vs) if vs else None

        pooled[kind]["rate"] = mean_of("rate.throughput")
        fact(f"sse.sustained.{kind}.achieved_rate", pooled[kind]["rate"],
             "req/s")
        fact(f"sse.api_node_rss.{kind}_streams", max_of("api_node_rss"),
             "MiB")
        fact(f"sse.sustained.{kind}.submit_latency_p99",
             mean_of("rate.latency_p99"), "ms")
        fact(f"sse.sustained.{kind}.backlog_pending",
             max_of("backlog_pending"), "jobs")
        fact(f"sse.sustained.{kind}.non_2xx", max_of("rate.non_2xx"),
             "responses")
        for who in ("api_node", "postgres", "workers", "clients", "other"):
            v = mean_of(f"cpu_rate.{who}.cores")
            if v is not None:
                fact(f"sse.cpu.{kind}.{who}.cores", v, "cores")
            v = mean_of(f"cpu_idle.{who}.cores")
            if v is not None:
                fact(f"sse.cpu_idle.{kind}.{who}.cores", v, "cores")
        v = mean_of("cpu_rate.machine_busy.cores")
        fact(f"sse.cpu.{kind}.machine_busy.cores", v, "cores")
        # api-node CPU per job during the sustained rate.
        secs = [val(facts, f"sse.phases.{letter}{r}.cpu_rate.api_node.cpu")
                for r in range(1, rounds + 1)]
        reqs = [val(facts, f"sse.phases.{letter}{r}.rate.requests")
                for r in range(1, rounds + 1)]
        if all(isinstance(x, (int, float)) for x in secs + reqs) and sum(reqs):
            fact(f"sse.cpu.{kind}.api_node_per_job",
                 round(sum(secs) / sum(reqs) * 1e3, 4), "ms CPU/job")

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    within = {}
    for name, xs_with, xs_without in (
            ("idle", pooled["with"]["idle"], pooled["without"]["idle"]),
            ("sustained", pooled["with"]["dispatch"],
             pooled["without"]["dispatch"])):
        for label, p in (("p50", 50), ("p99", 99)):
            r = ratio(percentile(xs_with, p), percentile(xs_without, p))
            fact(f"sse.{name}.ratio_{label}", r, "x")
            ok = None if r is None else r <= 1.10
            fact(f"sse.{name}.{label}_within_10pct", ok, "-")
            within[f"{name}_{label}"] = ok
    r = ratio(pooled["without"]["rate"], pooled["with"]["rate"])
    # Throughput: without / with, so that > 1 means slower with clients.
    fact("sse.sustained.ratio_throughput_without_to_with", r, "x")
    within["throughput"] = None if r is None else r <= 1.10
    fact("sse.sustained.throughput_within_10pct", within["throughput"], "-")
    fact("sse.within_10pct",
         all(within[k] is True for k in ("idle_p50", "sustained_p50",
                                         "throughput")), "-")

    # The clients: every firehose stream must have seen every completion of
    # its phase exactly once.
    agg = {}
    all_saw = True
    expected_total = 0
    for r in range(1, rounds + 1):
        tag = f"b{r}"
        with open(f"{run}/sse-{tag}-clients.json") as f:
            rep = json.load(f)
        for k, v in rep.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                agg[k] = agg.get(k, 0) + v
        agg["job_streams_total"] = (agg.get("job_streams_total", 0)
                                    + rep["job_streams"])
        agg["streams"] = rep["streams"]
        agg["firehose"] = rep["firehose"]
        agg["job_streams"] = rep["job_streams"]
        count = val(facts, f"sse.phases.{tag}.expected.completions")
        digest = val(facts, f"sse.phases.{tag}.expected.digest")
        expected_total += count or 0
        matching = sum(n for c, d, n in rep["count_digest_sets"]
                       if c == count and d == digest)
        fact(f"sse.phases.{tag}.clients.firehose_saw_all", matching, "streams")
        fact(f"sse.phases.{tag}.clients.cpu", rep["cpu_s"], "s")
        fact(f"sse.phases.{tag}.clients.wall", rep["wall_s"], "s")
        fact(f"sse.phases.{tag}.clients.connect", rep["connect_s"], "s")
        fact(f"sse.phases.{tag}.clients.events", rep["events"], "events")
        fact(f"sse.phases.{tag}.clients.job_streams_saw_complete",
             rep["job_streams_saw_complete"], "streams")
        if (matching != rep["firehose"] or rep["open_failures"]
                or rep["job_streams_saw_complete"] != rep["job_streams"]):
            all_saw = False
    fact("sse.clients.streams", agg.get("streams"), "streams")
    fact("sse.clients.firehose", agg.get("firehose"), "streams")
    fact("sse.clients.job_streams", agg.get("job_streams"), "streams")
    fact("sse.clients.open_failures", agg.get("open_failures", 0), "streams")
    fact("sse.clients.completions_per_stream", expected_total, "jobs")
    fact("sse.clients.all_saw_all_completions", all_saw, "-")
    fact("sse.clients.firehose_disconnected",
         agg.get("firehose_disconnected", 0), "streams")
    fact("sse.clients.job_streams_saw_complete",
         agg.get("job_streams_saw_complete", 0), "streams")
    fact("sse.clients.job_streams_opened", agg.get("job_streams_total", 0),
         "streams")
    fact("sse.clients.job_streams_ended_before_complete",
         agg.get("job_streams_ended_before_complete", 0), "streams")
    for k, unit in (("events", "events"), ("bytes", "bytes"),
                    ("status", "events"), ("progress", "events"),
                    ("log", "events"), ("complete", "events"),
                    ("comments", "lines"), ("bad_data", "events"),
                    ("id_regressions", "events")):
        fact(f"sse.clients.received.{k}", agg.get(k, 0), unit)
    wall, cpu = agg.get("wall_s"), agg.get("cpu_s")
    if wall:
        fact("sse.clients.cpu", round(cpu, 2), "s")
        fact("sse.clients.cores_over_life", round(cpu / wall, 3), "cores")
        fact("sse.clients.events_per_s", round(agg.get("events", 0) / wall),
             "events/s")
        fact("sse.clients.max_rss", round(agg.get("max_rss_kb", 0) / rounds
                                          / 1024, 1), "MiB")


# -- report ------------------------------------------------------------------


def load_facts(path):
    facts = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, value, unit = line.split("\t")
            facts[name] = {"value": json.loads(value), "unit": unit}
    return facts


def nest(facts):
    root = {}
    for name, fig in facts.items():
        node = root
        parts = name.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = fig
    return root


def val(facts, name):
    f = facts.get(name)
    return None if f is None else f["value"]


# (label, fact, comparison, threshold)
TARGETS = [
    ("submit throughput, durable", "submit.orch.throughput", ">=", 15000),
    ("end-to-end drain, 2 workers", "drain.w2.throughput", ">=", 20000),
    ("idle dispatch latency p50", "idle.from_response.p50", "<=", 2),
    ("idle dispatch latency p99", "idle.from_response.p99", "<=", 5),
    ("GET /jobs/{id} p99 at scale", "reads.get_job.latency_p99", "<=", 10),
    ("GET /jobs?status=running p99", "reads.list_running.latency_p99", "<=",
     10),
    ("GET /jobs?status=failed&pipeline_name=x, page 5, p99",
     "reads.list_failed_page5.latency_p99", "<=", 10),
    ("api-node RSS under load", "footprint.api_node.load_max", "<=", 100),
    ("worker-node RSS", "footprint.worker_node.load_max", "<=", 30),
    # Issue 6: 500 event-stream clients slow job dispatch by at most 10%.
    ("SSE clients: idle dispatch p50, with / without", "sse.idle.ratio_p50",
     "<=", 1.10),
    ("SSE clients: sustained dispatch p50, with / without",
     "sse.sustained.ratio_p50", "<=", 1.10),
    ("SSE clients: sustained rate, without / with",
     "sse.sustained.ratio_throughput_without_to_with", "<=", 1.10),
]

# (section, label, fact)
TABLE = [
    ("1 submit", "POST /jobs, 64 conns", "submit.orch.throughput"),
    ("1 submit", "  latency p50", "submit.orch.latency_p50"),
    ("1 submit", "  latency p99", "submit.orch.latency_p99"),
    ("1 submit", "  latency p99.9", "submit.orch.latency_p99_9"),
    ("1 submit", "  non-2xx / socket errors", "submit.orch.non_2xx"),
    ("1 submit", "  socket errors", "submit.orch.socket_errors"),
    ("1 submit", "  wrk CPU", "submit.orch.wrk_cores"),
    ("1 submit", "  api-node CPU", "submit.cpu.api_node.cores"),
    ("1 submit", "  postgres CPU", "submit.cpu.postgres.cores"),
    ("1 submit", "  other processes CPU (incl. wrk)",
     "submit.cpu.other.cores"),
    ("1 submit", "  CPU pressure (some)", "submit.cpu.pressure_cpu_some"),
    ("1 submit", "  CPU stolen by the hypervisor",
     "submit.cpu.machine_steal.cores"),
    ("1 submit", "pgbench 1-row INSERT/tx, 64 clients",
     "submit.pgbench.throughput"),
    ("1 submit", "  pgbench latency mean", "submit.pgbench.latency_mean"),
    ("1 submit", "orch / pgbench", "submit.ratio_to_pgbench"),
    ("1 submit", "CPU/request (api+pg+wrk)", "submit.orch.cost.total"),
    ("1 submit", "  postgres CPU/tx under pgbench",
     "submit.pgbench.cost.postgres"),
    ("1 submit", "pgbench, 1 client (one flush each)",
     "submit.pgbench_1_client.throughput"),
    ("1 submit", "jobs per group commit", "submit.orch.jobs_per_commit"),
    ("1 submit", "  api-node CPU/request", "submit.orch.cost.api_node"),
    ("1 submit", "  postgres CPU/request", "submit.orch.cost.postgres"),
    ("1 submit", "HTTP floor: GET /health, same api-node",
     "submit.health.throughput"),
    ("1 submit", "  api-node CPU/request", "submit.health.cost.api_node"),
    ("1 submit", "PostgreSQL alone, group commit, 1 conn",
     "submit.group_commit_c1.jobs_per_s"),
    ("1 submit", "  2 conns", "submit.group_commit_c2.jobs_per_s"),
    ("1 submit", "  postgres CPU/job, 2 conns",
     "submit.group_commit_c2.cost.postgres"),
    ("1 submit", "floor CPU/request (pg+/health+wrk)",
     "submit.floor.cost"),
    ("1 submit", "  floor's rate with both cores busy",
     "submit.floor.ceiling_all_cores"),
    ("1 submit", "least server (no orch), 1 conn",
     "submit.floor_server_c1.throughput"),
    ("1 submit", "  latency p99", "submit.floor_server_c1.latency_p99"),
    ("1 submit", "  jobs per group commit",
     "submit.floor_server_c1.jobs_per_commit"),
    ("1 submit", "  server CPU/request", "submit.floor_server_c1.cost.server"),
    ("1 submit", "  postgres CPU/request",
     "submit.floor_server_c1.cost.postgres"),
    ("1 submit", "  2 conns", "submit.floor_server_c2.throughput"),
    ("2 drain", "1 worker", "drain.w1.throughput"),
    ("2 drain", "2 workers", "drain.w2.throughput"),
    ("2 drain", "4 workers", "drain.w4.throughput"),
    ("2 drain", "  api-node CPU (2 workers)", "drain.w2.cpu.api_node.cores"),
    ("2 drain", "  postgres CPU (2 workers)", "drain.w2.cpu.postgres.cores"),
    ("2 drain", "  workers CPU (2 workers)", "drain.w2.cpu.workers.cores"),
    ("2 drain", "  other processes CPU (2 workers)",
     "drain.w2.cpu.other.cores"),
    ("2 drain", "  postgres CPU/job (2 workers)", "drain.w2.cost.postgres"),
    ("2 drain", "  api-node CPU/job (2 workers)", "drain.w2.cost.api_node"),
    ("3 sustained", "offered rate", "sustained.offered_rate"),
    ("3 sustained", "achieved rate", "sustained.wrk.throughput"),
    ("3 sustained", "submit latency p99", "sustained.wrk.latency_p99"),
    ("3 sustained", "dispatch latency p50", "sustained.dispatch.p50"),
    ("3 sustained", "dispatch latency p99", "sustained.dispatch.p99"),
    ("3 sustained", "backlog at end (pending)", "sustained.backlog_pending"),
    ("4 idle", "2xx -> started_at p50", "idle.from_response.p50"),
    ("4 idle", "2xx -> started_at p99", "idle.from_response.p99"),
    ("4 idle", "created_at -> started_at p50", "idle.from_created_at.p50"),
    ("4 idle", "created_at -> started_at p99", "idle.from_created_at.p99"),
    ("5 reads", "jobs in table", "reads.jobs"),
    ("5 reads", "GET /jobs/{id} req/s", "reads.get_job.throughput"),
    ("5 reads", "  p50", "reads.get_job.latency_p50"),
    ("5 reads", "  p99", "reads.get_job.latency_p99"),
    ("5 reads", "least server (no orch), 1 conn, req/s",
     "reads.get_job_floor_c1.throughput"),
    ("5 reads", "  p99", "reads.get_job_floor_c1.latency_p99"),
    ("5 reads", "  lookups per statement",
     "reads.get_job_floor_c1.lookups_per_statement"),
    ("5 reads", "  server CPU/request", "reads.get_job_floor_c1.cost.server"),
    ("5 reads", "  postgres CPU/request",
     "reads.get_job_floor_c1.cost.postgres"),
    ("5 reads", "  2 conns, req/s", "reads.get_job_floor_c2.throughput"),
    ("5 reads", "  2 conns, p99", "reads.get_job_floor_c2.latency_p99"),
    ("5 reads", "GET /jobs?status=running req/s",
     "reads.list_running.throughput"),
    ("5 reads", "  p50", "reads.list_running.latency_p50"),
    ("5 reads", "  p99", "reads.list_running.latency_p99"),
    ("5 reads", "GET ...failed&pipeline_name=x page 5 req/s",
     "reads.list_failed_page5.throughput"),
    ("5 reads", "  p50", "reads.list_failed_page5.latency_p50"),
    ("5 reads", "  p99", "reads.list_failed_page5.latency_p99"),
    ("5 reads", "GET /jobs (no filter) req/s", "reads.list_all.throughput"),
    ("5 reads", "  p50", "reads.list_all.latency_p50"),
    ("5 reads", "  p99", "reads.list_all.latency_p99"),
    ("5 reads", "GET /jobs, 50 pages at random, req/s",
     "reads.list_mixed.throughput"),
    ("5 reads", "  p50", "reads.list_mixed.latency_p50"),
    ("5 reads", "  p99", "reads.list_mixed.latency_p99"),
    ("5 reads", "plans use an index", "reads.plans_use_index"),
    ("5 reads", "CPU/request GET /jobs/{id} (api+pg+wrk)",
     "reads.get_job.cost.total"),
    ("5 reads", "CPU/request list running", "reads.list_running.cost.total"),
    ("5 reads", "CPU/request list failed x p5",
     "reads.list_failed_page5.cost.total"),
    ("6 footprint", "api-node idle", "footprint.api_node.idle"),
    ("6 footprint", "api-node load 1 (submit)", "footprint.api_node.load1"),
    ("6 footprint", "api-node load 2 (sustained)", "footprint.api_node.load2"),
    ("6 footprint", "worker-node idle", "footprint.worker_node.idle"),
    ("6 footprint", "worker-node load 1 (drain)",
     "footprint.worker_node.load1"),
    ("6 footprint", "worker-node load 2 (sustained)",
     "footprint.worker_node.load2"),
    ("7 sse", "event streams open (with)", "sse.clients.streams"),
    ("7 sse", "  of which firehose", "sse.clients.firehose"),
    ("7 sse", "  of which per-job", "sse.clients.job_streams"),
    ("7 sse", "idle 2xx -> started_at p50, no streams", "sse.idle.without.p50"),
    ("7 sse", "  with streams", "sse.idle.with.p50"),
    ("7 sse", "  ratio with / without", "sse.idle.ratio_p50"),
    ("7 sse", "idle 2xx -> started_at p99, no streams", "sse.idle.without.p99"),
    ("7 sse", "  with streams", "sse.idle.with.p99"),
    ("7 sse", "  ratio with / without", "sse.idle.ratio_p99"),
    ("7 sse", "sustained: achieved rate, no streams",
     "sse.sustained.without.achieved_rate"),
    ("7 sse", "  with streams", "sse.sustained.with.achieved_rate"),
    ("7 sse", "  submit -> start p50, no streams",
     "sse.sustained.without.dispatch.p50"),
    ("7 sse", "  with streams", "sse.sustained.with.dispatch.p50"),
    ("7 sse", "  ratio with / without", "sse.sustained.ratio_p50"),
    ("7 sse", "  submit -> start p99, no streams",
     "sse.sustained.without.dispatch.p99"),
    ("7 sse", "  with streams", "sse.sustained.with.dispatch.p99"),
    ("7 sse", "  ratio with / without", "sse.sustained.ratio_p99"),
    ("7 sse", "  backlog at end, with streams",
     "sse.sustained.with.backlog_pending"),
    ("7 sse", "api-node CPU, sustained, no streams",
     "sse.cpu.without.api_node.cores"),
    ("7 sse", "  with streams", "sse.cpu.with.api_node.cores"),
    ("7 sse", "  per job, no streams", "sse.cpu.without.api_node_per_job"),
    ("7 sse", "  per job, with streams", "sse.cpu.with.api_node_per_job"),
    ("7 sse", "clients CPU (sustained)", "sse.cpu.with.clients.cores"),
    ("7 sse", "other processes CPU (sustained, with)",
     "sse.cpu.with.other.cores"),
    ("7 sse", "api-node RSS, streams open", "sse.api_node_rss.with_streams"),
    ("7 sse", "api-node peak RSS", "sse.api_node_rss.peak"),
    ("7 sse", "events received by the clients", "sse.clients.received.events"),
    ("7 sse", "all streams saw all completions",
     "sse.clients.all_saw_all_completions"),
    ("7 sse", "  completions per firehose stream",
     "sse.clients.completions_per_stream"),
    ("7 sse", "streams disconnected (too slow)",
     "sse.clients.firehose_disconnected"),
    ("7 sse", "dispatch within 10% (p50s, rate)", "sse.within_10pct"),
]


def fmt(fig):
    if fig is None:
        return "n/a"
    v, unit = fig["value"], fig["unit"]
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        v = f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v} {unit}" if unit and unit != "-" else str(v)


def evaluate_targets(facts):
    out = []
    for label, name, cmp, threshold in TARGETS:
        v = val(facts, name)
        met = None
        if isinstance(v, (int, float)):
            met = v >= threshold if cmp == ">=" else v <= threshold
        unit = facts.get(name, {}).get("unit", "")
        out.append({"target": label, "figure": name,
                    "threshold": {"value": threshold, "unit": unit,
                                  "comparison": cmp},
                    "measured": facts.get(name), "met": met})
    return out


def machine_info():
    model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "cores": {"value": os.cpu_count(), "unit": "logical CPUs"},
        "cpu_model": model,
        "memory": {"value": round(mem_kb / 1024 / 1024, 1), "unit": "GiB"},
        "kernel": os.uname().release,
        "loadavg_at_end": [float(x) for x in load],
    }


def derive(facts):
    """Figures computed from others."""
    ours = val(facts, "submit.orch.throughput")
    base = val(facts, "submit.pgbench.throughput")
    if ours and base:
        facts["submit.ratio_to_pgbench"] = {"value": round(ours / base, 3),
                                            "unit": "x"}
    # CPU cost of one request, and what it implies on this machine: with
    # every core ours, throughput <= cores / cost; with C connections in a
    # closed loop, mean latency >= C / throughput (Little's law).
    cores = os.cpu_count()
    conns = val(facts, "config.connections")
    for load, cpu in (("submit.orch", "submit.cpu"),
                      ("reads.get_job", "reads.get_job.cpu"),
                      ("reads.list_running", "reads.list_running.cpu"),
                      ("reads.list_failed_page5",
                       "reads.list_failed_page5.cpu"),
                      ("reads.list_all", "reads.list_all.cpu"),
                      ("reads.list_mixed", "reads.list_mixed.cpu")):
        n = val(facts, f"{load}.requests")
        if not n:
            continue
        total = 0.0
        for who, name in (("api_node", f"{cpu}.api_node.cpu"),
                          ("postgres", f"{cpu}.postgres.cpu"),
                          ("wrk", f"{load}.wrk_cpu")):
            secs = val(facts, name)
            if secs is None:
                continue
            total += secs
            facts[f"{load}.cost.{who}"] = {
                "value": round(secs / n * 1e3, 4), "unit": "ms CPU/request"}
        if total > 0:
            facts[f"{load}.cost.total"] = {
                "value": round(total / n * 1e3, 4), "unit": "ms CPU/request"}
            ceiling = cores / (total / n)
            facts[f"{load}.cost.ceiling_all_cores"] = {
                "value": round(ceiling), "unit": "req/s"}
            if conns:
                facts[f"{load}.cost.min_mean_latency_at_ceiling"] = {
                    "value": round(conns / ceiling * 1e3, 2), "unit": "ms"}
    for w in (1, 2, 4):
        jobs = val(facts, f"drain.w{w}.completed")
        for who in ("api_node", "postgres", "workers"):
            secs = val(facts, f"drain.w{w}.cpu.{who}.cpu")
            if jobs and secs is not None:
                facts[f"drain.w{w}.cost.{who}"] = {
                    "value": round(secs / jobs * 1e3, 4),
                    "unit": "ms CPU/job"}
    # The submit measure's floors: an HTTP answer of the same api-node
    # (GET /health), and PostgreSQL alone running the group commit at the
    # batch size the measure reached. PostgreSQL's CPU per submission under
    # orch, plus the HTTP floor and wrk's cost per request, is the least CPU
    # a submission could take through this stack here.
    committed = val(facts, "submit.orch.committed_jobs")
    commits = val(facts, "submit.orch.commits")
    if committed and commits:
        facts["submit.orch.jobs_per_commit"] = {
            "value": round(committed / commits, 1), "unit": "jobs"}
    n = val(facts, "submit.health.requests")
    secs = val(facts, "submit.health_cpu.api_node.cpu")
    if n and secs is not None:
        facts["submit.health.cost.api_node"] = {
            "value": round(secs / n * 1e3, 4), "unit": "ms CPU/request"}
    batch = val(facts, "submit.group_commit.batch")
    for c in (1, 2):
        tps = val(facts, f"submit.group_commit_c{c}.throughput")
        txs = val(facts, f"submit.group_commit_c{c}.transactions")
        secs = val(facts, f"submit.group_commit_c{c}.cpu.postgres.cpu")
        if batch and tps:
            facts[f"submit.group_commit_c{c}.jobs_per_s"] = {
                "value": round(tps * batch), "unit": "jobs/s"}
        if batch and txs and secs is not None:
            facts[f"submit.group_commit_c{c}.cost.postgres"] = {
                "value": round(secs / (txs * batch) * 1e3, 4),
                "unit": "ms CPU/job"}
    parts = [val(facts, "submit.orch.cost.postgres"),
             val(facts, "submit.health.cost.api_node"),
             val(facts, "submit.orch.cost.wrk")]
    if all(x is not None for x in parts):
        floor = sum(parts)
        facts["submit.floor.cost"] = {"value": round(floor, 4),
                                      "unit": "ms CPU/request"}
        facts["submit.floor.ceiling_all_cores"] = {
            "value": round(cores / floor * 1e3), "unit": "req/s"}
    for p in [f"{m}_c{c}" for m in ("submit.floor_server",
                                     "reads.get_job_floor") for c in (1, 2)]:
        n = val(facts, f"{p}.requests")
        for who, group in (("server", "api_node"), ("postgres", "postgres")):
            secs = val(facts, f"{p}.cpu.{group}.cpu")
            if n and secs is not None:
                facts[f"{p}.cost.{who}"] = {
                    "value": round(secs / n * 1e3, 4),
                    "unit": "ms CPU/request"}
    n = val(facts, "submit.pgbench.transactions")
    secs = val(facts, "submit.pgbench_cpu.postgres.cpu")
    if n and secs is not None:
        facts["submit.pgbench.cost.postgres"] = {
            "value": round(secs / n * 1e3, 4), "unit": "ms CPU/transaction"}
    for node in ("api_node", "worker_node"):
        loads = [val(facts, f"footprint.{node}.{k}") for k in ("load1",
                                                              "load2")]
        loads = [x for x in loads if x is not None]
        if loads:
            facts[f"footprint.{node}.load_max"] = {"value": max(loads),
                                                   "unit": "MiB"}


def cmd_report(facts_path, results_dir, stamp, mode, *flags):
    facts = load_facts(facts_path)
    derive(facts)
    doc = {"schema": "orch-bench/1", "timestamp": stamp, "mode": mode,
           "machine": machine_info()}
    doc.update(nest(facts))
    targets = evaluate_targets(facts)
    doc["targets"] = targets
    checks_ok = all(f["value"] is True for n, f in facts.items()
                    if n.startswith("checks.") and n.endswith(".ok"))
    doc["correct"] = checks_ok
    os.makedirs(results_dir, exist_ok=True)
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    names = [f"{stamp}.json"]
    if "--partial" not in flags:
        names.append("latest.json")
    for name in names:
        with open(os.path.join(results_dir, name), "w") as f:
            f.write(text)

    rows, section = [], None
    for sec, label, name in TABLE:
        if name not in facts:
            continue
        rows.append((sec if sec != section else "", label, fmt(facts[name])))
        section = sec
    w0 = max([len(r[0]) for r in rows] + [7])
    w1 = max([len(r[1]) for r in rows] + [6])
    print()
    print(f"orch bench ({mode}) {stamp}  {os.cpu_count()} cores, "
          f"{doc['machine']['cpu_model']}, "
          f"{doc['machine']['memory']['value']} GiB")
    print(f"{'measure':<{w0}}  {'figure':<{w1}}  value")
    for sec, label, value in rows:
        print(f"{sec:<{w0}}  {label:<{w1}}  {value}")
    print()
    print("targets (issues 4 and 6)" + (" - not checked in --quick"
                                 if mode == "quick" else ""))
    for t in targets:
        met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        th = t["threshold"]
        print(f"  {t['target']:<52} {th['comparison']} "
              f"{th['value']:>6} {th['unit']:<6} measured "
              f"{fmt(t['measured']):>14}  {met}")
    print()
    print("correctness: every job reached exactly one terminal state: "
          + ("yes" if checks_ok else "NO"))
    print(f"results: {os.path.join(results_dir, stamp + '.json')}")
    if not checks_ok:
        sys.exit(1)
    if "--strict" in flags and mode != "quick" and any(
            t["met"] is False for t in targets):
        sys.exit(3)


def flatten(node, prefix=""):
    out = {}
    if isinstance(node, dict):
        if "value" in node and "unit" in node:
            out[prefix] = node
        else:
            for k, v in node.items():
                out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    return out


def cmd_markdown(results):
    """Prints the table and the targets of a results file as Markdown (for
    docs/performance.md)."""
    with open(results) as f:
        doc = json.load(f)
    facts = flatten({k: v for k, v in doc.items()
                     if k not in ("machine", "targets")})
    print("| measure | figure | value |")
    print("|---|---|---|")
    section = None
    for sec, label, name in TABLE:
        if name not in facts:
            continue
        shown = sec if sec != section else ""
        section = sec
        print(f"| {shown} | {label.strip()} | {fmt(facts[name])} |")
    print()
    print("| target (issues 4 and 6) | threshold | measured | met |")
    print("|---|---|---|---|")
    for t in doc.get("targets", []):
        th = t["threshold"]
        met = {True: "met", False: "**not met**", None: "n/a"}[t["met"]]
        print(f"| {t['target']} | {th['comparison']} {th['value']:,} "
              f"{th['unit']} | {fmt(t['measured'])} | {met} |")


def cmd_statement(source, name, *params):
    """Prints the text of `prepared("NAME", "..." "...")` in a C++ source
    (or of `constexpr const char* NAME = "..." "...";`),
    so that bench/ceiling runs the api-node's own statements, not copies
    that could drift. Macros the statements use are expanded from their
    `#define`s in the same file; `$N=EXPR` replaces parameter N."""
    text = open(source).read()
    tokens = re.compile(r'(?:\s|//[^\n]*)*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_]\w*)'
                        r'(?:\(\s*"((?:[^"\\]|\\.)*)"\s*\))?)')

    def unescape(s):
        return s.replace('\\"', '"').replace("\\\\", "\\")

    def concat(body, k=0, arg=None, argname=None):
        # Adjacent string literals, a macro's argument and upper-case macros
        # (expanded from their #define), up to the first other token.
        out = []
        while True:
            m = tokens.match(body, k)
            if not m or m.end() == k:
                break
            if m.group(1) is not None:
                out.append(unescape(m.group(1)))
            elif argname and m.group(2) == argname:
                out.append(arg)
            elif m.group(2).isupper():
                d = re.search(r"#define " + m.group(2)
                              + r"(?:\((\w+)\))?((?:.*\\\n)*.*)", text)
                if not d:
                    sys.exit(f"statement: no #define {m.group(2)} in {source}")
                inner_arg = unescape(m.group(3)) if m.group(3) else None
                out.append(concat(d.group(2).replace("\\\n", " "), 0,
                                  inner_arg, d.group(1)))
            else:
                break
            k = m.end()
        return "".join(out)

    start = text.find('prepared("%s",' % name)
    if start >= 0:
        start += len('prepared("%s",' % name)
    else:
        # A constant the statements are built from (job_columns).
        m = re.search(r"constexpr const char\*\s+%s\s*=" % re.escape(name),
                      text)
        if not m:
            sys.exit(f"statement: no prepared statement {name} in {source}")
        start = m.end()
    sql = concat(text, start)
    if not sql.strip():
        sys.exit(f"statement: {name} in {source} is not one literal")
    for p in sorted(params, key=lambda x: -int(x.split("=", 1)[0][1:])):
        n, expr = p.split("=", 1)
        sql = re.sub(re.escape(n) + r"(?!\d)", lambda _: expr, sql)
    print(re.sub(r"\s+", " ", sql).strip())


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1].replace("-", "_")
    fn = globals().get("cmd_" + cmd)
    if fn is None:
        sys.exit(f"unknown subcommand {argv[1]}\n{__doc__}")
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
