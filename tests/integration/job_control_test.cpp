// Issue 3 behaviours with real processes: cancel, retries, timeouts, leases,
// adoption after an api-node dies, drain, idempotency, database restarts.

#include "common.hpp"

#include <csignal>
#include <future>
#include <set>
#include <thread>

using namespace orch::test;

namespace {

std::string events_of(const std::string& db, const std::string& id) {
  auto rows = query(db, "SELECT coalesce(from_status,'-') || '>' || "
                        "to_status || '@' || attempt FROM job_events WHERE "
                        "job_id = '" + id + "' ORDER BY id");
  std::string out;
  for (auto& r : rows)
    out += (out.empty() ? "" : " ") + r.at(0);
  return out;
}

bool status_is(http_client& c, const std::string& id, const std::string& s) {
  auto r = c.get("/jobs/" + id);
  return r.status == 200 && body_json(r).value("status", "") == s;
}

// Waits until job `id` has `status`; names both on timeout.
::testing::AssertionResult reaches(http_client& c, const std::string& id,
                                   const std::string& status,
                                   std::chrono::milliseconds timeout) {
  return wait_until([&] { return status_is(c, id, status); }, timeout,
                    "job " + id + " " + status);
}

} // namespace

TEST(cancel, pending_job_is_cancelled_at_once_and_terminal_jobs_conflict) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"}});
  auto r = c.request("POST", "/jobs/" + id + "/cancel");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(r)["status"], "cancelled");
  EXPECT_FALSE(body_json(r)["completed_at"].is_null());
  EXPECT_EQ(events_of(procs.db_url(), id), "->pending@0 pending>cancelled@0");
  // Again, and through the DELETE alias: 409 naming the status.
  for (auto method : {"POST", "DELETE"}) {
    auto again = method == std::string{"POST"}
                   ? c.request("POST", "/jobs/" + id + "/cancel")
                   : c.request("DELETE", "/jobs/" + id);
    EXPECT_EQ(again.status, 409) << again.body;
    EXPECT_EQ(again.header("content-type"), "application/problem+json");
    EXPECT_EQ(body_json(again)["job_status"], "cancelled") << again.body;
  }
  EXPECT_EQ(c.request("DELETE", "/jobs/6f1b2a7e-0000-4000-8000-0000000000ff")
              .status,
            404);
  EXPECT_EQ(c.request("POST", "/jobs/nope/cancel").status, 422);
}

TEST(cancel, running_job_is_stopped_by_its_worker) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  procs.start_worker("w", api, 1);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"},
                       {"parameters", succeeding(60000)}});
  ASSERT_TRUE(reaches(c, id, "running", 20s));
  auto r = c.request("DELETE", "/jobs/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = body_json(r);
  EXPECT_TRUE(j["status"] == "running" || j["status"] == "cancelled") << j;
  EXPECT_EQ(j["cancel_requested"], true);
  ASSERT_TRUE(reaches(c, id, "cancelled", 10s));
  EXPECT_EQ(events_of(procs.db_url(), id),
            "->pending@0 pending>running@1 running>running@1 "
            "running>cancelled@1");
  // The slot is free again: a next job runs.
  auto next = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  EXPECT_TRUE(wait_terminal(c, {next}, 20s));
}

TEST(cancel, accepted_while_the_worker_is_unreachable_still_wins) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  auto& w = procs.start_worker("hangs", api, 1);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"},
                       {"parameters", succeeding(4000)}});
  ASSERT_TRUE(reaches(c, id, "running", 20s));
  w.signal(SIGSTOP);
  ASSERT_EQ(c.request("POST", "/jobs/" + id + "/cancel").status, 200);
  // The worker is dropped (no heartbeats); the cancel turns the requeue
  // into a cancellation. Resuming the worker later changes nothing.
  ASSERT_TRUE(reaches(c, id, "cancelled", 20s));
  w.signal(SIGCONT);
  // The resumed worker re-registers (it may still report the attempt, which
  // is then fenced off); either way the job stays cancelled.
  EXPECT_TRUE(wait_until(
    [&] {
      auto log = api.proc->log();
      auto first = log.find("worker hangs registered");
      return first != std::string::npos
             && log.find("worker hangs registered", first + 1)
                  != std::string::npos;
    },
    30s, "the resumed worker registered again"));
  EXPECT_EQ(get_job(c, id)["status"], "cancelled");
  EXPECT_EQ(query(procs.db_url(), "SELECT count(*) FROM job_events WHERE "
                                  "to_status = 'completed'")
              .at(0)
              .at(0),
            "0");
}

