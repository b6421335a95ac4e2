// End to end through real processes: one api-node and two worker-nodes on a
// real PostgreSQL. Jobs are submitted over HTTP, run on the mock executor
// (made deterministic with mock_duration_ms / mock_fail / mock_error), and
// checked over HTTP and in the job_events table.

#include "common.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace orch::test;

namespace {

// to_status of each job's events, in order, keyed by job id.
struct job_history {
  std::vector<std::string> from;
  std::vector<std::string> to;
  std::vector<int> attempts;
  std::vector<std::string> workers;
};

std::map<std::string, job_history> histories(const std::string& db_url) {
  std::map<std::string, job_history> out;
  for (auto& row : query(db_url, "SELECT job_id, coalesce(from_status, '-'),"
                                 " to_status, attempt, coalesce(worker_id,"
                                 " '-') FROM job_events ORDER BY job_id, id")) {
    if (row.size() != 5) {
      ADD_FAILURE() << "unexpected job_events row";
      continue;
    }
    auto& h = out[row[0]];
    h.from.push_back(row[1]);
    h.to.push_back(row[2]);
    h.attempts.push_back(std::stoi(row[3]));
    h.workers.push_back(row[4]);
  }
  return out;
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : ",") + x;
  return out;
}

} // namespace

// 300 jobs from 6 concurrent clients, a mix of successes and failures; every
// job ends as requested, with consistent fields, timestamps and history.
// `scheduler_connections` is SCHEDULER_DB_CONNECTIONS (ADR 0006): 1 is the
// scheduler that commits a flush and then claims on one connection.
static void
three_hundred_concurrent_jobs(const std::string& scheduler_connections) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& api = procs.start_api(
    "api", {{"SCHEDULER_DB_CONNECTIONS", scheduler_connections}});
  procs.start_worker("w1", api, 4);
  procs.start_worker("w2", api, 4);
  http_client c{api.http_port};
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 2; }, 30s,
                         "both workers in GET /workers"));

  constexpr int threads = 6;
  constexpr int per_thread = 50;
  std::mutex mtx;
  std::map<std::string, json> requests; // id -> request body
  std::vector<std::string> errors;
  std::vector<std::thread> submitters;
  for (int t = 0; t < threads; ++t)
    submitters.emplace_back([&, t] {
      http_client mine{api.http_port};
      for (int k = 0; k < per_thread; ++k) {
        int i = t * per_thread + k;
        json params{{"mock_duration_ms", i % 51}, {"mock_fail", i % 4 == 0},
                    {"i", i}};
        if (i % 8 == 0)
          params["mock_error"]
            = "step align failed for sample " + std::to_string(i);
        json body{{"pipeline_name", "e2e"},
                  {"parameters", params},
                  {"priority", i % 3 - 1}};
        auto r = mine.post_json("/jobs", body.dump());
        std::lock_guard<std::mutex> guard{mtx};
        if (r.status != 201) {
          errors.push_back(std::to_string(r.status) + " " + r.body);
          continue;
        }
        try {
          requests[json::parse(r.body).at("id").get<std::string>()] = body;
        } catch (const std::exception& e) {
          errors.push_back(std::string{"bad 201 body: "} + r.body);
        }
      }
    });
  for (auto& t : submitters)
    t.join();
  ASSERT_TRUE(errors.empty()) << errors.size() << " failed submissions, e.g. "
                              << errors.front();
  ASSERT_EQ(requests.size(), size_t{threads * per_thread});

  ASSERT_TRUE(wait_until([&] { return count_jobs(c, "pending,running") == 0; },
                         120s, "all 300 jobs terminal"))
    << count_jobs(c, "pending,running") << " still pending or running";

  auto jobs = list_all_jobs(c);
  ASSERT_EQ(jobs.size(), requests.size());
  std::map<std::string, int> per_worker;
  std::map<std::string, std::string> job_worker;
  for (auto& j : jobs) {
    auto id = j.value("id", "");
    SCOPED_TRACE("job " + id + ": " + j.dump());
    auto it = requests.find(id);
    ASSERT_NE(it, requests.end());
    auto& params = it->second["parameters"];
    bool fail = params["mock_fail"].get<bool>();
    EXPECT_EQ(j["status"], fail ? "failed" : "completed");
    if (fail) {
      ASSERT_TRUE(j["error_message"].is_string());
      if (params.contains("mock_error"))
        EXPECT_EQ(j["error_message"], params["mock_error"]);
      else
        EXPECT_FALSE(j["error_message"].get<std::string>().empty());
    } else {
      EXPECT_TRUE(j["error_message"].is_null());
    }
    EXPECT_EQ(j["attempt"], 1);
    EXPECT_EQ(j["pipeline_name"], "e2e");
    EXPECT_EQ(j["priority"], it->second["priority"]);
    EXPECT_EQ(j["parameters"], params);
    ASSERT_TRUE(j["worker_id"].is_string());
    per_worker[j["worker_id"].get<std::string>()]++;
    job_worker[id] = j["worker_id"].get<std::string>();
    for (auto key : {"created_at", "started_at", "completed_at", "updated_at"})
      ASSERT_TRUE(j[key].is_string()) << key;
    // Same fixed format (RFC 3339, UTC, millis): string order is time order.
    auto created = j["created_at"].get<std::string>();
    auto started = j["started_at"].get<std::string>();
    auto completed = j["completed_at"].get<std::string>();
    auto updated = j["updated_at"].get<std::string>();
    EXPECT_LE(created, started);
    EXPECT_LE(started, completed);
    EXPECT_LE(completed, updated);
  }
  // Both workers took part; nobody else did.
  EXPECT_EQ(per_worker.size(), 2u);
  EXPECT_GT(per_worker["w1"], 0);
  EXPECT_GT(per_worker["w2"], 0);

  // job_events: [submitted ->] pending -> running -> terminal, per job, in
  // order, each event continuing from the previous one.
  auto hist = histories(db);
  EXPECT_EQ(hist.size(), requests.size());
  for (auto& [id, h] : hist) {
    SCOPED_TRACE("job " + id + " events to: " + join(h.to)
                 + " from: " + join(h.from));
    auto to = h.to;
    auto from = h.from;
    ASSERT_GE(to.size(), 2u);
    if (to.size() == 3) {
      EXPECT_EQ(from[0], "-");
      EXPECT_EQ(to[0], "pending");
      to.erase(to.begin());
      from.erase(from.begin());
    }
    ASSERT_EQ(to.size(), 2u);
    EXPECT_EQ(from[0], "pending");
    EXPECT_EQ(to[0], "running");
    EXPECT_EQ(from[1], "running");
    EXPECT_TRUE(to[1] == "completed" || to[1] == "failed");
    EXPECT_EQ(h.attempts.back(), 1);
    // The running event names the worker the job reports.
    EXPECT_EQ(h.workers[h.workers.size() - 2], job_worker[id]);
  }

  // Nothing is left counted as running on the workers.
  EXPECT_TRUE(wait_until(
    [&] {
      auto r = c.get("/workers");
      if (r.status != 200)
        return false;
      for (auto& w : body_json(r)["workers"])
        if (w.value("running", -1) != 0)
          return false;
      return true;
    },
    10s, "GET /workers to show running 0"));
}

