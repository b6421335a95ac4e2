// GET /metrics of a real api-node and of a real worker-node, after real
// jobs: the exposition parses strictly, every metric has the documented
// type and label names, and the counts add up to what the test did.

#include "common.hpp"

#include "orch/test/exposition.hpp"

#include <fstream>

using namespace orch::test;

namespace {

using labels = std::map<std::string, std::string>;

// Scrapes `port` and parses the answer; fails the test on a bad status,
// Content-Type or syntax.
exposition scrape(int port) {
  http_client c{port};
  auto r = c.get("/metrics");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"),
            "text/plain; version=0.0.4; charset=utf-8");
  auto x = parse_exposition(r.body);
  for (auto& e : x.errors)
    ADD_FAILURE() << e;
  return x;
}

// The port a worker logged as "metrics listening on HOST:PORT".
int metrics_port_of(child_process& worker) {
  static const std::string marker = "metrics listening on ";
  int port = 0;
  wait_until(
    [&] {
      auto log = worker.log();
      auto at = log.find(marker);
      if (at == std::string::npos)
        return false;
      auto line = log.substr(at, log.find('\n', at) - at);
      port = std::atoi(line.substr(line.rfind(':') + 1).c_str());
      return port > 0;
    },
    30s);
  return port;
}

void expect_family(const exposition& x, const std::string& name,
                   const std::string& type,
                   std::set<std::string> label_names) {
  EXPECT_EQ(x.type(name), type) << name;
  auto sets = x.label_names(name);
  EXPECT_FALSE(sets.empty()) << name << " has no samples";
  for (auto& s : sets)
    EXPECT_EQ(s, label_names) << name;
}

} // namespace

