// Real pipelines through the REST API (issue 7): a catalog with the
// scatter-gather Snakemake example, command pipelines and a pipeline no
// worker can run; real api-node and worker-node processes, real Snakemake.

#include "common.hpp"

#include "orch/sha256.hpp"

#include <dirent.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace orch::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

// The test catalog: the example Snakefile, plus pipelines for the tests.
std::string write_catalog(const std::string& dir) {
  auto snakefile = std::string{ORCH_SOURCE_DIR}
                   + "/examples/scatter-gather/Snakefile";
  auto path = dir + "/pipelines.yaml";
  std::ofstream out{path};
  out << R"(pipelines:
  - name: scatter-gather
    executor: snakemake
    snakemake:
      snakefile: )"
      << snakefile << R"(
      cores: 2
    parameters:
      batch_count: {type: integer, default: 5, min: 1, max: 12}
      fail_batch: {type: integer, default: -1, min: -1, max: 11}
      delay_seconds: {type: number, default: 0, min: 0, max: 60}
  - name: echo
    executor: command
    command:
      argv: ["printf", "%s\n", "{text}"]
    parameters:
      text: {type: string, required: true, max_length: 200}
  - name: leak
    executor: command
    command:
      argv: ["ln", "-s", "/etc/passwd", "leak"]
  - name: serial
    executor: command
    max_concurrent: 1
    command:
      argv: ["sleep", "{seconds}"]
    parameters:
      seconds: {type: number, default: 0.5}
  - name: nf
    executor: nextflow
    nextflow:
      pipeline: hello
  - name: stubborn
    executor: command
    command:
      argv: ["sh", "-c", "trap '' TERM; echo ready-{tag}; sleep 300 & wait; sleep 300"]
    parameters:
      tag: {type: string, pattern: "[a-z0-9]+", required: true}
  - name: nf-hello
    executor: nextflow
    nextflow:
      pipeline: )" << dir << R"(/main.nf
    parameters:
      greeting: {type: string, default: hello}
  - name: mock
    executor: mock
)";
  std::ofstream{dir + "/main.nf"} << R"(
params.greeting = 'hello'
process SAY {
  input: val x
  output: path 'out.txt'
  publishDir '.', mode: 'copy'
  script:
  """
  echo "${x} ${params.greeting}" > out.txt
  """
}
workflow { SAY(Channel.of('a')) }
)";
  return path;
}

// Command lines of the live (non-zombie) processes whose command line
// contains `needle`.
std::vector<std::string> processes_with(const std::string& needle) {
  std::vector<std::string> result;
  std::error_code err;
  for (auto& entry : fs::directory_iterator{"/proc", err}) {
    auto name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])))
      continue;
    std::ifstream stat{entry.path() / "stat"};
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()
        || line[close + 2] == 'Z')
      continue;
    std::ifstream cmd{entry.path() / "cmdline"};
    std::string args{std::istreambuf_iterator<char>{cmd}, {}};
    for (auto& c : args)
      if (c == '\0')
        c = ' ';
    if (args.find(needle) != std::string::npos)
      result.push_back(args);
  }
  return result;
}

class pipelines : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("orch-pipelines");
    work_ = dir_ + "/work";
    fs::create_directories(work_);
    catalog_ = write_catalog(dir_);
    db_ = fresh_database();
    procs_ = std::make_unique<orch_cluster>(db_);
  }

  void TearDown() override {
    procs_.reset();
    remove_tree(dir_);
  }

  std::map<std::string, std::string> env() const {
    return {{"PIPELINES_FILE", catalog_}, {"WORK_ROOT", work_}};
  }

  api_node& start_api(const std::string& name = "api") {
    return procs_->start_api(name, env());
  }

  void start_worker(const std::string& id, const api_node& api, int slots) {
    auto e = env();
    e["WORKER_EXECUTORS"] = "mock,command,snakemake";
    e["CANCEL_GRACE_SECONDS"] = "5";
    procs_->start_worker(id, api, slots, e);
  }

  json wait_status(http_client& c, const std::string& id,
                   const std::set<std::string>& wanted,
                   std::chrono::milliseconds timeout = 90s) {
    json last;
    EXPECT_TRUE(wait_until(
      [&] {
        last = get_job(c, id);
        return wanted.count(last.value("status", "")) > 0;
      },
      timeout, "job " + id + " to reach the wanted status"))
      << last.dump();
    return last;
  }

  std::string dir_;
  std::string work_;
  std::string catalog_;
  std::string db_;
  std::unique_ptr<orch_cluster> procs_;
};

} // namespace

