// The dashboard (GET /ui) end to end, in Debian's chromium driven by
// playwright-core: a throwaway PostgreSQL (scripts/pg.sh), a real api-node
// and a real worker-node with one slot and mock jobs of a few seconds.
//
// 1. /ui loads with no request to any other origin and no script error; its
//    header says the updates arrive live (Server-Sent Events).
// 2. A job submitted through the form goes pending -> running -> completed
//    in the jobs table without a reload (a MutationObserver records each
//    status the row shows). While a blocker job holds the only slot, the
//    new job is visibly pending first.
// 3. A bad submission shows the problem+json field errors in the form;
//    markup in a description is shown as text, never run.
// 4. The job's page shows its events, log lines and full progress; a long
//    job is cancelled with the cancel button.
// 5. The static files have their media types, revalidate with ETags, and
//    no other name is served; /docs renders.
// 6. Screenshots go to OUT_DIR (and to docs/img when UPDATE_DOCS_SCREENSHOTS=1).
//
// Usage: node dashboard_test.mjs API_NODE_BIN WORKER_NODE_BIN [OUT_DIR]
// Every wait is a condition with a deadline; nothing sleeps a fixed time.
// Every process and folder it made is removed at the end, also on failure,
// and by a watchdog if this process is killed.

import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const [apiBin, workerBin, outArg] = process.argv.slice(2);
if (!apiBin || !workerBin) {
  console.error("usage: node dashboard_test.mjs API_NODE_BIN WORKER_NODE_BIN [OUT_DIR]");
  process.exit(2);
}
const outDir = resolve(outArg || join(repo, "build", "tests", "browser"));
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

// -- bookkeeping and cleanup ----------------------------------------------------

const children = [];
let tmp = null;
let pgDir = null;
let browser = null;
let results = { passed: 0, failed: 0 };

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

async function stopChild(child, name) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const gone = await waitFor(() => child.exitCode !== null || child.signalCode !== null, 15000, `${name} to exit`).then(
    () => true,
    () => false
  );
  if (!gone) child.kill("SIGKILL");
}

let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (browser) await browser.close().catch(() => {});
  for (const { child, name } of children.slice().reverse()) await stopChild(child, name);
  if (pgDir) spawnSync(join(repo, "scripts", "pg.sh"), ["stop", pgDir], { stdio: "ignore" });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}

for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, () => {
    cleanup().finally(() => process.exit(130));
  });

// A detached shell that cleans up if this process dies without doing so:
// it kills the children listed in TMP/pids, stops PostgreSQL, removes TMP.
function startWatchdog() {
  const script = `
    while kill -0 "$OWNER" 2>/dev/null; do sleep 1; done
    [ -d "$TMP" ] || exit 0
    for p in $(cat "$TMP/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    "$PG_SH" stop "$TMP/pg" >/dev/null 2>&1
    rm -rf "$TMP"`;
  const dog = spawn("bash", ["-c", script], {
    detached: true,
    stdio: "ignore",
    env: { PATH: process.env.PATH, OWNER: String(process.pid), TMP: tmp, PG_SH: join(repo, "scripts", "pg.sh") },
  });
  dog.unref();
}

// -- helpers --------------------------------------------------------------------

// An error that ends a waitFor at once (a process died).
function fatal(msg) {
  const e = new Error(msg);
  e.fatal = true;
  return e;
}

async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ": " + last.message : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function start(name, bin, env) {
  const logFile = join(tmp, `${name}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(bin, [], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", fd, fd], cwd: tmp });
  child.on("error", (e) => {
    child.failure = e.message;
    log(`${name}: ${e.message}`);
  });
  children.push({ child, name, logFile });
  appendFileSync(join(tmp, "pids"), `${child.pid}\n`);
  return child;
}

function tail(file, n = 40) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-n).join("\n");
  } catch (e) {
    return "(no log)";
  }
}

let base = "";
async function http(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // not JSON
  }
  return { status: res.status, json, text, headers: res.headers };
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.passed++;
    log(`ok    ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.failed++;
    log(`FAIL  ${name}: ${e.stack || e}`);
    throw e;
  }
}

// -- the system -------------------------------------------------------------------