TEST(metrics_endpoint, api_and_worker_metrics_add_up) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};

  // Before any worker exists: a job that stays pending, then is cancelled.
  auto pending = submit(c, {{"pipeline_name", "metrics-c"}});
  ASSERT_EQ(c.request("POST", "/jobs/" + pending + "/cancel").status, 200);

  auto& worker = procs.start_worker("mw1", api, 2);
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                         "worker mw1 connected"));
  auto worker_port = metrics_port_of(worker);
  ASSERT_GT(worker_port, 0) << worker.log_tail();

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(submit(c, {{"pipeline_name", "metrics-a"},
                             {"parameters", succeeding(60)}}));
  ids.push_back(submit(c, {{"pipeline_name", "metrics-a"},
                           {"parameters",
                            {{"mock_duration_ms", 60},
                             {"mock_fail", true},
                             {"mock_error", "planned failure"}}}}));
  // An idempotent submission and its replay: one job, one count.
  auto body = json{{"pipeline_name", "metrics-b"},
                   {"parameters", succeeding(10)}}
                .dump();
  std::map<std::string, std::string> headers{
    {"Content-Type", "application/json"}, {"Idempotency-Key", "metrics-1"}};
  auto first = c.request("POST", "/jobs", body, headers);
  ASSERT_EQ(first.status, 201) << first.body;
  ids.push_back(body_json(first).value("id", ""));
  ASSERT_EQ(c.request("POST", "/jobs", body, headers).status, 200);
  ASSERT_TRUE(wait_terminal(c, ids, 60s));
  // An unknown route and a wrong method.
  EXPECT_EQ(c.get("/no/such/route/" + ids[0]).status, 404);
  EXPECT_EQ(c.request("DELETE", "/jobs").status, 405);

  // A first scrape, counted under its own route by the next one.
  scrape(api.http_port);
  // The gauges read from the database are cached for about a second.
  exposition x;
  ASSERT_TRUE(wait_until(
    [&] {
      x = scrape(api.http_port);
      return x.sum("jobs_by_status", {{"pipeline", "metrics-a"},
                                      {"status", "completed"}})
               == 3
             && x.sum("workers_connected") == 1
             && x.sum("worker_slots_busy") == 0;
    },
    15s, "jobs_by_status and the worker gauges caught up"))
    << "jobs_by_status(metrics-a, completed) = "
    << x.sum("jobs_by_status",
             {{"pipeline", "metrics-a"}, {"status", "completed"}})
    << ", workers_connected = " << x.sum("workers_connected")
    << ", worker_slots_busy = " << x.sum("worker_slots_busy");
  ASSERT_FALSE(HasFailure());

  // Names, types and label names.
  expect_family(x, "jobs_submitted_total", "counter", {"pipeline"});
  expect_family(x, "jobs_finished_total", "counter", {"pipeline", "status"});
  expect_family(x, "jobs_by_status", "gauge", {"pipeline", "status"});
  expect_family(x, "job_dispatch_seconds", "histogram", {"pipeline"});
  expect_family(x, "job_duration_seconds", "histogram", {"pipeline"});
  expect_family(x, "workers_connected", "gauge", {});
  expect_family(x, "worker_slots_total", "gauge", {});
  expect_family(x, "worker_slots_busy", "gauge", {});
  expect_family(x, "http_requests_total", "counter",
                {"route", "method", "code"});
  expect_family(x, "http_request_duration_seconds", "histogram",
                {"route", "method"});
  expect_family(x, "http_requests_in_flight", "gauge", {});
  expect_family(x, "db_pool_connections", "gauge", {"state"});
  expect_family(x, "db_reconnects_total", "counter", {});
  expect_family(x, "sse_clients", "gauge", {});

  // Submissions: 201s only, per pipeline.
  EXPECT_EQ(x.sum("jobs_submitted_total", {{"pipeline", "metrics-a"}}), 4);
  EXPECT_EQ(x.sum("jobs_submitted_total", {{"pipeline", "metrics-b"}}), 1);
  EXPECT_EQ(x.sum("jobs_submitted_total", {{"pipeline", "metrics-c"}}), 1);
  EXPECT_EQ(x.sum("jobs_submitted_total"), 6);

  // Terminal transitions: the scheduler's batches and the pending cancel.
  EXPECT_EQ(x.sum("jobs_finished_total",
                  {{"pipeline", "metrics-a"}, {"status", "completed"}}),
            3);
  EXPECT_EQ(x.sum("jobs_finished_total",
                  {{"pipeline", "metrics-a"}, {"status", "failed"}}),
            1);
  EXPECT_EQ(x.sum("jobs_finished_total",
                  {{"pipeline", "metrics-b"}, {"status", "completed"}}),
            1);
  EXPECT_EQ(x.sum("jobs_finished_total",
                  {{"pipeline", "metrics-c"}, {"status", "cancelled"}}),
            1);
  EXPECT_EQ(x.sum("jobs_finished_total", {{"status", "failed"}}), 1);
  EXPECT_EQ(x.sum("jobs_finished_total"), 6);
  EXPECT_EQ(x.label_values("jobs_finished_total", "status"),
            (std::set<std::string>{"cancelled", "completed", "failed"}));

  // Histograms: one dispatch and one duration per job that ran; the
  // cancelled job never started. Every run took at least 60 ms.
  EXPECT_EQ(x.sum("job_dispatch_seconds_count", {{"pipeline", "metrics-a"}}),
            4);
  EXPECT_EQ(x.sum("job_duration_seconds_count", {{"pipeline", "metrics-a"}}),
            4);
  EXPECT_GE(x.sum("job_duration_seconds_sum", {{"pipeline", "metrics-a"}}),
            4 * 0.055);
  EXPECT_EQ(x.sum("job_duration_seconds_bucket",
                  {{"pipeline", "metrics-a"}, {"le", "0.05"}}),
            0);
  EXPECT_EQ(x.sum("job_dispatch_seconds_count", {{"pipeline", "metrics-c"}}),
            0);
  EXPECT_EQ(x.sum("job_duration_seconds_count", {{"pipeline", "metrics-c"}}),
            0);

  // Jobs by status, every status of every pipeline.
  EXPECT_EQ(x.sum("jobs_by_status",
                  {{"pipeline", "metrics-a"}, {"status", "failed"}}),
            1);
  EXPECT_EQ(x.sum("jobs_by_status",
                  {{"pipeline", "metrics-c"}, {"status", "cancelled"}}),
            1);
  EXPECT_EQ(x.sum("jobs_by_status", {{"status", "pending"}}), 0);
  EXPECT_EQ(x.sum("jobs_by_status"), 6);
  EXPECT_EQ(x.label_values("jobs_by_status", "status"),
            (std::set<std::string>{"pending", "running", "completed",
                                   "failed", "cancelled"}));
  EXPECT_EQ(x.sum("worker_slots_total"), 2);

  // HTTP: route patterns, never raw paths.
  EXPECT_EQ(x.sum("http_requests_total",
                  {{"route", "/jobs"}, {"method", "POST"}, {"code", "201"}}),
            6);
  EXPECT_EQ(x.sum("http_requests_total",
                  {{"route", "/jobs"}, {"method", "POST"}, {"code", "200"}}),
            1);
  EXPECT_EQ(x.sum("http_request_duration_seconds_count",
                  {{"route", "/jobs"}, {"method", "POST"}}),
            7);
  EXPECT_EQ(x.sum("http_requests_total", {{"route", "/jobs/{id}/cancel"},
                                          {"method", "POST"},
                                          {"code", "200"}}),
            1);
  EXPECT_GE(x.sum("http_requests_total", {{"route", "/jobs/{id}"},
                                          {"method", "GET"},
                                          {"code", "200"}}),
            6);
  EXPECT_EQ(x.sum("http_requests_total", {{"route", "unmatched"},
                                          {"method", "GET"},
                                          {"code", "404"}}),
            1);
  EXPECT_EQ(x.sum("http_requests_total", {{"route", "/jobs"},
                                          {"method", "DELETE"},
                                          {"code", "405"}}),
            1);
  EXPECT_GE(x.sum("http_requests_total", {{"route", "/workers"},
                                          {"method", "GET"},
                                          {"code", "200"}}),
            1);
  for (auto& route : x.label_values("http_requests_total", "route"))
    EXPECT_TRUE(route == "unmatched"
                || route.find(ids[0]) == std::string::npos)
      << route;
  // Earlier scrapes count under their own route.
  EXPECT_GE(x.sum("http_requests_total",
                  {{"route", "/metrics"}, {"code", "200"}}),
            1);

  // Database and streams.
  EXPECT_GE(x.sum("db_pool_connections"), 2);
  EXPECT_EQ(x.sum("db_pool_connections", {{"state", "busy"}})
              + x.sum("db_pool_connections", {{"state", "idle"}}),
            x.sum("db_pool_connections"));
  EXPECT_EQ(x.sum("db_reconnects_total"), 0);
  EXPECT_EQ(x.sum("sse_clients"), 0);

  // The worker's own endpoint.
  auto w = scrape(worker_port);
  expect_family(w, "worker_jobs_running", "gauge", {"executor"});
  expect_family(w, "worker_jobs_total", "counter", {"executor", "outcome"});
  expect_family(w, "worker_executor_failures_total", "counter",
                {"executor", "reason"});
  expect_family(w, "worker_slots", "gauge", {});
  EXPECT_EQ(w.sum("worker_slots"), 2);
  EXPECT_EQ(w.sum("worker_jobs_running", {{"executor", "mock"}}), 0);
  EXPECT_EQ(w.sum("worker_jobs_total",
                  {{"executor", "mock"}, {"outcome", "completed"}}),
            4);
  EXPECT_EQ(w.sum("worker_jobs_total",
                  {{"executor", "mock"}, {"outcome", "failed"}}),
            1);
  EXPECT_EQ(w.sum("worker_executor_failures_total",
                  {{"executor", "mock"}, {"reason", "nonzero_exit"}}),
            1);
  EXPECT_EQ(w.sum("worker_executor_failures_total"), 1);
  http_client wc{worker_port};
  EXPECT_EQ(wc.get("/").status, 404);
}

