// job_store against a real PostgreSQL: migrations, submission, listing,
// claims under concurrency, and attempt fencing.

#include "common.hpp"

#include "orch/api/job_store.hpp"
#include "orch/error.hpp"

#include <set>
#include <thread>

using namespace orch;
using namespace orch::api;
using namespace orch::test;

namespace {

class store : public ::testing::Test {
protected:
  void SetUp() override {
    url = fresh_database();
    db = std::make_unique<job_store>(url);
    auto applied = db->migrate(ORCH_MIGRATIONS_DIR);
    ASSERT_TRUE(applied) << render(applied.error());
  }

  std::vector<job> insert(int n, int32_t priority = 0,
                          const std::string& name = "p") {
    std::vector<job_submission> subs(n);
    for (auto& s : subs) {
      s.pipeline_name = name;
      s.priority = priority;
    }
    auto jobs = db->insert_jobs(subs);
    EXPECT_TRUE(jobs) << render(jobs.error());
    return jobs ? *jobs : std::vector<job>{};
  }

  std::string url;
  std::unique_ptr<job_store> db;
};

} // namespace

TEST_F(store, migrations_are_recorded_and_idempotent) {
  auto again = db->migrate(ORCH_MIGRATIONS_DIR);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  auto name = url.substr(url.rfind('/') + 1);
  EXPECT_NE(cluster().psql(name, "SELECT count(*) FROM schema_migrations"),
            "0");
}

TEST_F(store, concurrent_migrations_are_serialized) {
  auto fresh = fresh_database();
  std::vector<caf::expected<size_t>> results(4, size_t{0});
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      job_store s{fresh};
      results[i] = s.migrate(ORCH_MIGRATIONS_DIR);
    });
  for (auto& t : threads)
    t.join();
  size_t total = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r) << render(r.error());
    total += *r;
  }
  // Every migration was applied exactly once, by one of them.
  auto name = fresh.substr(fresh.rfind('/') + 1);
  EXPECT_EQ(std::to_string(total),
            cluster().psql(name, "SELECT count(*) FROM schema_migrations"));
}

TEST_F(store, insert_get_and_events) {
  auto jobs = insert(3);
  ASSERT_EQ(jobs.size(), 3u);
  auto x = db->get_job(jobs[1].id);
  ASSERT_TRUE(x) << render(x.error());
  EXPECT_EQ(x->status, job_status::pending);
  EXPECT_EQ(x->attempt, 0);
  EXPECT_EQ(x->created_at, jobs[1].created_at);
  auto missing = db->get_job(make_uuid());
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), ec::not_found);
  auto name = url.substr(url.rfind('/') + 1);
  EXPECT_EQ(cluster().psql(name, "SELECT count(*) FROM job_events WHERE "
                                 "to_status = 'pending' AND from_status IS "
                                 "NULL"),
            "3");
}

TEST_F(store, batch_lookup_returns_the_jobs_that_exist) {
  auto jobs = insert(3);
  ASSERT_EQ(jobs.size(), 3u);
  auto none = db->get_jobs({});
  ASSERT_TRUE(none) << render(none.error());
  EXPECT_TRUE(none->empty());
  // A missing id is left out; an id asked for twice comes once.
  auto x = db->get_jobs({jobs[0].id, make_uuid(), jobs[2].id, jobs[0].id});
  ASSERT_TRUE(x) << render(x.error());
  std::set<std::string> got;
  for (auto& j : *x) {
    got.insert(j.id);
    EXPECT_EQ(j.status, job_status::pending);
  }
  EXPECT_EQ(x->size(), 2u);
  EXPECT_EQ(got, (std::set<std::string>{jobs[0].id, jobs[2].id}));
}

