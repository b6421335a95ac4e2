// orch dashboard: one page, plain JavaScript, no build step, no external
// requests. It talks only to this api-node:
//   GET /jobs (keyset pages of 50, never everything), GET /jobs?status=X&limit=1
//   for the counts (their "total" comes from a counters table), GET /workers,
//   GET /pipelines, POST /jobs, POST /jobs/{id}/cancel, and the Server-Sent
//   Events of GET /events (all jobs) and GET /jobs/{id}/events (one job).
// Without the event streams (an older api-node, a proxy that buffers), it
// falls back to polling and says so in the header.
//
// Everything that comes from users or jobs (descriptions, parameters, log
// lines, error messages) reaches the page through textContent or
// setAttribute on inert attributes, never through innerHTML.
(function () {
  "use strict";

  const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const PAGE_SIZE = 50;
  const MAX_LOG_LINES = 500; // log lines kept in the DOM
  const RENDER_MS = 250; // live updates are applied at most 4 times a second
  const MAX_INSERTED = 100; // new jobs put on top before "N newer jobs"
  const HYDRATE_MS = 1500; // fills in inserted rows from one page read
  const COUNTS_MS = 5000; // counts resync at most this often while events flow
  const COUNTS_IDLE_MS = 30000;
  const WORKERS_MS = 5000;
  const POLL_MS = 3000; // polling, only when the event stream is unavailable
  const SSE_RETRY_MS = 15000; // then the stream is tried again this often

  // -- small helpers -----------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  // el("td", {class: "num", text: "3"}, child...): attributes are set with
  // setAttribute, text with textContent.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function text(node, value) {
    const s = value === undefined || value === null ? "" : String(value);
    if (node.textContent !== s) node.textContent = s;
  }

  function pad(n, w) {
    return String(n).padStart(w || 2, "0");
  }

  // Local time; the date only when it is not today.
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return hms;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
  }

  function ms(iso) {
    const t = iso ? Date.parse(iso) : NaN;
    return isNaN(t) ? null : t;
  }

  function fmtCount(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function jobHref(id) {
    return "#/jobs/" + encodeURIComponent(id);
  }

  // Calls the API; rejects with {status, problem} on an error status.
  async function api(method, path, body, accept) {
    const opts = { method, headers: { Accept: accept || "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    const raw = await res.text();
    if (accept && accept !== "application/json" && res.ok) return raw;
    let data = null;
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const msg = (data && (data.detail || data.title)) || `HTTP ${res.status}`;
      const err = new Error(msg);
      err.status = res.status;
      err.problem = data;
      throw err;
    }
    return data;
  }

  // Runs fn at most once per `wait` ms; calls during the wait are merged
  // into one call at its end.
  function throttle(fn, wait) {
    let timer = null;
    let last = 0;
    return function () {
      if (timer) return;
      const delay = Math.max(0, wait - (Date.now() - last));
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, delay);
    };
  }

  function debounce(fn, wait) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, wait);
    };
  }

  // -- the header's live indicator --------------------------------------------

  function setMode(mode, label) {
    const live = $("live");
    live.dataset.mode = mode;
    text(live, label || mode);
    const titles = {
      live: "Updates arrive as Server-Sent Events.",
      reconnecting: "The event stream dropped; the browser reconnects and resumes where it left off.",
      polling: "The event stream is not available; the page polls every few seconds.",
      done: "The job has finished; its event stream is closed.",
      connecting: "Connecting to the event stream.",
    };
    live.title = titles[mode] || "";
  }

  // An EventSource that falls back to polling. The browser reconnects by
  // itself after network errors, sending Last-Event-ID; a stream that
  // cannot be had at all (an HTTP error) is retried every SSE_RETRY_MS
  // while `fallback` polls.
  class Live {
    constructor(url, types, handlers) {
      this.url = url;
      this.types = types;
      this.h = handlers;
      this.es = null;
      this.retry = null;
      this.closed = false;
      this.open();
    }

    open() {
      if (this.closed) return;
      const es = new EventSource(this.url);
      this.es = es;
      es.onopen = () => {
        setMode("live");
        if (this.h.open) this.h.open();
      };
      es.onerror = () => {
        if (this.closed || this.es !== es) return;
        if (es.readyState === EventSource.CLOSED) {
          this.es = null;
          setMode("polling");
          if (this.h.fallback) this.h.fallback();
          this.retry = setTimeout(() => this.open(), SSE_RETRY_MS);
        } else {
          setMode("reconnecting");
        }
      };
      for (const type of this.types)
        es.addEventListener(type, (e) => {
          if (this.closed) return;
          let data;
          try {
            data = JSON.parse(e.data);
          } catch (err) {
            return;
          }
          this.h.event(type, data, e.lastEventId);
        });
    }

    close() {
      this.closed = true;
      clearTimeout(this.retry);
      if (this.es) this.es.close();
      this.es = null;
    }
  }

  // -- the list view: state ------------------------------------------------------

  const list = {
    active: false,
    filter: { statuses: [], pipeline: "" },
    cursors: [null], // the cursor of each page shown so far; the last is current
    next: null, // next_cursor of the current page
    total: 0,
    rows: new Map(), // job id -> {job, tr, cells}
    inserted: 0,
    hiddenNew: 0,
    queued: new Map(), // job id -> [[type, data], ...] not rendered yet
    counts: {},
    live: null,
    poll: null,
    loadSeq: 0,
  };

  function matchesFilter(job) {
    const f = list.filter;
    if (f.statuses.length && !f.statuses.includes(job.status)) return false;
    if (f.pipeline && job.pipeline_name !== f.pipeline) return false;
    return true;
  }

  function listQuery(extra) {
    const q = new URLSearchParams();
    if (list.filter.statuses.length) q.set("status", list.filter.statuses.join(","));
    if (list.filter.pipeline) q.set("pipeline_name", list.filter.pipeline);
    for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) q.set(k, v);
    return q.toString();
  }

  // -- the list view: rows ---------------------------------------------------------

  function progressBar() {
    const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 });
    bar.append(el("div", { class: "fill" }));
    return bar;
  }

  function setProgress(bar, label, job) {
    let pct = null;
    if (job.progress && typeof job.progress.percent === "number") pct = job.progress.percent;
    else if (job.status === "completed") pct = 100;
    bar.dataset.status = job.status;
    bar.querySelector(".fill").style.width = (pct === null ? 0 : Math.max(0, Math.min(100, pct))) + "%";
    if (pct === null) bar.removeAttribute("aria-valuenow");
    else bar.setAttribute("aria-valuenow", String(Math.round(pct)));
    if (label) {
      let s = "";
      if (job.progress && job.progress.total) s = `${job.progress.completed}/${job.progress.total}`;
      text(label, s);
    }
  }

  function makeRow(job) {
    const link = el("a", { href: jobHref(job.id), title: job.id, class: "mono", text: job.id.slice(0, 8) });
    const badge = el("span", { class: "badge", "data-field": "status" });
    const bar = progressBar();
    const pct = el("span", { class: "pct" });
    const cells = {
      pipeline: el("td"),
      badge,
      bar,
      pct,
      priority: el("td", { class: "num" }),
      attempt: el("td", { class: "num" }),
      worker: el("td"),
      created: el("td"),
      desc: el("td", { class: "desc" }),
    };
    const tr = el(
      "tr",
      { "data-job-id": job.id },
      el("td", {}, link),
      cells.pipeline,
      el("td", {}, badge),
      el("td", {}, bar, pct),
      cells.priority,
      cells.attempt,
      cells.worker,
      cells.created,
      cells.desc
    );
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      location.hash = jobHref(job.id);
    });
    const row = { job, tr, cells };
    updateRow(row);
    return row;
  }

  function updateRow(row) {
    const j = row.job;
    const c = row.cells;
    text(c.pipeline, j.pipeline_name);
    text(c.badge, j.status);
    c.badge.dataset.status = j.status;
    row.tr.dataset.status = j.status;
    setProgress(c.bar, c.pct, j);
    text(c.priority, j.priority === undefined ? "" : j.priority);
    text(c.attempt, j.attempt === undefined ? "" : j.attempt);
    text(c.worker, j.worker_id || "");
    text(c.created, fmtTime(j.created_at));
    c.created.title = j.created_at || "";
    text(c.desc, j.description || "");
    c.desc.title = j.description || "";
    row.tr.classList.toggle("stale", !matchesFilter(j));
  }

  function renderPage(jobs) {
    const tbody = $("jobs").tBodies[0];
    list.rows.clear();
    list.inserted = 0;
    list.hiddenNew = 0;
    const trs = [];
    for (const job of jobs) {
      const row = makeRow(job);
      list.rows.set(job.id, row);
      trs.push(row.tr);
    }
    tbody.replaceChildren(...trs);
    $("jobs-empty").hidden = jobs.length > 0;
    $("new-jobs").hidden = true;
  }

  function updatePager() {
    const page = list.cursors.length;
    $("page-newer").disabled = page <= 1;
    $("page-older").disabled = !list.next;
    text($("page-info"), `page ${page} \u00b7 ${fmtCount(list.total)} job${list.total === 1 ? "" : "s"}`);
  }

  async function loadPage() {
    const seq = ++list.loadSeq;
    const cursor = list.cursors[list.cursors.length - 1];
    try {
      const page = await api("GET", "/jobs?" + listQuery({ limit: PAGE_SIZE, cursor }));
      if (seq !== list.loadSeq || !list.active) return;
      $("jobs-error").hidden = true;
      list.next = page.next_cursor || null;
      list.total = page.total || 0;
      renderPage(page.jobs || []);
      updatePager();
      flushList();
    } catch (e) {
      if (seq !== list.loadSeq) return;
      $("jobs-error").hidden = false;
      text($("jobs-error"), "Could not load jobs: " + e.message);
    }
  }

  // Fills in rows that were inserted from events (which carry no
  // description or priority) with one read of the first page.
  const hydrate = throttle(async () => {
    if (!list.active || list.cursors.length !== 1) return;
    try {
      const page = await api("GET", "/jobs?" + listQuery({ limit: PAGE_SIZE }));
      for (const job of page.jobs || []) {
        const row = list.rows.get(job.id);
        if (!row) continue;
        if ((ms(job.updated_at) || 0) >= (ms(row.job.updated_at) || 0)) {
          row.job = job;
          updateRow(row);
        }
      }
    } catch (e) {
      // the next event or poll tries again
    }
  }, HYDRATE_MS);

  function insertRow(job) {
    const row = makeRow(job);
    list.rows.set(job.id, row);
    row.tr.classList.add("fresh");
    $("jobs").tBodies[0].prepend(row.tr);
    $("jobs-empty").hidden = true;
    list.inserted++;
    return row;
  }

  // A job that appeared while this page is shown: on top of the first
  // page while there is room, else counted in the "newer jobs" notice.
  function maybeInsert(job) {
    if (!matchesFilter(job)) return null;
    if (list.cursors.length === 1 && list.inserted < MAX_INSERTED) {
      list.total++;
      updatePager();
      return insertRow(job);
    }
    list.hiddenNew++;
    const n = list.hiddenNew;
    text($("new-jobs-show"), `${fmtCount(n)} newer job${n === 1 ? "" : "s"} \u2014 show the newest`);
    $("new-jobs").hidden = false;
    return null;
  }

  // Applies one event to a job object (list row or detail view). A status
  // event older than what the job shows already is ignored.
  function applyEvent(job, type, d) {
    if (type === "status") {
      const at = ms(d.at);
      const shown = ms(job.updated_at);
      if (at !== null && shown !== null && at < shown) return;
      const from = job.status;
      job.status = d.status;
      if (d.attempt !== undefined && d.attempt !== null) job.attempt = d.attempt;
      if ("worker_id" in d) job.worker_id = d.worker_id;
      if (d.at) job.updated_at = d.at;
      if (d.status === "running" && from !== "running") {
        job.started_at = d.at;
        job.progress = null;
      }
      if (TERMINAL.has(d.status)) job.completed_at = job.completed_at || d.at;
      if (d.status === "pending") job.completed_at = null;
    } else if (type === "progress") {
      job.progress = { completed: d.completed, total: d.total, percent: d.percent };
    } else if (type === "complete") {
      job.status = d.status;
      if ("error_message" in d) job.error_message = d.error_message;
      job.completed_at = job.completed_at || d.at;
      if (d.status === "completed" && job.progress && job.progress.total)
        job.progress = { completed: job.progress.total, total: job.progress.total, percent: 100 };
    }
  }

  // Applies what the event stream queued, at most every RENDER_MS: each
  // touched row is updated once, however many events it got.
  const scheduleList = throttle(() => flushList(), RENDER_MS);

  function flushList() {
    if (!list.active) return;
    for (const [id, events] of list.queued) {
      let row = list.rows.get(id);
      for (const [type, d] of events) {
        if (!row) {
          if (type === "status" && d.status === "pending" && !d.from_status) {
            row = maybeInsert({
              id,
              pipeline_name: d.pipeline_name || "",
              status: "pending",
              attempt: 0,
              worker_id: null,
              created_at: d.at,
              updated_at: d.at,
              progress: null,
            });
            if (row) hydrate();
          }
          continue;
        }
        applyEvent(row.job, type, d);
      }
      if (row) updateRow(row);
    }
    list.queued.clear();
  }

  function onListEvent(type, d) {
    if (!d || !d.job_id) return;
    if (list.filter.pipeline && d.pipeline_name && d.pipeline_name !== list.filter.pipeline) return;
    const q = list.queued.get(d.job_id);
    if (q) q.push([type, d]);
    else list.queued.set(d.job_id, [[type, d]]);
    if (type === "status") {
      if (d.from_status && list.counts[d.from_status] > 0) list.counts[d.from_status]--;
      if (d.status) list.counts[d.status] = (list.counts[d.status] || 0) + 1;
      scheduleChart();
      resyncCounts();
      if (d.status === "running" || d.from_status === "running") refreshWorkers();
    }
    scheduleList();
  }

  // -- the list view: counts -------------------------------------------------------

  const scheduleChart = throttle(() => renderCounts(), RENDER_MS);

  function renderCounts() {
    const chart = $("counts-chart");
    const max = Math.max(1, ...STATUSES.map((s) => list.counts[s] || 0));
    const nodes = [];
    STATUSES.forEach((s, i) => {
      const n = list.counts[s] || 0;
      const y = 3 + i * 25;
      const g = svg("g", { class: "bar-row", "data-status": s });
      const title = svg("title");
      title.textContent = `${s}: ${fmtCount(n)} (show only ${s})`;
      const label = svg("text", { x: 0, y: y + 12 });
      label.textContent = s;
      const track = svg("rect", { class: "track", x: 78, y, width: 170, height: 16, rx: 3 });
      const w = n ? Math.max(2, (170 * n) / max) : 0;
      const bar = svg("rect", { class: "bar", "data-status": s, x: 78, y, width: w.toFixed(1), height: 16, rx: 3 });
      const count = svg("text", { class: "count", x: 254, y: y + 12, "data-count": s });
      count.textContent = fmtCount(n);
      g.append(title, label, track, bar, count);
      g.addEventListener("click", () => setFilters({ statuses: [s], pipeline: list.filter.pipeline }));
      nodes.push(g);
    });
    chart.replaceChildren(...nodes);
    text($("counts-scope"), list.filter.pipeline ? `pipeline ${list.filter.pipeline}` : "all pipelines");
  }

  async function loadCounts() {
    const pipeline = list.filter.pipeline;
    try {
      const totals = await Promise.all(
        STATUSES.map((s) => {
          const q = new URLSearchParams({ status: s, limit: "1" });
          if (pipeline) q.set("pipeline_name", pipeline);
          return api("GET", "/jobs?" + q.toString()).then((p) => p.total || 0);
        })
      );
      if (pipeline !== list.filter.pipeline) return;
      STATUSES.forEach((s, i) => (list.counts[s] = totals[i]));
      renderCounts();
    } catch (e) {
      // keep the last counts
    }
  }

  const resyncCounts = throttle(() => {
    if (list.active) loadCounts();
  }, COUNTS_MS);

  // -- workers -------------------------------------------------------------------

  async function loadWorkers() {
    let data;
    try {
      data = await api("GET", "/workers");
    } catch (e) {
      text($("workers-summary"), "(unavailable)");
      return;
    }
    const workers = (data && data.workers) || [];
    let busy = 0;
    let slots = 0;
    const trs = workers.map((w) => {
      busy += w.running || 0;
      slots += w.slots || 0;
      const bar = progressBar();
      bar.dataset.status = "running";
      bar.querySelector(".fill").style.width = (w.slots ? (100 * (w.running || 0)) / w.slots : 0) + "%";
      const execs = Array.isArray(w.executors) ? w.executors.join(", ") : String(w.executors || "");
      return el(
        "tr",
        { "data-worker-id": w.id },
        el("td", { class: "mono", text: w.id }),
        el("td", { text: w.host }),
        el("td", { class: "wrap", text: execs }),
        el("td", {}, el("span", { class: "slots" }, bar, el("span", { text: `${w.running || 0}/${w.slots || 0}` })))
      );
    });
    $("workers").tBodies[0].replaceChildren(...trs);
    $("workers-empty").hidden = workers.length > 0;
    text(
      $("workers-summary"),
      `${busy}/${slots} slots busy \u00b7 ${workers.length} worker${workers.length === 1 ? "" : "s"}`
    );
  }

  const refreshWorkers = throttle(() => loadWorkers(), 1500);

  // -- the list view: filters and paging -------------------------------------------

  function filtersFromHash() {
    const h = location.hash || "";
    const i = h.indexOf("?");
    const q = new URLSearchParams(i >= 0 ? h.slice(i + 1) : "");
    const statuses = (q.get("status") || "").split(",").filter((s) => STATUSES.includes(s));
    return { statuses, pipeline: (q.get("pipeline") || "").trim() };
  }

  function setFilters(f) {
    const q = new URLSearchParams();
    if (f.statuses.length) q.set("status", f.statuses.join(","));
    if (f.pipeline) q.set("pipeline", f.pipeline);
    const s = q.toString();
    const target = "#/" + (s ? "?" + s : "");
    if (location.hash !== target) location.hash = target;
    else route();
  }

  function filtersFromForm() {
    const statuses = [...document.querySelectorAll('#filters input[name="status"]:checked')].map((i) => i.value);
    return { statuses, pipeline: $("filter-pipeline").value.trim() };
  }

  function showFiltersInForm() {
    for (const box of document.querySelectorAll('#filters input[name="status"]'))
      box.checked = list.filter.statuses.includes(box.value);
    if (document.activeElement !== $("filter-pipeline")) $("filter-pipeline").value = list.filter.pipeline;
  }

  function openListStream() {
    if (list.live) list.live.close();
    const q = new URLSearchParams({ types: "status,progress,complete" });
    if (list.filter.pipeline) q.set("pipeline_name", list.filter.pipeline);
    setMode("connecting");
    list.live = new Live("/events?" + q.toString(), ["status", "progress", "complete"], {
      event: onListEvent,
      open() {
        stopListPolling();
        // Covers what happened between the first page read and the
        // stream's start.
        hydrate();
        resyncCounts();
      },
      fallback() {
        if (!list.poll)
          list.poll = setInterval(() => {
            loadPage();
            loadCounts();
          }, POLL_MS);
      },
    });
  }

  function stopListPolling() {
    clearInterval(list.poll);
    list.poll = null;
  }

  let listTimers = [];

  function showList() {
    leaveDetail();
    const f = filtersFromHash();
    const changed =
      !list.active ||
      f.pipeline !== list.filter.pipeline ||
      f.statuses.join(",") !== list.filter.statuses.join(",");
    $("list-view").hidden = false;
    $("detail-view").hidden = true;
    document.title = "orch dashboard";
    if (!changed) return;
    const pipelineChanged = !list.active || f.pipeline !== list.filter.pipeline;
    list.active = true;
    list.filter = f;
    list.cursors = [null];
    list.next = null;
    list.queued.clear();
    showFiltersInForm();
    if (pipelineChanged || !list.live) openListStream();
    loadPage();
    loadCounts();
    loadWorkers();
    if (!listTimers.length)
      listTimers = [setInterval(() => list.active && loadWorkers(), WORKERS_MS), setInterval(() => list.active && loadCounts(), COUNTS_IDLE_MS)];
  }

  function leaveList() {
    if (!list.active) return;
    list.active = false;
    if (list.live) list.live.close();
    list.live = null;
    stopListPolling();
    listTimers.forEach(clearInterval);
    listTimers = [];
    list.queued.clear();
  }

  // -- the submit form -------------------------------------------------------------

  let catalog = null; // name -> pipeline, when the api-node has a catalog
  let paramsTouched = false;

  function pipelineField() {
    return $("f-pipeline");
  }

  async function loadPipelines() {
    let data;
    try {
      data = await api("GET", "/pipelines");
    } catch (e) {
      return;
    }
    const names = $("pipeline-names");
    const pipelines = (data && data.pipelines) || [];
    names.replaceChildren(...pipelines.map((p) => el("option", { value: p.name })));
    if (!data || !data.catalog || !pipelines.length) {
      text($("f-pipeline-help"), "No pipeline catalog: any name runs on the mock executor.");
      return;
    }
    catalog = new Map(pipelines.map((p) => [p.name, p]));
    const select = el("select", { id: "f-pipeline", name: "pipeline_name", required: "" });
    for (const p of pipelines) select.append(el("option", { value: p.name, text: `${p.name} (${p.executor})` }));
    $("f-pipeline-slot").replaceChildren(select);
    select.addEventListener("change", describePipeline);
    describePipeline();
  }

  // Shows the chosen pipeline's parameters and, while the user has not
  // typed any, fills in their defaults.
  function describePipeline() {
    const p = catalog && catalog.get(pipelineField().value);
    if (!p) return;
    const props = (p.parameters && p.parameters.properties) || {};
    const required = new Set((p.parameters && p.parameters.required) || []);
    const lines = [p.description || ""];
    const defaults = {};
    for (const [name, s] of Object.entries(props)) {
      let line = `${name}: ${s.type || "any"}`;
      if (required.has(name)) line += ", required";
      if ("default" in s) {
        line += `, default ${JSON.stringify(s.default)}`;
        defaults[name] = s.default;
      }
      if (s.description) line += ` \u2014 ${s.description}`;
      lines.push(line);
    }
    text($("f-pipeline-help"), lines.filter(Boolean).join("\n"));
    if (!paramsTouched) $("f-parameters").value = JSON.stringify(defaults, null, 2);
  }

  function clearProblem() {
    $("f-problem").hidden = true;
    for (const id of ["f-pipeline", "f-parameters", "f-priority", "f-description"]) {
      const e = $(id);
      if (e) e.removeAttribute("aria-invalid");
    }
  }

  // A problem+json body: {type, title, status, detail, errors: [{field, message, rule}]}.
  function showProblem(p) {
    $("f-problem").hidden = false;
    text($("f-problem-title"), p.title || "The job was not accepted");
    text($("f-problem-detail"), p.detail || "");
    const fields = {
      pipeline_name: "f-pipeline",
      parameters: "f-parameters",
      priority: "f-priority",
      description: "f-description",
    };
    const items = (Array.isArray(p.errors) ? p.errors : []).map((e) => {
      const field = String(e.field || "");
      const top = field.split(/[.[]/)[0];
      if (fields[top] && $(fields[top])) $(fields[top]).setAttribute("aria-invalid", "true");
      return el(
        "li",
        { "data-field": field },
        el("code", { text: field || "(request)" }),
        `: ${e.message || ""}`,
        e.rule ? el("span", { class: "muted", text: ` (${e.rule})` }) : ""
      );
    });
    $("f-problem-errors").replaceChildren(...items);
  }

  async function submitJob(ev) {
    ev.preventDefault();
    clearProblem();
    text($("f-result"), "");
    const body = { pipeline_name: pipelineField().value.trim() };
    const raw = $("f-parameters").value.trim();
    try {
      body.parameters = raw ? JSON.parse(raw) : {};
    } catch (e) {
      showProblem({
        title: "Parameters are not valid JSON",
        detail: e.message,
        errors: [{ field: "parameters", message: "must be a JSON object", rule: "json" }],
      });
      return;
    }
    const prio = $("f-priority").value.trim();
    if (prio !== "") body.priority = Number(prio);
    const desc = $("f-description").value;
    if (desc.trim() !== "") body.description = desc;
    const button = $("f-submit");
    button.disabled = true;
    try {
      const job = await api("POST", "/jobs", body);
      const result = $("f-result");
      result.replaceChildren("Submitted ", el("a", { href: jobHref(job.id), class: "mono", "data-job-id": job.id, text: job.id.slice(0, 8) }));
      if (list.active && !list.rows.has(job.id)) maybeInsert(job);
    } catch (e) {
      showProblem(e.problem && typeof e.problem === "object" ? e.problem : { title: "The request failed", detail: e.message });
    } finally {
      button.disabled = false;
    }
  }

  // -- the detail view -------------------------------------------------------------

  const detail = {
    id: null,
    job: null,
    live: null,
    poll: null,
    seen: new Set(), // event ids in the history table
    logQueue: [],
    logCount: 0,
  };

  function leaveDetail() {
    if (detail.live) detail.live.close();
    detail.live = null;
    clearInterval(detail.poll);
    detail.poll = null;
    detail.id = null;
  }

  function field(dl, name, value, title) {
    if (value === null || value === undefined || value === "") return;
    const dd = el("dd", { text: value });
    if (title) dd.title = title;
    dl.append(el("dt", { text: name }), dd);
  }

  function renderJob() {
    const j = detail.job;
    if (!j) return;
    text($("d-id"), j.id);
    const badge = $("d-status");
    text(badge, j.status);
    badge.dataset.status = j.status;
    $("d-cancel-requested").hidden = !(j.cancel_requested && !TERMINAL.has(j.status));
    $("d-cancel").hidden = TERMINAL.has(j.status) || !!j.cancel_requested;
    const bar = $("d-progress");
    setProgress(bar, null, j);
    let p = "no progress reported";
    if (j.progress && j.progress.total)
      p = `${j.progress.completed} of ${j.progress.total} steps (${Number(j.progress.percent || 0).toFixed(1)}%)`;
    else if (j.status === "completed") p = "done";
    text($("d-progress-text"), p);
    $("d-error").hidden = !j.error_message;
    text($("d-error"), j.error_message || "");
    const dl = $("d-fields");
    dl.replaceChildren();
    field(dl, "pipeline", j.pipeline_name);
    field(dl, "executor", j.executor);
    field(dl, "description", j.description);
    field(dl, "priority", j.priority);
    field(dl, "attempt", j.max_attempts ? `${j.attempt} of ${j.max_attempts}` : j.attempt);
    field(dl, "worker", j.worker_id);
    field(dl, "waiting", j.status === "pending" ? j.waiting_reason : null);
    for (const [name, key] of [
      ["submitted", "created_at"],
      ["started", "started_at"],
      ["finished", "completed_at"],
      ["updated", "updated_at"],
      ["next attempt", "next_attempt_at"],
    ])
      field(dl, name, j[key] ? fmtTime(j[key]) : null, j[key]);
    field(dl, "timeout", j.timeout_seconds ? `${j.timeout_seconds} s` : null);
    text($("d-parameters"), JSON.stringify(j.parameters || {}, null, 2));
    document.title = `${j.status} \u00b7 ${j.pipeline_name} \u00b7 orch`;
  }

  function addHistory(d, id) {
    if (id && detail.seen.has(id)) return;
    if (id) detail.seen.add(id);
    const change = d.from_status ? `${d.from_status} \u2192 ${d.status}` : d.status;
    const tr = el(
      "tr",
      { "data-event-id": id || "" },
      el("td", { class: "num", text: id || "" }),
      el("td", { text: fmtTime(d.at), title: d.at || "" }),
      el("td", { text: change }),
      el("td", { class: "num", text: d.attempt === undefined || d.attempt === null ? "" : d.attempt }),
      el("td", { text: d.worker_id || "" }),
      el("td", { class: "msg", text: d.message || "" })
    );
    $("d-events").tBodies[0].append(tr);
  }

  function logLine(l, kind) {
    const cls = "line" + (l.stream === "stderr" ? " stderr" : "") + (kind ? " " + kind : "");
    return el(
      "span",
      { class: cls, "data-stream": l.stream || "" },
      el("span", { class: "ts", text: fmtTime(l.at) }),
      `${l.line === undefined ? "" : l.line}\n`
    );
  }

  // Appends the queued log lines; keeps the last MAX_LOG_LINES in the DOM.
  function flushLog() {
    if (!detail.logQueue.length) return;
    const pre = $("d-log");
    const follow = $("d-follow").checked;
    const lines = detail.logQueue.splice(0).slice(-MAX_LOG_LINES);
    const frag = document.createDocumentFragment();
    for (const l of lines) frag.append(logLine(l));
    pre.append(frag);
    detail.logCount += lines.length;
    while (detail.logCount > MAX_LOG_LINES && pre.firstChild) {
      pre.firstChild.remove();
      detail.logCount--;
    }
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  const scheduleDetail = throttle(() => {
    if (!detail.id) return;
    renderJob();
    flushLog();
  }, RENDER_MS);

  const refetchJob = throttle(async () => {
    const id = detail.id;
    if (!id) return;
    try {
      const job = await api("GET", "/jobs/" + encodeURIComponent(id));
      if (detail.id !== id) return;
      detail.job = job;
      renderJob();
      if (TERMINAL.has(job.status)) loadOutputs();
    } catch (e) {
      // shown state stays; the next event tries again
    }
  }, 500);

  function onDetailEvent(type, d, id) {
    if (!detail.job || d.job_id !== detail.id) return;
    if (type === "log") {
      detail.logQueue.push(d);
      if (detail.logQueue.length > 4 * MAX_LOG_LINES) detail.logQueue.splice(0, detail.logQueue.length - MAX_LOG_LINES);
    } else {
      if (type === "status") addHistory(d, id);
      applyEvent(detail.job, type, d);
      if (type === "status" || type === "complete") refetchJob();
      if (type === "complete") {
        // The server closes the stream after "complete"; do not let the
        // browser reconnect.
        if (detail.live) detail.live.close();
        detail.live = null;
        setMode("done", "finished");
      }
    }
    scheduleDetail();
  }

  async function loadOutputs() {
    const id = detail.id;
    try {
      const data = await api("GET", "/jobs/" + encodeURIComponent(id) + "/outputs");
      if (detail.id !== id) return;
      const files = (data && data.files) || [];
      const items = files.map((f) => {
        const href =
          "/jobs/" + encodeURIComponent(id) + "/outputs/" + String(f.path).split("/").map(encodeURIComponent).join("/");
        return el(
          "li",
          {},
          el("a", { href, class: "mono", text: f.path }),
          el("span", { class: "muted", text: `  ${fmtCount(f.size)} bytes` })
        );
      });
      if (data && data.truncated) items.push(el("li", { class: "muted", text: "(more files not listed)" }));
      $("d-outputs").replaceChildren(...items);
      $("d-outputs-card").hidden = items.length === 0;
    } catch (e) {
      $("d-outputs-card").hidden = true;
    }
  }

  // Polling, when the job's event stream is not available: the job, and
  // the last lines of its log.
  async function pollDetail() {
    const id = detail.id;
    if (!id) return;
    try {
      const job = await api("GET", "/jobs/" + encodeURIComponent(id));
      const raw = await api("GET", `/jobs/${encodeURIComponent(id)}/logs?tail=${MAX_LOG_LINES}`, undefined, "application/x-ndjson, application/json");
      if (detail.id !== id) return;
      detail.job = job;
      renderJob();
      const lines = [];
      for (const s of String(raw).split("\n")) {
        if (!s) continue;
        try {
          const l = JSON.parse(s);
          if (l.truncated) lines.push({ stream: "orch", line: `[${fmtCount(l.dropped_lines)} earlier lines dropped by the log cap]` });
          else lines.push(l);
        } catch (e) {
          // not a log line
        }
      }
      const pre = $("d-log");
      pre.replaceChildren(...lines.slice(-MAX_LOG_LINES).map((l) => logLine(l)));
      detail.logCount = pre.childNodes.length;
      if ($("d-follow").checked) pre.scrollTop = pre.scrollHeight;
      if (TERMINAL.has(job.status)) {
        clearInterval(detail.poll);
        detail.poll = null;
        loadOutputs();
      }
    } catch (e) {
      // try again on the next tick
    }
  }

  async function showDetail(id) {
    leaveList();
    leaveDetail();
    $("list-view").hidden = true;
    $("detail-view").hidden = false;
    detail.id = id;
    detail.job = null;
    detail.seen.clear();
    detail.logQueue = [];
    detail.logCount = 0;
    text($("d-id"), id);
    text($("d-status"), "");
    text($("d-cancel-result"), "");
    $("d-fields").replaceChildren();
    text($("d-parameters"), "");
    $("d-events").tBodies[0].replaceChildren();
    $("d-events-note").hidden = true;
    $("d-log").replaceChildren();
    $("d-outputs-card").hidden = true;
    $("d-cancel").hidden = true;
    $("d-error").hidden = true;
    $("d-log-link").href = "/jobs/" + encodeURIComponent(id) + "/logs";
    let job;
    try {
      job = await api("GET", "/jobs/" + encodeURIComponent(id));
    } catch (e) {
      if (detail.id !== id) return;
      $("d-error").hidden = false;
      text($("d-error"), e.status === 404 ? `No job with id ${id}.` : `Could not load the job: ${e.message}`);
      return;
    }
    if (detail.id !== id) return;
    detail.job = job;
    renderJob();
    if (TERMINAL.has(job.status)) loadOutputs();
    setMode("connecting");
    detail.live = new Live("/jobs/" + encodeURIComponent(id) + "/events", ["status", "progress", "log", "complete"], {
      event: onDetailEvent,
      open() {
        clearInterval(detail.poll);
        detail.poll = null;
        $("d-events-note").hidden = true;
      },
      fallback() {
        $("d-events-note").hidden = false;
        text($("d-events-note"), "The event history needs the job's event stream, which is not available; the job and its log are polled instead.");
        if (!detail.poll) {
          pollDetail();
          detail.poll = setInterval(pollDetail, POLL_MS);
        }
      },
    });
  }

  async function cancelJob() {
    const id = detail.id;
    const button = $("d-cancel");
    button.disabled = true;
    try {
      const job = await api("POST", "/jobs/" + encodeURIComponent(id) + "/cancel");
      if (detail.id !== id) return;
      if (job && job.id) {
        detail.job = job;
        renderJob();
      }
      text($("d-cancel-result"), job && job.status === "cancelled" ? "Cancelled." : "Cancel requested; the worker stops the job.");
    } catch (e) {
      text($("d-cancel-result"), e.status === 409 ? `Not cancelled: ${e.message}` : `Cancel failed: ${e.message}`);
      refetchJob();
    } finally {
      button.disabled = false;
    }
  }

  // -- routing -------------------------------------------------------------------

  function route() {
    const h = location.hash || "#/";
    const m = /^#\/jobs\/([^/?#]+)$/.exec(h);
    if (m) showDetail(decodeURIComponent(m[1]));
    else showList();
  }

  function init() {
    $("submit-form").addEventListener("submit", submitJob);
    $("f-parameters").addEventListener("input", () => (paramsTouched = true));
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    for (const box of document.querySelectorAll('#filters input[name="status"]'))
      box.addEventListener("change", () => setFilters(filtersFromForm()));
    const typed = debounce(() => setFilters(filtersFromForm()), 400);
    $("filter-pipeline").addEventListener("input", typed);
    $("filter-pipeline").addEventListener("change", () => setFilters(filtersFromForm()));
    $("filter-clear").addEventListener("click", () => {
      $("filter-pipeline").value = "";
      setFilters({ statuses: [], pipeline: "" });
    });
    $("page-older").addEventListener("click", () => {
      if (!list.next) return;
      list.cursors.push(list.next);
      loadPage();
    });
    $("page-newer").addEventListener("click", () => {
      if (list.cursors.length <= 1) return;
      list.cursors.pop();
      loadPage();
    });
    $("new-jobs-show").addEventListener("click", () => {
      list.cursors = [null];
      loadPage();
    });
    $("d-cancel").addEventListener("click", cancelJob);
    window.addEventListener("hashchange", route);
    api("GET", "/version")
      .then((v) => text($("version"), v && v.version ? "v" + v.version : ""))
      .catch(() => {});
    loadPipelines();
    renderCounts();
    route();
  }

  init();
})();