TEST(end_to_end, three_hundred_concurrent_jobs_reach_their_terminal_state) {
  three_hundred_concurrent_jobs("3"); // the default
}

TEST(end_to_end, the_same_with_one_scheduler_connection) {
  three_hundred_concurrent_jobs("1");
}

// Queued while no worker is connected, jobs run highest priority first and,
// within a priority, in submission order.
TEST(end_to_end, priority_then_submission_order) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};
  // Interleaved submission: l0 h0 m0 l1 h1 m1 ...
  std::vector<std::pair<int, std::string>> submitted; // (priority, id)
  for (int round = 0; round < 4; ++round)
    for (int priority : {-5, 10, 0})
      submitted.emplace_back(
        priority,
        submit(c, {{"pipeline_name", "prio"},
                   {"priority", priority},
                   {"parameters", succeeding(20)}}));
  ASSERT_FALSE(HasFailure());
  // Nothing may run yet.
  EXPECT_EQ(count_jobs(c, "pending"), 12);

  procs.start_worker("solo", api, 1);
  ASSERT_TRUE(wait_until([&] { return count_jobs(c, "pending,running") == 0; },
                         60s, "all 12 jobs terminal"));

  // Expected: stable sort by priority, descending.
  auto expected = submitted;
  std::stable_sort(expected.begin(), expected.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> expected_ids;
  for (auto& [p, id] : expected)
    expected_ids.push_back(id);

  // Start order from the event log (ids are assigned in commit order) ...
  std::vector<std::string> started;
  for (auto& row : query(db, "SELECT job_id FROM job_events WHERE"
                             " to_status = 'running' ORDER BY id"))
    started.push_back(row.at(0));
  EXPECT_EQ(started, expected_ids);

  // ... and from started_at, which must agree.
  std::vector<std::pair<std::string, std::string>> by_time; // (started, id)
  for (auto& [p, id] : submitted) {
    auto j = get_job(c, id);
    EXPECT_EQ(j["status"], "completed") << j.dump();
    EXPECT_EQ(j["worker_id"], "solo");
    by_time.emplace_back(j.value("started_at", ""), id);
  }
  std::stable_sort(by_time.begin(), by_time.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<std::string> time_ids;
  for (auto& [t, id] : by_time)
    time_ids.push_back(id);
  EXPECT_EQ(time_ids, expected_ids);
}