// Times come back to the microsecond (ORCH_MICROS), and a pending job
// says why it waits (job_waiting_reason, migration 0007).
TEST_F(store, times_are_exact_and_pending_jobs_say_why_they_wait) {
  auto jobs = insert(2);
  ASSERT_EQ(jobs.size(), 2u);
  // 2026-12-03T12:34:56.789123Z and 2105-12-31T23:59:59.999999Z.
  const micros a = 1796301296789123;
  const micros b = 4291747199999999;
  query(url, "UPDATE jobs SET created_at = timestamptz 'epoch' + "
               + std::to_string(a) + " * interval '1 microsecond',"
               " next_attempt_at = timestamptz 'epoch' + " + std::to_string(b)
               + " * interval '1 microsecond' WHERE id = '" + jobs[0].id
               + "'");
  auto x = db->get_job(jobs[0].id);
  ASSERT_TRUE(x) << render(x.error());
  EXPECT_EQ(x->created_at, a);
  ASSERT_TRUE(x->next_attempt_at);
  EXPECT_EQ(*x->next_attempt_at, b);
  EXPECT_EQ(x->waiting_reason,
            "retry backoff: next attempt at 2105-12-31T23:59:59.999Z");
  // No worker is connected.
  auto y = db->get_job(jobs[1].id);
  ASSERT_TRUE(y);
  EXPECT_EQ(y->waiting_reason, "no connected worker can run executor mock");
  // Only pending jobs wait.
  query(url, "UPDATE jobs SET status = 'cancelled' WHERE id = '" + jobs[1].id
               + "'");
  y = db->get_job(jobs[1].id);
  ASSERT_TRUE(y);
  EXPECT_FALSE(y->waiting_reason);
}

TEST_F(store, stores_hostile_strings_verbatim) {
  job_submission s;
  s.pipeline_name = "p";
  s.description = "'; DROP TABLE jobs; -- \xF0\x9F\xA7\xAC \xE2\x80\xAE";
  s.parameters_json = R"({"q":"' OR 1=1 --","emoji":"🧬","rtl":"‮"})";
  auto jobs = db->insert_jobs({s});
  ASSERT_TRUE(jobs);
  auto x = db->get_job(jobs->at(0).id);
  ASSERT_TRUE(x);
  EXPECT_EQ(*x->description, *s.description);
  EXPECT_EQ(nlohmann::json::parse(x->parameters_json),
            nlohmann::json::parse(s.parameters_json));
}

TEST_F(store, lists_newest_first_with_keyset_pages) {
  auto a = insert(5, 0, "a");
  auto b = insert(4, 0, "b");
  job_filter f;
  f.limit = 3;
  std::vector<std::string> seen;
  int pages = 0;
  for (;;) {
    auto page = db->list_jobs(f);
    ASSERT_TRUE(page) << render(page.error());
    EXPECT_EQ(page->total, 9);
    for (auto& x : page->jobs)
      seen.push_back(x.id);
    ++pages;
    if (!page->next_seq)
      break;
    f.before_seq = page->next_seq;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 9u);
  EXPECT_EQ(seen.front(), b.back().id);
  EXPECT_EQ(seen.back(), a.front().id);
  job_filter only_a;
  only_a.pipeline_name = "a";
  only_a.statuses = {job_status::pending, job_status::running};
  auto page = db->list_jobs(only_a);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->total, 5);
  EXPECT_FALSE(page->next_seq);
}

TEST_F(store, claims_by_priority_then_submission_order) {
  auto low = insert(2, -5);
  auto high = insert(2, 7);
  auto mid = insert(1, 0);
  auto claimed = db->claim(10, "s1", std::chrono::seconds{30});
  ASSERT_TRUE(claimed) << render(claimed.error());
  ASSERT_EQ(claimed->size(), 5u);
  std::vector<std::string> order;
  for (auto& c : *claimed)
    order.push_back(c.id);
  EXPECT_EQ(order, (std::vector<std::string>{high[0].id, high[1].id,
                                             mid[0].id, low[0].id,
                                             low[1].id}));
  // Claimed jobs are not claimed again until the claim expires.
  auto again = db->claim(10, "s2", std::chrono::seconds{30});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty());
}

TEST_F(store, concurrent_claims_never_overlap) {
  insert(400);
  std::vector<std::vector<claimed_job>> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      job_store s{url};
      for (;;) {
        auto c = s.claim(7, "s" + std::to_string(i), std::chrono::seconds{30});
        if (!c || c->empty())
          break;
        got[i].insert(got[i].end(), c->begin(), c->end());
      }
    });
  for (auto& t : threads)
    t.join();
  std::set<std::string> ids;
  size_t n = 0;
  for (auto& g : got) {
    n += g.size();
    for (auto& c : g)
      ids.insert(c.id);
  }
  EXPECT_EQ(n, 400u);
  EXPECT_EQ(ids.size(), 400u);
}

TEST_F(store, expired_claims_are_claimable_again) {
  insert(1);
  auto first = db->claim(1, "dead", std::chrono::milliseconds{1});
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_TRUE(wait_until(
    [&] {
      auto c = db->claim(1, "alive", std::chrono::seconds{30});
      return c && c->size() == 1;
    },
    5s));
}

