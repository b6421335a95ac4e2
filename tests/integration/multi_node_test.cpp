// Several api-nodes on one database: no job starts twice, and a job
// submitted through a node without workers is run by another node's workers
// (LISTEN/NOTIFY plus the periodic sweep).

#include "common.hpp"

#include <cstdio>
#include <ctime>
#include <future>
#include <map>
#include <set>

using namespace orch::test;

// Two api-nodes started at the same moment on a fresh database (their
// migrations race under the advisory lock), each with its own worker; jobs
// submitted alternately to both run exactly once.
TEST(multi_node, two_api_nodes_never_start_a_job_twice) {
  auto db = fresh_database();
  orch_cluster procs{db};
  // Start both at once: migrations must serialize under the advisory lock.
  auto a_future = std::async(std::launch::async,
                             [&] { return api_node::start("api-a", db); });
  auto b_future = std::async(std::launch::async,
                             [&] { return api_node::start("api-b", db); });
  auto* a = &procs.adopt_api(a_future.get());
  auto* b = &procs.adopt_api(b_future.get());
  EXPECT_EQ(query(db, "SELECT count(*) FROM schema_migrations")
              .at(0)
              .at(0),
            query(db, "SELECT count(DISTINCT version) FROM schema_migrations")
              .at(0)
              .at(0));
  procs.start_worker("wa", *a, 2);
  procs.start_worker("wb", *b, 2);
  http_client ca{a->http_port};
  http_client cb{b->http_port};
  ASSERT_TRUE(wait_until(
    [&] {
      auto ids = worker_ids(ca);
      std::set<std::string> got(ids.begin(), ids.end());
      return got.count("wa") == 1;
    },
    30s, "wa connected to api-a"));
  ASSERT_TRUE(wait_until(
    [&] {
      auto ids = worker_ids(cb);
      std::set<std::string> got(ids.begin(), ids.end());
      return got.count("wb") == 1;
    },
    30s, "wb connected to api-b"));

  std::vector<std::string> ids;
  for (int i = 0; i < 120; ++i) {
    auto& c = i % 2 == 0 ? ca : cb;
    ids.push_back(submit(c, {{"pipeline_name", "multi"},
                             {"parameters", succeeding(i % 31)}}));
  }
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(wait_until(
    [&] { return count_jobs(ca, "pending,running") == 0; }, 120s,
    "all 120 jobs terminal"))
    << count_jobs(ca, "pending,running") << " left";

  std::map<std::string, int> per_worker;
  for (auto& id : ids) {
    // Both nodes answer the same for every job.
    auto ja = get_job(ca, id);
    auto jb = get_job(cb, id);
    EXPECT_EQ(ja, jb);
    EXPECT_EQ(ja["status"], "completed") << ja.dump();
    EXPECT_EQ(ja["attempt"], 1) << ja.dump();
    per_worker[ja.value("worker_id", "")]++;
  }
  EXPECT_GT(per_worker["wa"], 0);
  EXPECT_GT(per_worker["wb"], 0);
  EXPECT_EQ(per_worker["wa"] + per_worker["wb"], 120);

  // Exactly one start per job in the history.
  auto twice = query(db, "SELECT job_id, count(*) FROM job_events"
                         " WHERE to_status = 'running' GROUP BY job_id"
                         " HAVING count(*) <> 1");
  EXPECT_TRUE(twice.empty()) << twice.size() << " jobs started more than once"
                             << ", e.g. " << twice.front().at(0);
  EXPECT_EQ(query(db, "SELECT count(*) FROM job_events"
                      " WHERE to_status = 'running'")
              .at(0)
              .at(0),
            "120");
}

namespace {

// Two api-nodes on one database: `a` with worker "wa" (SLOTS slots), and
// `lonely` with none; `cl` talks to `lonely`.
struct lonely_pair {
  explicit lonely_pair(int slots)
    : procs(db),
      a(procs.start_api("api-a")),
      lonely(procs.start_api("api-lonely")),
      ca(a.http_port),
      cl(lonely.http_port) {
    procs.start_worker("wa", a, slots);
  }
  bool worker_connected() {
    return wait_until([&] { return worker_ids(ca).size() == 1; }, 30s,
                      "wa connected");
  }
  std::string db = fresh_database();
  orch_cluster procs;
  api_node& a;
  api_node& lonely;
  http_client ca;
  http_client cl;
};

} // namespace

// A job submitted to an api-node that has no workers at all is run by the
// worker of the other api-node.
TEST(multi_node, job_on_a_node_without_workers_runs_elsewhere) {
  lonely_pair nodes{2};
  ASSERT_TRUE(nodes.worker_connected());
  auto& cl = nodes.cl;

  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(submit(cl, {{"pipeline_name", "elsewhere"},
                              {"parameters", succeeding(10)}}));
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(wait_terminal(cl, ids, 30s))
    << "jobs on the node without workers did not run";
  for (auto& id : ids) {
    auto j = get_job(cl, id);
    EXPECT_EQ(j["status"], "completed") << j.dump();
    EXPECT_EQ(j["worker_id"], "wa") << j.dump();
    EXPECT_EQ(j["attempt"], 1) << j.dump();
  }

  // Once more, with the worker idle.
  auto late = submit(cl, {{"pipeline_name", "elsewhere"},
                          {"parameters", succeeding(0)}});
  EXPECT_TRUE(wait_terminal(cl, {late}, 30s));
  EXPECT_EQ(get_job(cl, late)["worker_id"], "wa");
}

namespace {

// Microseconds since the epoch of an RFC 3339 UTC timestamp as the API
// writes them (2026-12-03T10:40:00.123456Z).
int64_t micros_of(const std::string& ts) {
  std::tm tm{};
  int micros = 0;
  if (std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros)
      < 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000000 + micros;
}

} // namespace

// A submission's commit NOTIFYs every api-node's scheduler: a job submitted
// through a node without workers starts on another node's idle worker at
// once, not at that node's next sweep (once a second). Sweeps alone would
// start about one job in four within 250 ms; 7 of 9 is required.
TEST(multi_node, a_submission_wakes_the_other_nodes_at_once) {
  lonely_pair nodes{1};
  ASSERT_TRUE(nodes.worker_connected());
  auto& cl = nodes.cl;
  int fast = 0;
  std::vector<int64_t> waits_ms;
  for (int i = 0; i < 9; ++i) {
    auto id = submit(cl, {{"pipeline_name", "woken"},
                          {"parameters", succeeding(0)}});
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(wait_terminal(cl, {id}, 30s));
    auto j = get_job(cl, id);
    ASSERT_EQ(j["status"], "completed") << j.dump();
    auto created = micros_of(j["created_at"].get<std::string>());
    auto started = micros_of(j["started_at"].get<std::string>());
    ASSERT_GE(created, 0) << j.dump();
    ASSERT_GE(started, created) << j.dump();
    waits_ms.push_back((started - created) / 1000);
    if (started - created < 250000)
      ++fast;
  }
  std::string all;
  for (auto w : waits_ms)
    all += std::to_string(w) + " ms ";
  EXPECT_GE(fast, 7) << "submit -> start through another node: " << all;
}
