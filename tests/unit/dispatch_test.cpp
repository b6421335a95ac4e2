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