TEST_F(store, transitions_are_fenced_by_attempt_and_claim) {
  auto jobs = insert(1);
  auto id = jobs[0].id;
  ASSERT_TRUE(db->claim(1, "s1", std::chrono::seconds{30}));
  transition_batch b;
  // Another scheduler cannot start a job it did not claim.
  b.starts.push_back({id, 1, "w1", now_micros()});
  auto out = db->apply(b, "s2");
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->started.empty());
  out = db->apply(b, "s1");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->started, std::vector<std::string>{id});
  // A second start of the same attempt is rejected.
  out = db->apply(b, "s1");
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->started.empty());
  // Requeue attempt 1, then run attempt 2.
  transition_batch lost;
  lost.requeues.push_back({id, 1, "w1", "worker w1 lost"});
  out = db->apply(lost, "s1");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->requeued.size(), 1u);
  ASSERT_TRUE(db->claim(1, "s1", std::chrono::seconds{30}));
  transition_batch second;
  second.starts.push_back({id, 2, "w2", now_micros()});
  ASSERT_TRUE(db->apply(second, "s1"));
  // The late result of attempt 1 must not overwrite attempt 2.
  transition_batch stale;
  stale.finishes.push_back({id, 1, job_outcome::completed, "", now_micros()});
  out = db->apply(stale, "s1");
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->finished.empty());
  transition_batch fine;
  fine.finishes.push_back(
    {id, 2, job_outcome::failed, "low coverage", now_micros()});
  out = db->apply(fine, "s1");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->finished.size(), 1u);
  auto x = db->get_job(id);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::failed);
  EXPECT_EQ(x->attempt, 2);
  EXPECT_EQ(*x->worker_id, "w2");
  EXPECT_EQ(*x->error_message, "low coverage");
  ASSERT_TRUE(x->started_at && x->completed_at);
  EXPECT_LE(x->created_at, *x->started_at);
  EXPECT_LE(*x->started_at, *x->completed_at);
  auto name = url.substr(url.rfind('/') + 1);
  EXPECT_EQ(cluster().psql(name, "SELECT string_agg(coalesce(from_status,'-')"
                                 " || '>' || to_status || '@' || attempt, ' '"
                                 " ORDER BY id) FROM job_events"),
            "->pending@0 pending>running@1 running>pending@1 "
            "pending>running@2 running>failed@2");
}

