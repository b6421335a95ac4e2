// Chaos: two api-nodes and three workers run 2,000 short jobs while a random
// worker or api-node is killed with SIGKILL and restarted every couple of
// seconds. At the end every acknowledged job exists, is in exactly one
// terminal state with exactly one terminal event, and none completed twice.
// Bounded: submission ends after 2,000 jobs, the chaos then, and the test
// waits at most two minutes for the backlog.

#include "common.hpp"

#include <csignal>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace orch::test;

TEST(chaos, kills_lose_no_job_and_complete_none_twice) {
  constexpr int total_jobs = 2000;
  auto db = fresh_database();
  std::map<std::string, std::string> api_env{{"LEASE_SECONDS", "3"},
                                             {"LOG_LEVEL", "warn"}};
  std::vector<std::unique_ptr<api_node>> apis;
  apis.push_back(api_node::start("chaos-api-0", db, api_env));
  apis.push_back(api_node::start("chaos-api-1", db, api_env));
  std::vector<int> http_ports{apis[0]->http_port, apis[1]->http_port};
  std::vector<int> sched_ports{apis[0]->scheduler_port,
                               apis[1]->scheduler_port};
  auto both = "127.0.0.1:" + std::to_string(sched_ports[0]) + ",127.0.0.1:"
              + std::to_string(sched_ports[1]);
  std::vector<std::unique_ptr<child_process>> workers;
  auto start_w = [&](int i) {
    return start_worker("chaos-w" + std::to_string(i),
                        sched_ports[i % 2], 4,
                        {{"SCHEDULER_HOST", both}, {"LOG_LEVEL", "warn"}});
  };
  for (int i = 0; i < 3; ++i)
    workers.push_back(start_w(i));

  // Submitter: every job has an Idempotency-Key, and is retried (on either
  // node) until some node acknowledges it with a 2xx.
  std::mutex m;
  std::set<std::string> acked;
  std::atomic<int> submitted{0};
  std::atomic<int> unanswered{0};
  std::atomic<bool> done_submitting{false};
  auto submitter = std::thread([&] {
    std::mt19937 rng{7};
    for (int n = 0; n < total_jobs; ++n) {
      json body{{"pipeline_name", "chaos"},
                {"parameters",
                 {{"mock_duration_ms", static_cast<int>(rng() % 500)},
                  {"mock_fail", false}}}};
      auto key = "chaos-" + std::to_string(n);
      for (int attempt = 0;; ++attempt) {
        http_client c{http_ports[(n + attempt) % 2], 5s};
        auto r = c.request("POST", "/jobs", body.dump(),
                           {{"Content-Type", "application/json"},
                            {"Idempotency-Key", key}});
        if (r.status == 200 || r.status == 201) {
          std::lock_guard<std::mutex> guard{m};
          acked.insert(body_json(r)["id"].get<std::string>());
          break;
        }
        ++unanswered;
        std::this_thread::sleep_for(20ms);
        if (attempt > 500) {
          ADD_FAILURE() << "job " << n << " never acknowledged";
          break;
        }
      }
      ++submitted;
      // Paced to about 40 jobs/s, so that the chaos lasts about 50 s and
      // hits jobs in every state.
      std::this_thread::sleep_for(25ms);
    }
    done_submitting = true;
  });

  // Chaos: kill -9 a random process every 2 s and start it again.
  int kills = 0;
  int worker_kills = 0;
  std::mt19937 rng{42};
  while (!done_submitting) {
    std::this_thread::sleep_for(2s);
    auto victim = rng() % 5;
    ++kills;
    if (victim < 3) {
      ++worker_kills;
      workers[victim]->signal(SIGKILL);
      workers[victim]->wait_exit(10s);
      workers[victim] = start_w(static_cast<int>(victim));
    } else {
      auto i = victim - 3;
      apis[i]->proc->signal(SIGKILL);
      apis[i]->proc->wait_exit(10s);
      auto env = api_env;
      env["HTTP_PORT"] = std::to_string(http_ports[i]);
      env["SCHEDULER_PORT"] = std::to_string(sched_ports[i]);
      apis[i] = api_node::start("chaos-api-" + std::to_string(i), db, env);
    }
  }
  submitter.join();
  ASSERT_EQ(acked.size(), static_cast<size_t>(total_jobs));

  // Everything settles.
  http_client c{http_ports[0]};
  ASSERT_TRUE(wait_until(
    [&] {
      auto rows = query(db, "SELECT count(*) FROM jobs WHERE status IN "
                            "('pending', 'running')");
      return rows.at(0).at(0) == "0";
    },
    120s, "all jobs terminal"))
    << query(db, "SELECT status || ':' || count(*) FROM jobs GROUP BY "
                 "status")
         .size();

  auto scalar = [&](const std::string& sql) {
    return std::stol(query(db, sql).at(0).at(0));
  };
  auto jobs = scalar("SELECT count(*) FROM jobs");
  auto lost = total_jobs - scalar("SELECT count(*) FROM jobs WHERE id IN "
                                  "(SELECT id FROM jobs)");
  auto double_completed = scalar(
    "SELECT count(*) FROM (SELECT job_id FROM job_events WHERE to_status = "
    "'completed' GROUP BY job_id HAVING count(*) > 1) d");
  auto not_one_terminal = scalar(
    "SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM job_events e "
    "WHERE e.job_id = j.id AND e.to_status IN ('completed', 'failed', "
    "'cancelled')) <> 1");
  auto completed = scalar("SELECT count(*) FROM jobs WHERE status = "
                          "'completed'");
  auto failed = scalar("SELECT count(*) FROM jobs WHERE status = 'failed'");
  auto reruns = scalar("SELECT count(*) FROM jobs WHERE attempt > 1");
  // Every acknowledged id is in the table.
  std::string ids;
  for (auto& id : acked)
    ids += (ids.empty() ? "'" : ",'") + id + "'";
  auto found = scalar("SELECT count(*) FROM jobs WHERE id IN (" + ids + ")");
  EXPECT_EQ(jobs, total_jobs);
  EXPECT_EQ(found, total_jobs);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(double_completed, 0);
  EXPECT_EQ(not_one_terminal, 0);
  std::printf("chaos: %d jobs acknowledged, %ld in the table, %d kills "
              "(%d workers, %d api-nodes), %ld lost, %ld completed twice, "
              "%ld completed, %ld failed (worker lost beyond their "
              "attempts), %ld ran more than once, %d submissions retried\n",
              total_jobs, jobs, kills, worker_kills, kills - worker_kills,
              total_jobs - found, double_completed, completed, failed,
              reruns, unanswered.load());
  for (auto& w : workers)
    w->stop();
}