TEST_F(pipelines, scatter_gather_completes_with_progress_logs_and_report) {
  auto& api = start_api();
  start_worker("w1", api, 2);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "scatter-gather"},
                       {"parameters", {{"batch_count", 6}}}});
  auto job = wait_status(c, id, {"completed", "failed"});
  ASSERT_EQ(job["status"], "completed") << job.dump();
  EXPECT_EQ(job["executor"], "snakemake");
  // Defaults are filled in and stored.
  EXPECT_EQ(job["parameters"]["fail_batch"], -1);
  ASSERT_TRUE(job["progress"].is_object()) << job.dump();
  EXPECT_EQ(job["progress"]["percent"], 100.0);
  EXPECT_EQ(job["progress"]["completed"], job["progress"]["total"]);
  EXPECT_EQ(job["outputs_url"], "/jobs/" + id + "/outputs");
  // The outputs: every batch, its statistics, and the report.
  auto list = c.get("/jobs/" + id + "/outputs");
  ASSERT_EQ(list.status, 200) << list.body;
  auto files = body_json(list)["files"];
  std::map<std::string, json> by_path;
  for (auto& f : files)
    by_path[f["path"]] = f;
  ASSERT_EQ(by_path.count("report.json"), 1u) << list.body;
  EXPECT_EQ(by_path.count("batches/batch_5.csv"), 1u);
  EXPECT_EQ(by_path.count("stats/batch_5.json"), 1u);
  for (auto& [path, f] : by_path)
    EXPECT_EQ(path.find(".snakemake"), std::string::npos) << path;
  auto report = c.get("/jobs/" + id + "/outputs/report.json");
  ASSERT_EQ(report.status, 200);
  EXPECT_EQ(report.header("content-type").rfind("application/json", 0), 0u);
  // Outputs are user data on the dashboard's origin: sandboxed, not sniffed.
  EXPECT_EQ(report.header("content-security-policy").rfind("sandbox", 0), 0u);
  EXPECT_EQ(report.header("x-content-type-options"), "nosniff");
  orch::sha256 h;
  h.update(report.body);
  EXPECT_EQ(h.hex_digest(), by_path["report.json"]["sha256"]);
  EXPECT_EQ(by_path["report.json"]["size"], report.body.size());
  auto r = json::parse(report.body);
  EXPECT_EQ(r["batch_count"], 6);
  EXPECT_EQ(r["total_rows"], 600);
  ASSERT_EQ(r["batches"].size(), 6u);
  double sum = 0;
  for (auto& b : r["batches"]) {
    EXPECT_EQ(b["rows"], 100);
    sum += b["sum"].get<double>();
  }
  EXPECT_DOUBLE_EQ(r["sum"].get<double>(), sum);
  // Snakemake's output, streamed line by line, and its log file attached.
  auto logs = c.get("/jobs/" + id + "/logs");
  ASSERT_EQ(logs.status, 200);
  EXPECT_EQ(logs.header("content-type").rfind("text/plain", 0), 0u);
  EXPECT_NE(logs.body.find("steps (100%) done"), std::string::npos)
    << logs.body;
  auto tail = c.request("GET", "/jobs/" + id + "/logs?tail=3", "",
                        {{"Accept", "application/json"}});
  ASSERT_EQ(tail.status, 200);
  std::istringstream in{tail.body};
  size_t n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    auto x = json::parse(line);
    EXPECT_TRUE(x.contains("at") && x.contains("stream") && x.contains("line"))
      << line;
  }
  EXPECT_EQ(n, 3u);
  auto snakelog = c.get("/jobs/" + id + "/logs?stream=snakemake-log");
  EXPECT_NE(snakelog.body.find("steps (100%) done"), std::string::npos);
}