// A command that exits non-zero and one that times out are told apart.
TEST(metrics_endpoint, worker_counts_executor_failures_by_reason) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto dir = make_temp_dir("orch-metrics-catalog");
  auto catalog = dir + "/pipelines.yaml";
  {
    std::ofstream out{catalog};
    out << "pipelines:\n"
           "  - name: exits-3\n"
           "    executor: command\n"
           "    command:\n"
           "      argv: [sh, -c, 'exit 3']\n"
           "  - name: sleeps\n"
           "    executor: command\n"
           "    command:\n"
           "      argv: [sleep, '30']\n"
           "  - name: missing\n"
           "    executor: command\n"
           "    command:\n"
           "      argv: [/nonexistent/orch-no-such-program]\n";
  }
  auto& api = procs.start_api("api", {{"PIPELINES_FILE", catalog}});
  auto& worker = procs.start_worker("mw2", api, 3,
                                    {{"WORKER_EXECUTORS", "mock,command"},
                                     {"CANCEL_GRACE_SECONDS", "1"}});
  http_client c{api.http_port};
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                         "worker mw2 connected"));
  auto port = metrics_port_of(worker);
  ASSERT_GT(port, 0);
  std::vector<std::string> ids{
    submit(c, {{"pipeline_name", "exits-3"}}),
    submit(c, {{"pipeline_name", "sleeps"}, {"timeout_seconds", 1}}),
    submit(c, {{"pipeline_name", "missing"}})};
  ASSERT_TRUE(wait_terminal(c, ids, 60s));
  auto w = scrape(port);
  EXPECT_EQ(w.sum("worker_executor_failures_total",
                  {{"executor", "command"}, {"reason", "nonzero_exit"}}),
            1);
  EXPECT_EQ(w.sum("worker_executor_failures_total",
                  {{"executor", "command"}, {"reason", "timeout"}}),
            1);
  EXPECT_EQ(w.sum("worker_executor_failures_total",
                  {{"executor", "command"}, {"reason", "exec_failed"}}),
            1);
  EXPECT_EQ(w.sum("worker_jobs_total",
                  {{"executor", "command"}, {"outcome", "failed"}}),
            3);
  EXPECT_EQ(w.sum("worker_jobs_running"), 0);
  remove_tree(dir);
}

TEST(metrics_endpoint, worker_metrics_port_can_be_turned_off_or_refused) {
  auto off = start_worker("off", free_port(), 1, {{"METRICS_PORT", "off"}});
  ASSERT_TRUE(wait_until(
    [&] { return off->log().find("starting") != std::string::npos; }, 30s,
    "worker started"));
  EXPECT_EQ(off->log().find("metrics listening"), std::string::npos)
    << off->log();
  EXPECT_TRUE(off->running());
  auto bad = start_worker("bad", free_port(), 1, {{"METRICS_PORT", "x"}});
  auto status = bad->wait_exit(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(*status, 0);
  EXPECT_NE(bad->log().find("METRICS_PORT"), std::string::npos)
    << bad->log();
}
