#include "orch/api/dispatch.hpp"
#include "orch/api/job_store.hpp"

#include <gtest/gtest.h>

using namespace orch::api;

TEST(dispatch, spreads_jobs_to_the_freest_worker) {
  auto plan = plan_dispatch({1, 3, 2}, 4);
  EXPECT_EQ(plan, (std::vector<size_t>{1, 1, 2, 0}));
}

TEST(dispatch, never_exceeds_free_slots) {
  auto plan = plan_dispatch({1, 0, 1}, 4);
  EXPECT_EQ(plan, (std::vector<size_t>{0, 2, npos, npos}));
  EXPECT_EQ(plan_dispatch({}, 2), (std::vector<size_t>{npos, npos}));
}

TEST(pg_array, quotes_and_escapes) {
  EXPECT_EQ(pg_array(std::vector<std::string>{}), "{}");
  EXPECT_EQ(pg_array(std::vector<std::string>{"a", "b\"c", "d\\e", "{,}"}),
            R"({"a","b\"c","d\\e","{,}"})");
  EXPECT_EQ(pg_array(std::vector<std::optional<std::string>>{
              std::nullopt, std::string{"NULL"}}),
            R"({NULL,"NULL"})");
  EXPECT_EQ(pg_int_array(std::vector<int>{1, -2, 3}), "{1,-2,3}");
}

TEST(dispatch, sends_jobs_only_to_workers_that_run_their_executor) {
  std::vector<std::vector<std::string>> workers{
    {"mock"}, {"mock", "command", "snakemake"}, {"mock", "command"}};
  auto plan = plan_dispatch({5, 1, 2}, workers,
                            {"snakemake", "snakemake", "command", "mock",
                             "nextflow", "command", "command"});
  // The freest capable worker each time; none for nextflow; none once the
  // command-capable slots are used up.
  EXPECT_EQ(plan, (std::vector<size_t>{1, npos, 2, 0, npos, 2, npos}));
}

// A flush commits its parts at once (scheduler.cpp): every transition of a
// job must land in the same part, in its order, and none may be lost.
TEST(split_by_job, keeps_each_jobs_transitions_together_and_in_order) {
  transition_batch b;
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i)
    ids.push_back("job-" + std::to_string(i));
  for (int i = 0; i < 40; ++i) {
    b.starts.push_back({ids[i], 1, "w", i});
    b.finishes.push_back({ids[i], 1, orch::job_outcome::completed, "", i});
    b.logs.push_back({ids[i], 1, "stdout", {"line " + std::to_string(i)}});
    b.progress.push_back({ids[i], 1, i, 40});
    if (i % 3 == 0)
      b.requeues.push_back({ids[i], 1, "w", "lost"});
    if (i % 5 == 0)
      b.releases.push_back(ids[i]);
  }
  auto parts = split_by_job(std::move(b), 3);
  ASSERT_EQ(parts.size(), 3u);
  size_t starts = 0, finishes = 0, requeues = 0, releases = 0, logs = 0,
         progress = 0;
  for (size_t p = 0; p < parts.size(); ++p) {
    auto& part = parts[p];
    EXPECT_FALSE(part.empty()) << "40 jobs leave no part empty";
    auto mine = [&](const std::string& id) { return part_of(id, 3) == p; };
    orch::micros last = -1;
    for (auto& s : part.starts) {
      EXPECT_TRUE(mine(s.job_id));
      EXPECT_LT(last, s.at) << "starts keep their order";
      last = s.at;
    }
    last = -1;
    for (auto& f : part.finishes) {
      EXPECT_TRUE(mine(f.job_id));
      EXPECT_LT(last, f.at) << "finishes keep their order";
      last = f.at;
    }
    for (auto& q : part.requeues)
      EXPECT_TRUE(mine(q.job_id));
    for (auto& r : part.releases)
      EXPECT_TRUE(mine(r));
    for (auto& l : part.logs) {
      EXPECT_TRUE(mine(l.job_id));
      ASSERT_EQ(l.lines.size(), 1u);
      EXPECT_EQ(l.lines[0], "line " + l.job_id.substr(4));
    }
    for (auto& g : part.progress)
      EXPECT_TRUE(mine(g.job_id));
    starts += part.starts.size();
    finishes += part.finishes.size();
    requeues += part.requeues.size();
    releases += part.releases.size();
    logs += part.logs.size();
    progress += part.progress.size();
  }
  EXPECT_EQ(starts, 40u);
  EXPECT_EQ(finishes, 40u);
  EXPECT_EQ(requeues, 14u);
  EXPECT_EQ(releases, 8u);
  EXPECT_EQ(logs, 40u);
  EXPECT_EQ(progress, 40u);
  // One part: the batch as it was.
  transition_batch one;
  one.starts.push_back({"a", 1, "w", 1});
  one.releases.push_back("b");
  auto whole = split_by_job(std::move(one), 1);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].starts.size(), 1u);
  EXPECT_EQ(whole[0].releases, (std::vector<std::string>{"b"}));
}