TEST(retries, failed_attempts_back_off_then_fail) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  procs.start_worker("w", api, 2);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "flaky"},
                       {"max_attempts", 3},
                       {"retry_backoff_seconds", 0.5},
                       {"parameters",
                        {{"mock_duration_ms", 0},
                         {"mock_fail", true},
                         {"mock_error", "low coverage"}}}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  auto j = get_job(c, id);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["attempt"], 3);
  EXPECT_EQ(j["max_attempts"], 3);
  EXPECT_EQ(j["error_message"], "low coverage");
  EXPECT_EQ(events_of(procs.db_url(), id),
            "->pending@0 pending>running@1 running>pending@1 "
            "pending>running@2 running>pending@2 pending>running@3 "
            "running>failed@3");
  // Each retry waited base * 2^(n-1), +-20%: gaps between a failure and the
  // next start.
  auto gaps = query(
    procs.db_url(),
    "SELECT extract(epoch FROM s.at - f.at) FROM job_events f JOIN "
    "job_events s ON s.job_id = f.job_id AND s.to_status = 'running' AND "
    "s.attempt = f.attempt + 1 WHERE f.job_id = '" + id +
      "' AND f.to_status = 'pending' AND f.from_status = 'running' ORDER BY "
      "f.attempt");
  ASSERT_EQ(gaps.size(), 2u);
  auto g1 = std::stod(gaps[0][0]);
  auto g2 = std::stod(gaps[1][0]);
  EXPECT_GE(g1, 0.5 * 0.8);
  EXPECT_LT(g1, 0.5 * 1.2 + 3); // + the sweep period, on a busy machine
  EXPECT_GE(g2, 1.0 * 0.8);
  EXPECT_LT(g2, 1.0 * 1.2 + 3);
}

TEST(retries, retry_that_succeeds_clears_the_error) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"},
                       {"max_attempts", 2},
                       {"retry_backoff_seconds", 0},
                       {"parameters", {{"mock_duration_ms", 0},
                                       {"mock_fail", true}}}});
  procs.start_worker("w", api, 1);
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  EXPECT_EQ(get_job(c, id)["attempt"], 2);
  EXPECT_EQ(get_job(c, id)["status"], "failed");
  auto ok = submit(c, {{"pipeline_name", "p"}, {"max_attempts", 5},
                       {"parameters", succeeding(0)}});
  ASSERT_TRUE(wait_terminal(c, {ok}, 30s));
  EXPECT_EQ(get_job(c, ok)["attempt"], 1);
  EXPECT_TRUE(get_job(c, ok)["error_message"].is_null());
}

TEST(timeouts, attempt_over_its_timeout_fails_and_is_retried) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  procs.start_worker("w", api, 1);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "slow"},
                       {"timeout_seconds", 1},
                       {"max_attempts", 2},
                       {"retry_backoff_seconds", 0},
                       {"parameters", succeeding(60000)}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  auto j = get_job(c, id);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["error_message"], "timeout after 1 s");
  EXPECT_EQ(j["attempt"], 2);
}

TEST(leases, reaper_requeues_jobs_whose_scheduler_and_worker_both_died) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& a = procs.start_api("api-a", {{"LEASE_SECONDS", "3"}});
  auto& b = procs.start_api("api-b", {{"LEASE_SECONDS", "3"}});
  auto& wa = procs.start_worker("wa", a, 1);
  http_client ca{a.http_port};
  http_client cb{b.http_port};
  auto id = submit(ca, {{"pipeline_name", "p"}, {"max_attempts", 2},
                        {"parameters", succeeding(60000)}});
  ASSERT_TRUE(reaches(cb, id, "running", 20s));
  // Nobody is left to notice through monitoring: only the lease tells.
  wa.signal(SIGKILL);
  a.proc->signal(SIGKILL);
  procs.start_worker("wb", b, 1);
  ASSERT_TRUE(wait_until(
    [&] {
      auto j = get_job(cb, id);
      return j["status"] == "running" && j["worker_id"] == "wb";
    },
    30s, "requeued by the reaper and running on wb"));
  auto reaped = query(db, "SELECT count(*) FROM job_events WHERE job_id = '"
                            + id + "' AND message LIKE 'lease expired%'");
  EXPECT_EQ(reaped.at(0).at(0), "1");
  EXPECT_EQ(get_job(cb, id)["attempt"], 2);
}