TEST_F(pipelines, a_failing_rule_fails_the_job_with_the_rule_error) {
  auto& api = start_api();
  start_worker("w1", api, 2);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "scatter-gather"},
                       {"parameters", {{"batch_count", 3}, {"fail_batch", 2}}}});
  auto job = wait_status(c, id, {"completed", "failed"});
  ASSERT_EQ(job["status"], "failed") << job.dump();
  auto error = job["error_message"].get<std::string>();
  EXPECT_NE(error.find("Error in rule ANALYZE"), std::string::npos) << error;
  EXPECT_NE(error.find("simulated analysis failure"), std::string::npos)
    << error;
}

TEST_F(pipelines, cancel_mid_run_leaves_no_snakemake_process_behind) {
  auto& api = start_api();
  start_worker("w1", api, 2);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "scatter-gather"},
                       {"parameters",
                        {{"batch_count", 4}, {"delay_seconds", 30}}}});
  ASSERT_TRUE(wait_until(
    [&] {
      auto j = get_job(c, id);
      return j["status"] == "running" && j["progress"].is_object();
    },
    60s, "the workflow to run and report progress"));
  ASSERT_FALSE(processes_with(id).empty()) << "snakemake is not running";
  auto r = c.request("POST", "/jobs/" + id + "/cancel");
  ASSERT_EQ(r.status, 200) << r.body;
  auto job = wait_status(c, id, {"cancelled", "completed", "failed"}, 30s);
  EXPECT_EQ(job["status"], "cancelled");
  // Reported only once the process group is gone.
  EXPECT_TRUE(processes_with(id).empty())
    << "left behind: " << processes_with(id).front();
}

TEST_F(pipelines, submissions_are_checked_against_the_catalog) {
  auto& api = start_api();
  http_client c{api.http_port};
  auto expect_422 = [&](const json& body, const std::string& field,
                        const std::string& rule) {
    auto r = c.post_json("/jobs", body.dump());
    ASSERT_EQ(r.status, 422) << body.dump() << " -> " << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json");
    auto p = body_json(r);
    ASSERT_FALSE(p["errors"].empty());
    EXPECT_EQ(p["errors"][0]["field"], field) << r.body;
    EXPECT_EQ(p["errors"][0]["rule"], rule) << r.body;
  };
  auto sg = [](json params) {
    return json{{"pipeline_name", "scatter-gather"},
                {"parameters", std::move(params)}};
  };
  expect_422(sg({{"batch_count", 13}}), "parameters.batch_count", "max");
  expect_422(sg({{"batch_count", 0}}), "parameters.batch_count", "min");
  expect_422(sg({{"batch_count", "five"}}), "parameters.batch_count", "type");
  expect_422(sg({{"batch_count", 2.5}}), "parameters.batch_count", "type");
  expect_422(sg({{"batch_cuont", 3}}), "parameters.batch_cuont", "unknown");
  expect_422({{"pipeline_name", "echo"}}, "parameters.text", "required");
  expect_422({{"pipeline_name", "no-such-pipeline"}}, "pipeline_name",
             "catalog");
  // Nothing refused was stored.
  EXPECT_EQ(count_jobs(c, "pending,running,completed,failed,cancelled"), 0);
  // The catalog is listed with JSON schemas.
  auto all = body_json(c.get("/pipelines"));
  EXPECT_EQ(all["pipelines"].size(), 8u);
  auto one = c.get("/pipelines/scatter-gather");
  ASSERT_EQ(one.status, 200);
  auto p = body_json(one);
  EXPECT_EQ(p["executor"], "snakemake");
  EXPECT_EQ(p["parameters"]["properties"]["batch_count"]["maximum"], 12);
  EXPECT_EQ(p["parameters"]["properties"]["batch_count"]["default"], 5);
  EXPECT_EQ(c.get("/pipelines/nope").status, 404);
}

