// Worker failures through real processes: a worker killed with SIGKILL, a
// worker that hangs (SIGSTOP), a worker that starts before its scheduler,
// and a scheduler that restarts under a connected worker.

#include "common.hpp"

#include <csignal>
#include <cstdio>
#include <map>
#include <set>

using namespace orch::test;

namespace {

struct event {
  std::string from;
  std::string to;
  int attempt = 0;
  std::string worker;
  std::string message;
};

// The history of job `id`, oldest first.
std::vector<event> events_of(const std::string& db, const std::string& id) {
  std::vector<event> out;
  // Messages could contain the column separator: put them last and rejoin.
  for (auto& row : query(db, "SELECT coalesce(from_status, '-'), to_status,"
                             " attempt, coalesce(worker_id, '-'),"
                             " replace(coalesce(message, ''), E'\\n', ' ')"
                             " FROM job_events WHERE job_id = '"
                               + id + "' ORDER BY id")) {
    if (row.size() < 5) {
      ADD_FAILURE() << "unexpected job_events row for " << id;
      continue;
    }
    event e{row[0], row[1], std::stoi(row[2]), row[3], row[4]};
    for (size_t i = 5; i < row.size(); ++i)
      e.message += "|" + row[i];
    out.push_back(std::move(e));
  }
  return out;
}

std::string render(const std::vector<event>& evs) {
  std::string out;
  for (auto& e : evs)
    out += "\n  " + e.from + " -> " + e.to + " attempt " + std::to_string(e.attempt)
           + " on " + e.worker + " (" + e.message + ")";
  return out;
}

// Whether job `id` has a running -> pending event (a requeue).
bool requeued(const std::string& db, const std::string& id) {
  for (auto& e : events_of(db, id))
    if (e.from == "running" && e.to == "pending")
      return true;
  return false;
}

// Ids of the running jobs on `worker`.
std::vector<std::string> running_on(http_client& c, const std::string& worker) {
  std::vector<std::string> ids;
  for (auto& j : list_all_jobs(c, "&status=running"))
    if (j.value("worker_id", "") == worker)
      ids.push_back(j["id"].get<std::string>());
  return ids;
}

class worker_failure : public ::testing::Test {
protected:
  void SetUp() override {
    db = fresh_database();
    procs = std::make_unique<orch_cluster>(db);
    api = &procs->start_api("api");
    w1 = &procs->start_worker("w1", *api, 2);
    w2 = &procs->start_worker("w2", *api, 2);
    c = std::make_unique<http_client>(api->http_port);
    ASSERT_TRUE(wait_until([&] { return worker_ids(*c).size() == 2; }, 30s,
                           "both workers connected"));
  }

  void TearDown() override {
    c.reset();
    procs.reset();
  }

  // Submits `n` jobs of `ms` milliseconds and waits until all run.
  std::vector<std::string> submit_running(int n, int ms) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i)
      ids.push_back(submit(*c, {{"pipeline_name", "long"},
                                {"parameters", succeeding(ms)}}));
    EXPECT_TRUE(wait_until([&] { return count_jobs(*c, "running") == n; },
                           30s, std::to_string(n) + " jobs running"));
    return ids;
  }

  // The jobs that were on the lost worker: requeued with a reason, then
  // completed on `survivor` as attempt 2. The others: attempt 1.
  void expect_rerun(const std::vector<std::string>& all,
                    const std::vector<std::string>& lost,
                    const std::string& lost_worker,
                    const std::string& survivor) {
    std::set<std::string> lost_set(lost.begin(), lost.end());
    for (auto& id : all) {
      auto j = get_job(*c, id);
      auto evs = events_of(db, id);
      SCOPED_TRACE("job " + id + ": " + j.dump() + render(evs));
      EXPECT_EQ(j["status"], "completed");
      EXPECT_EQ(j["worker_id"], survivor);
      if (lost_set.count(id) == 0) {
        EXPECT_EQ(j["attempt"], 1);
        continue;
      }
      EXPECT_EQ(j["attempt"], 2);
      // ... running(lost, 1) -> pending(reason) -> running(survivor, 2) ->
      // completed(2), at the end of the history.
      ASSERT_GE(evs.size(), 4u);
      auto n = evs.size();
      EXPECT_EQ(evs[n - 4].to, "running");
      EXPECT_EQ(evs[n - 4].attempt, 1);
      EXPECT_EQ(evs[n - 4].worker, lost_worker);
      EXPECT_EQ(evs[n - 3].from, "running");
      EXPECT_EQ(evs[n - 3].to, "pending");
      EXPECT_FALSE(evs[n - 3].message.empty()) << "a requeue says why";
      EXPECT_EQ(evs[n - 2].from, "pending");
      EXPECT_EQ(evs[n - 2].to, "running");
      EXPECT_EQ(evs[n - 2].attempt, 2);
      EXPECT_EQ(evs[n - 2].worker, survivor);
      EXPECT_EQ(evs[n - 1].to, "completed");
      EXPECT_EQ(evs[n - 1].attempt, 2);
    }
  }

  std::string db;
  std::unique_ptr<orch_cluster> procs;
  api_node* api = nullptr;
  child_process* w1 = nullptr;
  child_process* w2 = nullptr;
  std::unique_ptr<http_client> c;
};

} // namespace