TEST(leases, no_attempts_left_fails_with_worker_lost) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& a = procs.start_api("api-a", {{"LEASE_SECONDS", "2"}});
  auto& b = procs.start_api("api-b", {{"LEASE_SECONDS", "2"}});
  auto& wa = procs.start_worker("wa", a, 1);
  http_client cb{b.http_port};
  auto id = submit(cb, {{"pipeline_name", "p"},
                        {"parameters", succeeding(60000)}});
  ASSERT_TRUE(reaches(cb, id, "running", 20s));
  wa.signal(SIGKILL);
  a.proc->signal(SIGKILL);
  ASSERT_TRUE(reaches(cb, id, "failed", 20s));
  EXPECT_EQ(get_job(cb, id)["error_message"], "worker lost");
}

TEST(adoption, workers_move_to_another_api_node_without_wasting_attempts) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& a = procs.start_api("api-a");
  auto& b = procs.start_api("api-b");
  // Both scheduler addresses: the worker moves on when one is gone.
  auto both = "127.0.0.1:" + std::to_string(a.scheduler_port) + ",127.0.0.1:"
              + std::to_string(b.scheduler_port);
  procs.start_worker("w1", a.scheduler_port, 2, {{"SCHEDULER_HOST", both}});
  http_client cb{b.http_port};
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i)
    ids.push_back(submit(cb, {{"pipeline_name", "p"},
                              {"parameters", succeeding(4000)}}));
  ASSERT_TRUE(wait_until(
    [&] {
      for (auto& id : ids)
        if (!status_is(cb, id, "running"))
          return false;
      return true;
    },
    20s, "both running on w1 via api-a"));
  a.proc->signal(SIGKILL);
  ASSERT_TRUE(wait_terminal(cb, ids, 30s));
  for (auto& id : ids) {
    auto j = get_job(cb, id);
    EXPECT_EQ(j["status"], "completed") << j;
    EXPECT_EQ(j["attempt"], 1) << j;
    EXPECT_EQ(j["worker_id"], "w1") << j;
  }
}

TEST(idempotency, fifty_concurrent_submissions_with_one_key_make_one_job) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  std::string body = R"({"pipeline_name":"idem","parameters":{"n":1}})";
  std::vector<std::future<http_response>> calls;
  for (int i = 0; i < 50; ++i)
    calls.push_back(std::async(std::launch::async, [&] {
      http_client c{api.http_port};
      return c.request("POST", "/jobs", body,
                       {{"Content-Type", "application/json"},
                        {"Idempotency-Key", "order-4711"}});
    }));
  int created = 0;
  int replayed = 0;
  std::set<std::string> ids;
  for (auto& f : calls) {
    auto r = f.get();
    if (r.status == 201)
      ++created;
    if (r.status == 200) {
      ++replayed;
      EXPECT_EQ(r.header("idempotent-replayed"), "true");
    }
    ids.insert(body_json(r).value("id", ""));
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(replayed, 49);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(query(procs.db_url(), "SELECT count(*) FROM jobs").at(0).at(0),
            "1");
  http_client c{api.http_port};
  auto other = c.request("POST", "/jobs",
                         R"({"pipeline_name":"idem","parameters":{"n":2}})",
                         {{"Content-Type", "application/json"},
                          {"Idempotency-Key", "order-4711"}});
  EXPECT_EQ(other.status, 422) << other.body;
  auto too_long = c.request("POST", "/jobs", body,
                            {{"Content-Type", "application/json"},
                             {"Idempotency-Key", std::string(256, 'k')}});
  EXPECT_EQ(too_long.status, 422) << too_long.body;
}

TEST(drain, worker_finishes_running_jobs_on_sigterm_and_exits_zero) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  auto& w = procs.start_worker("w", api, 2);
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"},
                       {"parameters", succeeding(1500)}});
  ASSERT_TRUE(reaches(c, id, "running", 20s));
  w.signal(SIGTERM);
  // While draining, the worker takes no new job.
  auto later = submit(c, {{"pipeline_name", "p"},
                          {"parameters", succeeding(0)}});
  auto code = w.wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(get_job(c, id)["status"], "completed");
  EXPECT_EQ(get_job(c, later)["status"], "pending");
}

TEST(drain, unfinished_jobs_are_handed_back_without_using_an_attempt) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  auto& w = procs.start_worker("w", api, 1, {{"DRAIN_SECONDS", "1"}});
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"},
                       {"parameters", succeeding(60000)}});
  ASSERT_TRUE(reaches(c, id, "running", 20s));
  w.signal(SIGTERM);
  auto code = w.wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  ASSERT_TRUE(reaches(c, id, "pending", 10s));
  auto j = get_job(c, id);
  EXPECT_EQ(j["attempt"], 0);
  procs.start_worker("w2", api, 1);
  ASSERT_TRUE(reaches(c, id, "running", 20s));
  EXPECT_EQ(get_job(c, id)["attempt"], 1);
}