TEST_F(store, a_start_and_finish_in_one_batch_are_one_update_with_both_events) {
  std::vector<job_submission> subs(8);
  for (auto& s : subs)
    s.pipeline_name = "p";
  subs[1].max_attempts = 2;
  auto jobs = db->insert_jobs(subs);
  ASSERT_TRUE(jobs) << render(jobs.error());
  ASSERT_TRUE(db->claim(8, "s1", std::chrono::seconds{30}));
  auto id = [&](size_t i) { return (*jobs)[i].id; };
  auto t0 = now_micros();
  transition_batch b;
  for (size_t i = 0; i < 8; ++i)
    b.starts.push_back({id(i), 1, "w1", t0});
  auto finish = [&](size_t i, job_outcome outcome, std::string error = "") {
    b.finishes.push_back({id(i), 1, outcome, std::move(error), t0 + 10});
  };
  finish(0, job_outcome::completed);
  finish(1, job_outcome::failed, "exit 1"); // one attempt left
  finish(2, job_outcome::released);
  // Job 3 reports progress in between: its start and finish stay apart.
  b.progress.push_back({id(3), 1, 5, 10});
  finish(3, job_outcome::completed);
  // Job 4 only starts.
  finish(5, job_outcome::failed, "exit 2"); // no attempt left
  finish(6, job_outcome::cancelled, "stopped");
  // Job 7's start committed in a flush whose outcome was in doubt (below),
  // so the retried batch holds its start again, with its finish.
  finish(7, job_outcome::completed);
  auto joined = joined_starts(b);
  EXPECT_EQ(joined.size(), 6u);
  EXPECT_EQ(joined.count(id(3)), 0u);
  EXPECT_EQ(joined.count(id(4)), 0u);
  // Another scheduler's joined reports are fenced off, start and finish.
  auto out = db->apply(b, "s2");
  ASSERT_TRUE(out) << render(out.error());
  EXPECT_TRUE(out->started.empty());
  EXPECT_TRUE(out->finished.empty());
  transition_batch in_doubt;
  in_doubt.starts.push_back(b.starts[7]);
  out = db->apply(in_doubt, "s1");
  ASSERT_TRUE(out) << render(out.error());
  ASSERT_EQ(out->started, std::vector<std::string>{id(7)});
  // Count the row updates of jobs from here on.
  auto name = url.substr(url.rfind('/') + 1);
  cluster().psql(name,
                 "CREATE TABLE updates (id uuid);"
                 " CREATE FUNCTION count_update() RETURNS trigger"
                 " LANGUAGE plpgsql AS $$ BEGIN"
                 " INSERT INTO updates VALUES (NEW.id); RETURN NULL; END $$;"
                 " CREATE TRIGGER count_update AFTER UPDATE ON jobs"
                 " FOR EACH ROW EXECUTE FUNCTION count_update()");
  out = db->apply(b, "s1");
  ASSERT_TRUE(out) << render(out.error());
  // Job 7's second start is rejected, as it was before the join; its
  // finish is applied.
  EXPECT_EQ(std::set<std::string>(out->started.begin(), out->started.end()),
            (std::set<std::string>{id(0), id(1), id(2), id(3), id(4), id(5),
                                   id(6)}));
  EXPECT_EQ(std::set<std::string>(out->finished.begin(), out->finished.end()),
            (std::set<std::string>{id(0), id(1), id(2), id(3), id(5), id(6),
                                   id(7)}));
  ASSERT_EQ(out->start_rows.size(), 7u);
  for (auto& row : out->start_rows) {
    EXPECT_EQ(row.status, job_status::running) << row.job_id;
    EXPECT_EQ(row.attempt, 1) << row.job_id;
    EXPECT_EQ(row.started_at, std::optional<micros>{t0}) << row.job_id;
    EXPECT_FALSE(row.completed_at) << row.job_id;
  }
  EXPECT_EQ(out->end_rows.size(), 7u);
  // One update each for the five joined jobs; the others as before: a
  // start, a progress report and a finish for 3, a start for 4, a finish
  // for 7. The two statements make 15.
  EXPECT_EQ(cluster().psql(name, "SELECT count(*) FROM updates"), "10");
  // The same end as a start and a finish applied one after the other.
  auto x = db->get_job(id(0));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::completed);
  EXPECT_EQ(x->attempt, 1);
  EXPECT_EQ(x->worker_id, std::optional<std::string>{"w1"});
  EXPECT_EQ(x->started_at, std::optional<micros>{t0});
  EXPECT_EQ(x->completed_at, std::optional<micros>{t0 + 10});
  EXPECT_FALSE(x->error_message);
  x = db->get_job(id(1));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::pending);
  EXPECT_EQ(x->attempt, 1);
  EXPECT_EQ(x->error_message, std::optional<std::string>{"exit 1"});
  EXPECT_TRUE(x->next_attempt_at);
  EXPECT_FALSE(x->started_at);
  EXPECT_FALSE(x->completed_at);
  EXPECT_FALSE(x->worker_id);
  x = db->get_job(id(2));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::pending);
  EXPECT_EQ(x->attempt, 0);
  EXPECT_FALSE(x->next_attempt_at);
  x = db->get_job(id(3));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::completed);
  ASSERT_TRUE(x->progress);
  EXPECT_EQ(x->progress->completed, 5);
  x = db->get_job(id(4));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::running);
  x = db->get_job(id(5));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::failed);
  EXPECT_EQ(x->error_message, std::optional<std::string>{"exit 2"});
  EXPECT_EQ(x->completed_at, std::optional<micros>{t0 + 10});
  x = db->get_job(id(6));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::cancelled);
  EXPECT_EQ(x->error_message, std::optional<std::string>{"stopped"});
  x = db->get_job(id(7));
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, job_status::completed);
  EXPECT_EQ(x->started_at, std::optional<micros>{t0});
  // Every transition has its event, in the order it happened.
  auto events = [&](size_t i) {
    return cluster().psql(name, "SELECT string_agg(coalesce(from_status,'-')"
                                " || '>' || to_status || '@' || attempt || '@'"
                                " || coalesce(worker_id, '-'), ' ' ORDER BY id)"
                                " FROM job_events WHERE job_id = '"
                                  + id(i) + "'");
  };
  auto ran = [](std::string end) {
    return "->pending@0@- pending>running@1@w1 running>" + end + "@1@w1";
  };
  EXPECT_EQ(events(0), ran("completed"));
  EXPECT_EQ(events(1), ran("pending"));
  EXPECT_EQ(events(2), ran("pending"));
  EXPECT_EQ(events(3), ran("completed"));
  EXPECT_EQ(events(4), "->pending@0@- pending>running@1@w1");
  EXPECT_EQ(events(5), ran("failed"));
  EXPECT_EQ(events(6), ran("cancelled"));
  EXPECT_EQ(events(7), ran("completed"));
  auto message = [&](size_t i, const char* to) {
    return cluster().psql(name, "SELECT message FROM job_events WHERE job_id"
                                " = '" + id(i) + "' AND from_status IS NOT NULL"
                                " AND to_status = '" + to + "'");
  };
  EXPECT_EQ(message(0, "running"), "started on w1");
  EXPECT_EQ(message(5, "failed"), "exit 2");
  EXPECT_EQ(message(2, "pending"),
            "handed back by a draining worker; attempt not counted");
  EXPECT_EQ(message(1, "pending").rfind("attempt 1 of 2 failed: exit 1; "
                                        "retry after ", 0),
            0u)
    << message(1, "pending");
  // A second delivery of the same reports changes nothing.
  out = db->apply(b, "s1");
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->started.empty());
  EXPECT_TRUE(out->finished.empty());
  EXPECT_EQ(cluster().psql(name, "SELECT count(*) FROM updates"), "10");
  // The released job's claim is gone: it is the only claimable job (job 1
  // waits for its retry).
  auto again = db->claim(8, "s1", std::chrono::seconds{30});
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].id, id(2));
}