async function startSystem() {
  tmp = mkdtempSync(join(tmpdir(), "orch-browser-"));
  chmodSync(tmp, 0o755); // the postgres user must reach the cluster's folder
  pgDir = join(tmp, "pg");
  mkdirSync(join(tmp, "work"));
  startWatchdog();
  const pgPort = await freePort();
  const pg = spawnSync(join(repo, "scripts", "pg.sh"), ["start", pgDir, String(pgPort)], { encoding: "utf8" });
  if (pg.status !== 0) throw new Error(`PostgreSQL did not start: ${pg.stderr}`);
  const url = pg.stdout.trim().split("\n").pop();
  const httpPort = await freePort();
  const schedPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  const api = start("api-node", apiBin, {
    DATABASE_URL: url,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(httpPort),
    HTTP_THREADS: "2",
    DB_POOL_SIZE: "2",
    SCHEDULER_HOST: "127.0.0.1",
    SCHEDULER_PORT: String(schedPort),
    PIPELINES_FILE: "",
    WORK_ROOT: join(tmp, "work"),
    LOG_LEVEL: "info",
  });
  await waitFor(
    async () => {
      if (api.failure || api.exitCode !== null) throw fatal(`api-node exited:\n${tail(children[0].logFile)}`);
      return (await http("GET", "/ready")).status === 200;
    },
    60000,
    "GET /ready"
  );
  const worker = start("worker-node", workerBin, {
    SCHEDULER_HOST: "127.0.0.1",
    SCHEDULER_PORT: String(schedPort),
    WORKER_ID: "browser-w1",
    WORKER_SLOTS: "1",
    MOCK_MIN_SECONDS: "2",
    MOCK_MAX_SECONDS: "3",
    MOCK_SUCCESS_RATE: "1",
    METRICS_PORT: "0",
    WORK_ROOT: join(tmp, "work"),
    LOG_LEVEL: "info",
  });
  await waitFor(
    async () => {
      if (worker.failure || worker.exitCode !== null) throw fatal(`worker-node did not start: ${worker.failure || tail(children[1].logFile)}`);
      return ((await http("GET", "/workers")).json?.workers || []).some((w) => w.id === "browser-w1");
    },
    30000,
    "the worker to register"
  );
  log(`system up: ${base} (PostgreSQL ${url})`);
}

// -- the test ---------------------------------------------------------------------