TEST(drain, api_node_exits_cleanly_and_releases_its_claims) {
  auto db = fresh_database();
  orch_cluster procs{db};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};
  for (int i = 0; i < 3; ++i)
    submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  api.proc->signal(SIGTERM);
  auto code = api.proc->wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(query(db, "SELECT count(*) FROM jobs WHERE claimed_by IS NOT "
                      "NULL")
              .at(0)
              .at(0),
            "0");
}

TEST(outage, database_restart_under_load_loses_no_acknowledged_job) {
  auto db = fresh_database();
  // The shared test cluster runs without synchronous commit; a crash of
  // the server would then lose acknowledged commits by design. This test
  // wants PostgreSQL's default: a commit is in the WAL before it returns.
  cluster().psql("postgres", "ALTER DATABASE \"" + db_name(db)
                               + "\" SET synchronous_commit = on");
  orch_cluster procs{db};
  auto& api = procs.start_api("api");
  procs.start_worker("w1", api, 4);
  procs.start_worker("w2", api, 4);
  std::atomic<bool> stop{false};
  std::mutex m;
  std::vector<std::string> acked;
  int unavailable = 0;
  auto load = std::async(std::launch::async, [&] {
    http_client c{api.http_port, 5s};
    while (!stop) {
      auto r = c.post_json("/jobs", R"({"pipeline_name":"load",
        "parameters":{"mock_duration_ms":50,"mock_fail":false}})");
      std::lock_guard<std::mutex> guard{m};
      if (r.status == 201)
        acked.push_back(body_json(r)["id"]);
      else if (r.status == 503) {
        ++unavailable;
        EXPECT_FALSE(r.header("retry-after").empty());
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  auto acked_count = [&] {
    std::lock_guard<std::mutex> guard{m};
    return acked.size();
  };
  // Under load before, across and after the restart.
  EXPECT_TRUE(wait_until([&] { return acked_count() >= 20; }, 30s,
                         "20 jobs acknowledged before the restart"));
  cluster().restart();
  auto before = acked_count();
  EXPECT_TRUE(wait_until([&] { return acked_count() >= before + 20; }, 60s,
                         "20 more acknowledged after the restart"));
  stop = true;
  load.get();
  http_client c{api.http_port};
  ASSERT_TRUE(wait_until([&] { return c.get("/ready").status == 200; }, 30s,
                         "ready again"));
  ASSERT_GT(acked.size(), 10u);
  ASSERT_TRUE(wait_terminal(c, acked, 60s)) << [&] {
    std::string out;
    for (auto& row : query(db, "SELECT status, count(*), min(attempt), "
                               "max(attempt), count(claimed_by) FROM jobs "
                               "GROUP BY status"))
      out += row.at(0) + ":" + row.at(1) + " attempts " + row.at(2) + "-"
             + row.at(3) + " claimed " + row.at(4) + "\n";
    for (auto& id : acked)
      if (get_job(c, id).is_null() || get_job(c, id).empty())
        out += "missing " + id + "\n";
    return out;
  }();
  for (auto& id : acked)
    EXPECT_EQ(get_job(c, id)["status"], "completed") << id;
  EXPECT_TRUE(api.proc->running());
}

TEST(limits, url_query_header_and_nesting_limits_answer_4xx) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  http_client c{api.http_port};
  auto r = c.get("/jobs?pipeline_name=" + std::string(9000, 'a'));
  EXPECT_EQ(r.status, 414) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  std::string many = "/jobs?";
  for (int i = 0; i < 40; ++i)
    many += "p" + std::to_string(i) + "=1&";
  http_client c2{api.http_port};
  r = c2.get(many);
  EXPECT_EQ(r.status, 400) << r.body;
  http_client c3{api.http_port};
  r = c3.request("GET", "/health", "", {{"X-Big", std::string(70000, 'h')}});
  EXPECT_EQ(r.status, 431) << r.body;
  std::string deep = "1";
  for (int i = 0; i < 40; ++i)
    deep = "[" + deep + "]";
  http_client c4{api.http_port};
  r = c4.post_json("/jobs", R"({"pipeline_name":"p","parameters":{"a":)"
                              + deep + "}}");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(body_json(r)["errors"][0]["field"], "parameters");
  EXPECT_TRUE(api.proc->running());
  http_client c5{api.http_port};
  EXPECT_EQ(c5.get("/health").status, 200);
}