TEST_F(worker_failure, killed_worker_jobs_are_requeued_and_rerun) {
  auto ids = submit_running(4, 3000);
  ASSERT_FALSE(HasFailure());
  auto lost = running_on(*c, "w1");
  ASSERT_EQ(lost.size(), 2u) << "each 2-slot worker should hold 2 jobs";
  w1->kill(SIGKILL);
  ASSERT_TRUE(w1->wait_exit(10s));
  ASSERT_TRUE(wait_until(
    [&] {
      for (auto& id : lost)
        if (!requeued(db, id))
          return false;
      return true;
    },
    10s, "the killed worker's jobs to be requeued"));
  EXPECT_TRUE(wait_until([&] { return worker_ids(*c).size() == 1; }, 10s,
                         "the killed worker to leave GET /workers"));
  ASSERT_TRUE(wait_terminal(*c, ids, 60s));
  expect_rerun(ids, lost, "w1", "w2");
}

TEST_F(worker_failure, hung_worker_is_noticed_within_ten_seconds) {
  auto ids = submit_running(4, 4000);
  ASSERT_FALSE(HasFailure());
  auto lost = running_on(*c, "w1");
  ASSERT_EQ(lost.size(), 2u) << "each 2-slot worker should hold 2 jobs";
  auto stopped_at = std::chrono::steady_clock::now();
  w1->kill(SIGSTOP);
  // 10 s by the contract, plus polling and a loaded machine.
  ASSERT_TRUE(wait_until(
    [&] {
      for (auto& id : lost)
        if (!requeued(db, id))
          return false;
      return true;
    },
    12s, "the hung worker's jobs to be requeued"));
  auto noticed = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - stopped_at);
  std::printf("hung worker noticed after %lld ms\n",
              static_cast<long long>(noticed.count()));
  ASSERT_TRUE(wait_terminal(*c, ids, 60s));
  expect_rerun(ids, lost, "w1", "w2");

  // The hung worker wakes up: its stale reports of attempt 1 must not
  // overwrite the results of attempt 2, and it comes back by itself.
  w1->kill(SIGCONT);
  EXPECT_TRUE(wait_until(
    [&] {
      auto connected = worker_ids(*c);
      return std::set<std::string>(connected.begin(), connected.end())
               .count("w1")
             == 1;
    },
    30s, "the resumed worker to reconnect"));
  expect_rerun(ids, lost, "w1", "w2");
  auto after = submit(*c, {{"pipeline_name", "after"},
                           {"parameters", succeeding(10)}});
  EXPECT_TRUE(wait_terminal(*c, {after}, 30s));
  EXPECT_EQ(get_job(*c, after)["status"], "completed");
}

// No fixture: these control the start order themselves.
TEST(worker_reconnect, worker_started_before_the_api_node_connects_later) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto port = free_port();
  auto& w = procs.start_worker("early", port, 1);
  // Let it fail at least once (bounded; the log line is informative only).
  wait_until(
    [&] {
      auto log = w.log();
      return log.find("unavailable") != std::string::npos
             || log.find("retry") != std::string::npos;
    },
    5s);
  ASSERT_TRUE(w.running()) << "a worker must not exit without a scheduler";
  auto& api = procs.start_api("api", {{"SCHEDULER_PORT", std::to_string(port)}});
  http_client c{api.http_port};
  // Backoff is capped at a few seconds.
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                         "the early worker to register"));
  auto id = submit(c, {{"pipeline_name", "late"},
                       {"parameters", succeeding(10)}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  auto j = get_job(c, id);
  EXPECT_EQ(j["status"], "completed");
  EXPECT_EQ(j["worker_id"], "early");
}

TEST(worker_reconnect, worker_reconnects_after_the_api_node_restarts) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto port = free_port();
  auto first = api_node::start("api-1", db,
                               {{"SCHEDULER_PORT", std::to_string(port)}});
  auto& w = procs.start_worker("stayer", port, 1);
  {
    http_client c{first->http_port};
    ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                           "the worker to register"));
    auto id = submit(c, {{"pipeline_name", "before"},
                         {"parameters", succeeding(10)}});
    ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  }
  first->proc->stop();
  if (HasFailure())
    std::fprintf(stderr, "----- api-1 -----\n%s\n",
                 first->proc->log_tail(80).c_str());
  first.reset();
  ASSERT_TRUE(w.running()) << "the worker must survive its scheduler";

  auto& second = procs.start_api("api-2",
                                 {{"SCHEDULER_PORT", std::to_string(port)}});
  http_client c{second.http_port};
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 30s,
                         "the worker to register again"));
  auto id = submit(c, {{"pipeline_name", "after"},
                       {"parameters", succeeding(10)}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  auto j = get_job(c, id);
  EXPECT_EQ(j["status"], "completed");
  EXPECT_EQ(j["worker_id"], "stayer");
}