TEST_F(store, unreachable_database_is_reported_as_unavailable) {
  job_store nowhere{"postgresql://postgres@127.0.0.1:"
                    + std::to_string(free_port()) + "/x?connect_timeout=2"};
  auto err = nowhere.ping();
  EXPECT_EQ(code_of(err), ec::database_unavailable) << render(err);
  auto r = nowhere.get_job(make_uuid());
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), ec::database_unavailable);
}

TEST_F(store, totals_come_from_counters_that_stay_exact) {
  insert(5, 0, "a");
  insert(3, 0, "b");
  auto total = [&](std::vector<job_status> statuses,
                   std::optional<std::string> name) {
    job_filter f;
    f.statuses = std::move(statuses);
    f.pipeline_name = std::move(name);
    auto page = db->list_jobs(f);
    EXPECT_TRUE(page) << render(page.error());
    return page ? page->total : -1;
  };
  EXPECT_EQ(total({}, std::nullopt), 8);
  EXPECT_EQ(total({job_status::pending}, std::string{"a"}), 5);
  // Run two of pipeline a to the end; compact in between.
  auto claimed = db->claim(2, "s1", std::chrono::seconds{30});
  ASSERT_TRUE(claimed);
  transition_batch b;
  for (auto& c : *claimed)
    b.starts.push_back({c.id, 1, "w", now_micros()});
  ASSERT_TRUE(db->apply(b, "s1"));
  { auto err = db->compact_counts(); ASSERT_FALSE(err) << render(err); }
  EXPECT_EQ(total({job_status::running}, std::nullopt), 2);
  transition_batch f;
  f.finishes.push_back({(*claimed)[0].id, 1, job_outcome::completed, "",
                        now_micros()});
  ASSERT_TRUE(db->apply(f, "s1"));
  EXPECT_EQ(total({job_status::running}, std::nullopt), 1);
  EXPECT_EQ(total({job_status::completed, job_status::running},
                  std::nullopt),
            2);
  EXPECT_EQ(total({job_status::pending}, std::nullopt), 6);
  { auto err = db->compact_counts(); ASSERT_FALSE(err) << render(err); }
  EXPECT_EQ(total({}, std::nullopt), 8);
  // The counters agree with count(*) per pipeline and status.
  auto name = url.substr(url.rfind('/') + 1);
  EXPECT_EQ(cluster().psql(name,
                           "SELECT count(*) FROM (SELECT pipeline_name, "
                           "status, count(*) FROM jobs GROUP BY 1, 2 EXCEPT "
                           "SELECT pipeline_name, status, jobs FROM "
                           "ops_job_counts WHERE jobs <> 0) d"),
            "0");
  // An operator deleting jobs keeps them exact too.
  cluster().psql(name, "DELETE FROM jobs WHERE pipeline_name = 'b'");
  EXPECT_EQ(total({}, std::string{"b"}), 0);
  EXPECT_EQ(total({}, std::nullopt), 5);
}