TEST_F(pipelines, command_arguments_are_never_interpreted_by_a_shell) {
  auto& api = start_api();
  start_worker("w1", api, 2);
  http_client c{api.http_port};
  auto marker = dir_ + "/pwned";
  auto text = "x; touch " + marker + " $(touch " + marker + ")";
  auto id = submit(c, {{"pipeline_name", "echo"},
                       {"parameters", {{"text", text}}}});
  auto job = wait_status(c, id, {"completed", "failed"});
  ASSERT_EQ(job["status"], "completed") << job.dump();
  auto logs = c.get("/jobs/" + id + "/logs?stream=stdout");
  EXPECT_EQ(logs.body, text + "\n");
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(pipelines, outputs_never_leave_the_work_directory) {
  auto& api = start_api();
  start_worker("w1", api, 1);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "leak"}});
  auto job = wait_status(c, id, {"completed", "failed"});
  ASSERT_EQ(job["status"], "completed") << job.dump();
  // The symlink to /etc/passwd is neither listed nor served.
  auto list = body_json(c.get("/jobs/" + id + "/outputs"));
  EXPECT_TRUE(list["files"].empty()) << list.dump();
  auto base = "/jobs/" + id + "/outputs/";
  EXPECT_EQ(c.get(base + "leak").status, 404);
  EXPECT_EQ(c.get(base + "../../../../etc/passwd").status, 404);
  EXPECT_EQ(c.get(base + "%2e%2e/%2e%2e/%2e%2e/etc/passwd").status, 404);
  EXPECT_EQ(c.get(base + "%2Fetc%2Fpasswd").status, 404);
  EXPECT_EQ(c.get(base + "missing.txt").status, 404);
  // A job that has not finished has no outputs yet.
  auto pending = submit(c, {{"pipeline_name", "nf"}});
  auto r = c.get("/jobs/" + pending + "/outputs");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(body_json(r)["job_status"], "pending");
}

TEST_F(pipelines, a_job_no_worker_can_run_waits_and_says_why) {
  auto& api = start_api();
  start_worker("w1", api, 2);
  http_client c{api.http_port};
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                         "the worker to register"));
  auto id = submit(c, {{"pipeline_name", "nf"}});
  // Other work still runs meanwhile.
  auto other = submit(c, {{"pipeline_name", "mock"},
                          {"parameters", succeeding(10)}});
  wait_status(c, other, {"completed"});
  auto job = get_job(c, id);
  EXPECT_EQ(job["status"], "pending");
  EXPECT_EQ(job["waiting_reason"],
            "no connected worker can run executor nextflow");
  auto workers = body_json(c.get("/workers"))["workers"];
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0]["executors"],
            json::array({"mock", "command", "snakemake"}));
}

TEST_F(pipelines, max_concurrent_holds_across_api_nodes) {
  auto& a = start_api("a");
  auto& b = start_api("b");
  start_worker("wa", a, 4);
  start_worker("wb", b, 4);
  http_client ca{a.http_port};
  http_client cb{b.http_port};
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(submit(ca, {{"pipeline_name", "serial"}}));
    ids.push_back(submit(cb, {{"pipeline_name", "serial"}}));
  }
  bool saw_reason = false;
  ASSERT_TRUE(wait_until(
    [&] {
      auto j = get_job(ca, ids.back());
      if (j["status"] == "pending" && j["waiting_reason"].is_string()
          && j["waiting_reason"].get<std::string>().find("max_concurrent")
               != std::string::npos)
        saw_reason = true;
      return wait_terminal(ca, ids, 1ms);
    },
    60s, "all serial jobs to finish"));
  EXPECT_TRUE(saw_reason) << "no pending job said it waits for the limit";
  // The runs never overlapped: each started after the previous completed.
  auto rows = query(db_, "SELECT extract(epoch from started_at),"
                         " extract(epoch from completed_at), status"
                         " FROM jobs ORDER BY started_at");
  ASSERT_EQ(rows.size(), 6u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i][2], "completed");
    if (i > 0)
      EXPECT_LE(std::stod(rows[i - 1][1]), std::stod(rows[i][0]))
        << "job " << i << " started before job " << i - 1 << " ended";
  }
}

TEST_F(pipelines, workers_remove_work_directories_after_the_retention) {
  auto old_dir = fs::path{work_} / "0ld-job" / "attempt-1";
  auto new_dir = fs::path{work_} / "new-job" / "attempt-1";
  fs::create_directories(old_dir);
  fs::create_directories(new_dir);
  std::ofstream{old_dir / "out.txt"} << "old";
  std::ofstream{new_dir / "out.txt"} << "new";
  fs::last_write_time(old_dir.parent_path(),
                      fs::file_time_type::clock::now() - 48h);
  auto& api = start_api();
  auto e = env();
  e["WORK_RETENTION_HOURS"] = "24";
  procs_->start_worker("w1", api, 1, e);
  EXPECT_TRUE(wait_until([&] { return !fs::exists(old_dir.parent_path()); },
                         30s, "the expired work directory to be removed"));
  EXPECT_TRUE(fs::exists(new_dir / "out.txt"));
}