async function main() {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/install-deps.sh (Debian package chromium)`);
  await startSystem();
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: "light" });
  const page = await context.newPage();
  const foreign = [];
  const errors = [];
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(base + "/") && !u.startsWith("data:")) foreign.push(u);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  // Failed requests are checked one by one below; only the bad
  // submissions of the form may fail (422).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    const expected = r.status() === 422 && r.request().method() === "POST" && r.url() === base + "/jobs";
    if (r.status() >= 400 && !expected) errors.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on("dialog", (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  const wait = (fn, arg, ms, what) =>
    page.waitForFunction(fn, arg, { timeout: ms, polling: 100 }).catch((e) => {
      throw new Error(`${what}: ${e.message.split("\n")[0]}`);
    });

  await step("GET /ui loads, and updates arrive as Server-Sent Events", async () => {
    const res = await page.goto(base + "/ui");
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-type"], /^text\/html/);
    assert.match(res.headers()["content-security-policy"] || "", /default-src 'none'/);
    await wait(() => document.querySelector("#live")?.dataset.mode === "live", null, 20000,
      "the header's live indicator to say live (is GET /events there?)");
    await wait(() => document.querySelector('#workers tr[data-worker-id="browser-w1"]'), null, 15000, "the worker in the workers table");
    await page.evaluate(() => {
      window.__notReloaded = true;
      window.__statusLog = {};
      const record = (tr) => {
        const id = tr.dataset.jobId;
        const s = tr.querySelector('[data-field="status"]')?.textContent;
        const seen = (window.__statusLog[id] ||= []);
        if (s && seen[seen.length - 1] !== s) seen.push(s);
      };
      const tbody = document.querySelector("#jobs tbody");
      new MutationObserver((muts) => {
        for (const m of muts) {
          const tr = (m.target.nodeType === 1 ? m.target : m.target.parentElement)?.closest("tr[data-job-id]");
          if (tr) record(tr);
          for (const n of m.addedNodes) if (n.nodeType === 1 && n.matches("tr[data-job-id]")) record(n);
        }
      }).observe(tbody, { subtree: true, childList: true, characterData: true });
      tbody.querySelectorAll("tr[data-job-id]").forEach(record);
    });
  });

  await step("a bad submission shows the problem's field errors", async () => {
    await page.fill("#f-pipeline", "no spaces allowed");
    await page.fill("#f-parameters", "{}");
    await page.click("#f-submit");
    await wait(() => document.querySelector('#f-problem-errors li[data-field="pipeline_name"]'), null, 10000, "a pipeline_name error");
    assert.equal(await page.getAttribute("#f-pipeline", "aria-invalid"), "true");
    await page.fill("#f-parameters", "{not json");
    await page.fill("#f-pipeline", "mock");
    await page.click("#f-submit");
    await wait(() => document.querySelector('#f-problem-errors li[data-field="parameters"]'), null, 5000, "a parameters error");
  });

  // Markup in user data must show as text: no <b> or <img> element may appear.
  const description = 'sample S1 <b>not bold</b> <img src=x onerror="alert(1)">';
  let jobId;
  await step("a job submitted through the form goes pending -> running -> completed live", async () => {
    // A blocker holds the only slot, so the form's job is pending first.
    const blocker = await http("POST", "/jobs", {
      pipeline_name: "mock",
      parameters: { mock_duration_ms: 3000 },
      description: "blocker",
    });
    assert.equal(blocker.status, 201, blocker.text);
    await waitFor(async () => (await http("GET", `/jobs/${blocker.json.id}`)).json?.status === "running", 20000, "the blocker to run");
    await page.fill("#f-pipeline", "mock");
    await page.fill("#f-parameters", JSON.stringify({ sample: "S1", mock_duration_ms: 2500 }));
    await page.fill("#f-priority", "5");
    await page.fill("#f-description", description);
    await page.click("#f-submit");
    await wait(() => document.querySelector("#f-result a[data-job-id]"), null, 10000, "the submitted job's link");
    assert.equal(await page.isHidden("#f-problem"), true);
    jobId = await page.getAttribute("#f-result a[data-job-id]", "data-job-id");
    const cell = `#jobs tr[data-job-id="${jobId}"] [data-field="status"]`;
    await wait((sel) => document.querySelector(sel)?.textContent === "completed", cell, 45000, "the row to show completed");
    const seen = await page.evaluate((id) => window.__statusLog[id], jobId);
    log(`statuses shown for ${jobId}: ${seen.join(" -> ")}`);
    const order = ["pending", "running", "completed"].map((s) => seen.indexOf(s));
    assert.ok(order.every((i) => i >= 0) && order[0] < order[1] && order[1] < order[2], `statuses seen: ${seen.join(", ")}`);
    assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page reloaded");
    const shown = await page.textContent(`#jobs tr[data-job-id="${jobId}"] td.desc`);
    assert.equal(shown, description, "the description is shown as text");
    assert.equal(await page.locator("#jobs td.desc *").count(), 0, "markup from a description became an element");
    await wait(() => Number(document.querySelector('[data-count="completed"]')?.textContent.replace(/,/g, "")) >= 2, null, 15000,
      "the chart to count both completed jobs");
  });

  // A failed and a running job make the screenshot say more.
  await http("POST", "/jobs", { pipeline_name: "align", parameters: { mock_fail: true, mock_error: "reference genome not found", mock_duration_ms: 300 }, priority: 10, description: "fails on purpose" });
  await http("POST", "/jobs", { pipeline_name: "call-variants", parameters: { sample: "S2", mock_duration_ms: 20000 }, priority: 3, description: "long run" });

  await step("the job page shows events, log lines and full progress", async () => {
    await page.click(`#jobs tr[data-job-id="${jobId}"] a`);
    await wait(() => !document.querySelector("#detail-view").hidden, null, 5000, "the job page");
    assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page reloaded");
    await wait(() => document.querySelector("#d-status")?.textContent === "completed", null, 10000, "status completed");
    await wait(() => document.querySelectorAll("#d-log .line").length >= 2, null, 15000, "log lines");
    await wait(() => document.querySelectorAll("#d-events tbody tr").length >= 3, null, 15000, "the event history");
    const width = await page.evaluate(() => document.querySelector("#d-progress .fill").style.width);
    assert.equal(width, "100%");
    const params = JSON.parse(await page.textContent("#d-parameters"));
    assert.equal(params.sample, "S1");
    const lines = await page.$$eval("#d-log .line", (ls) => ls.map((l) => l.textContent));
    log(`log: ${lines.length} lines, e.g. ${JSON.stringify(lines[0])}`);
    mkdirSync(outDir, { recursive: true });
    await page.screenshot({ path: join(outDir, "dashboard-job.png"), fullPage: true });
  });

  await step("the list view, with a screenshot", async () => {
    await page.click('a[href="#/"]');
    await wait(() => !document.querySelector("#list-view").hidden, null, 5000, "the list");
    await wait(() => document.querySelectorAll('#jobs tr[data-status="running"]').length >= 1 &&
      document.querySelectorAll('#jobs tr[data-status="failed"]').length >= 1, null, 30000, "a running and a failed job");
    await wait(() => document.querySelector("#live")?.dataset.mode === "live", null, 10000, "live updates");
    await page.screenshot({ path: join(outDir, "dashboard.png"), fullPage: true });
  });

  await step("a running job is cancelled with the cancel button", async () => {
    const running = await page.getAttribute('#jobs tr[data-status="running"]', "data-job-id");
    await page.click(`#jobs tr[data-job-id="${running}"] a`);
    await wait(() => !document.querySelector("#d-cancel").hidden, null, 10000, "the cancel button");
    await page.click("#d-cancel");
    await wait(() => document.querySelector("#d-status")?.textContent === "cancelled", null, 20000, "status cancelled");
    assert.equal(await page.isHidden("#d-cancel"), true);
    const again = await http("POST", `/jobs/${running}/cancel`);
    assert.equal(again.status, 409);
  });

  await step("static files: media types, ETag revalidation, 404 for other names", async () => {
    for (const [path, type] of [
      ["/ui", "text/html"],
      ["/ui/app.js", "text/javascript"],
      ["/ui/app.css", "text/css"],
      ["/docs", "text/html"],
      ["/docs/init.js", "text/javascript"],
    ]) {
      const r = await http("GET", path);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers.get("content-type").startsWith(type), `${path}: ${r.headers.get("content-type")}`);
      assert.equal(r.headers.get("cache-control"), "no-cache", path);
      const again = await fetch(base + path, { headers: { "If-None-Match": r.headers.get("etag") } });
      assert.equal(again.status, 304, path);
    }
    for (const path of ["/ui/missing.js", "/ui/..%2F..%2Fetc%2Fpasswd", "/docs/.stamp", "/docs/..%2Fopenapi.json"])
      assert.equal((await http("GET", path)).status, 404, path);
    assert.equal((await http("POST", "/ui")).status, 405);
  });

  await step("GET /docs renders the OpenAPI document offline", async () => {
    await page.goto(base + "/docs");
    await wait(() => document.querySelectorAll(".opblock, tr td code").length > 10, null, 20000, "the operations");
    const swagger = await page.evaluate(() => !!document.querySelector(".swagger-ui"));
    log(`/docs: ${swagger ? "Swagger UI" : "the fallback list (no swagger-ui-dist)"}`);
  });

  assert.deepEqual(foreign, [], "requests to other origins");
  assert.deepEqual(errors, [], "script errors");

  if (process.env.UPDATE_DOCS_SCREENSHOTS === "1") {
    mkdirSync(join(repo, "docs", "img"), { recursive: true });
    for (const f of ["dashboard.png", "dashboard-job.png"]) copyFileSync(join(outDir, f), join(repo, "docs", "img", f));
    log("copied the screenshots to docs/img");
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (!results.failed) log(`FAIL  ${e.stack || e}`);
  for (const c of children) log(`--- last lines of ${c.name}.log ---\n${tail(c.logFile)}`);
} finally {
  await cleanup();
}
console.log(`browser: ${results.passed} passed, ${results.failed} failed`);
process.exit(code);