TEST_F(pipelines, nextflow_runs_end_to_end_where_installed) {
  if (std::system("command -v nextflow >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "nextflow is not on PATH (it is not a Debian package): "
                    "the end-to-end Nextflow run is skipped; argv building "
                    "and trace parsing are covered by the executors unit "
                    "tests with recorded files";
  auto& api = start_api();
  auto e = env();
  e["WORKER_EXECUTORS"] = "nextflow";
  procs_->start_worker("w1", api, 1, e);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "nf-hello"}});
  auto job = wait_status(c, id, {"completed", "failed"}, 300s);
  ASSERT_EQ(job["status"], "completed") << job.dump();
  ASSERT_TRUE(job["progress"].is_object());
  EXPECT_EQ(job["progress"]["percent"], 100.0);
  auto out = c.get("/jobs/" + id + "/outputs/out.txt");
  EXPECT_EQ(out.body, "a hello\n");
}

// A process group that ignores SIGTERM is killed after CANCEL_GRACE_SECONDS;
// a command past its timeout fails with "timeout after N s".
TEST_F(pipelines, sigkill_follows_sigterm_after_the_grace_period) {
  auto& api = start_api();
  auto e = env();
  e["CANCEL_GRACE_SECONDS"] = "1";
  procs_->start_worker("w1", api, 2, e);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "stubborn"},
                       {"parameters", {{"tag", "cancelme"}}}});
  ASSERT_TRUE(wait_until(
    [&] {
      return c.get("/jobs/" + id + "/logs").body.find("ready-cancelme")
             != std::string::npos;
    },
    30s, "the command to start"));
  ASSERT_EQ(c.request("POST", "/jobs/" + id + "/cancel").status, 200);
  auto job = wait_status(c, id, {"cancelled", "completed", "failed"}, 20s);
  EXPECT_EQ(job["status"], "cancelled");
  EXPECT_TRUE(processes_with("ready-cancelme").empty());
  auto timed = submit(c, {{"pipeline_name", "stubborn"},
                          {"parameters", {{"tag", "timeout"}}},
                          {"timeout_seconds", 1}});
  job = wait_status(c, timed, {"cancelled", "completed", "failed"}, 20s);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_EQ(job["error_message"], "timeout after 1 s");
  EXPECT_TRUE(processes_with("ready-timeout").empty());
}

// The mock narrates runs of 200 ms or more: log lines and progress.
TEST_F(pipelines, mock_runs_write_log_lines_and_report_progress) {
  auto& api = start_api();
  start_worker("w1", api, 1);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "mock"},
                       {"parameters", succeeding(1200)}});
  bool saw_partial = false;
  ASSERT_TRUE(wait_until(
    [&] {
      auto j = get_job(c, id);
      if (j["progress"].is_object() && j["progress"]["percent"] > 0
          && j["progress"]["percent"] < 100)
        saw_partial = true;
      return j["status"] == "completed";
    },
    30s, "the mock job to complete"));
  EXPECT_TRUE(saw_partial) << "no progress reported while running";
  auto job = get_job(c, id);
  EXPECT_EQ(job["progress"]["percent"], 100.0);
  auto logs = c.get("/jobs/" + id + "/logs").body;
  EXPECT_NE(logs.find("[mock] step 2/4 done"), std::string::npos) << logs;
  EXPECT_NE(logs.find("[mock] step 4/4 done: report"), std::string::npos)
    << logs;
  auto fail = submit(c, {{"pipeline_name", "mock"},
                         {"parameters",
                          {{"mock_duration_ms", 300},
                           {"mock_error", "MissingInputException: x.fa"}}}});
  wait_status(c, fail, {"failed"});
  auto err = c.get("/jobs/" + fail + "/logs?stream=stderr").body;
  EXPECT_EQ(err, "[mock] MissingInputException: x.fa\n");
}
