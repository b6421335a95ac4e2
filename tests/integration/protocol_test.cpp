// Registration edge cases with a real CAF peer: a worker of another protocol
// version or with unknown message types is refused and the scheduler lives
// on; a duplicate worker id is refused.

#include "common.hpp"

using namespace orch::test;

namespace {

std::string foreign_worker_binary() {
  return ORCH_FOREIGN_WORKER_BIN;
}

} // namespace

TEST(protocol, other_version_or_unknown_types_are_refused_without_harm) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  for (auto mode : {"version", "types"}) {
    child_process impostor{
      std::string{"foreign-"} + mode,
      {foreign_worker_binary(), std::to_string(api.scheduler_port), mode},
      {}};
    auto code = impostor.wait_exit(30s);
    ASSERT_TRUE(code.has_value()) << mode;
    EXPECT_EQ(*code, 0) << mode << ": " << impostor.log();
    EXPECT_NE(impostor.log().find("refused"), std::string::npos)
      << impostor.log();
  }
  EXPECT_NE(api.proc->log().find("protocol version"), std::string::npos);
  EXPECT_NE(api.proc->log().find("does not understand"), std::string::npos);
  // The scheduler still works: a real worker registers and runs a job.
  EXPECT_TRUE(api.proc->running());
  procs.start_worker("real", api, 1);
  http_client c{api.http_port};
  EXPECT_EQ(c.get("/ready").status, 200);
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  EXPECT_TRUE(wait_terminal(c, {id}, 30s));
  EXPECT_EQ(get_job(c, id)["status"], "completed");
}

TEST(protocol, duplicate_worker_id_is_refused) {
  orch_cluster procs{fresh_database()};
  auto& api = procs.start_api("api");
  procs.start_worker("twin", api, 1);
  http_client c{api.http_port};
  ASSERT_TRUE(wait_until([&] { return worker_ids(c).size() == 1; }, 20s,
                         "first twin registered"));
  procs.start_worker("twin", api, 1);
  EXPECT_TRUE(wait_until(
    [&] {
      return api.proc->log().find("refused worker twin")
             != std::string::npos;
    },
    20s, "second twin refused"));
  EXPECT_EQ(worker_ids(c).size(), 1u);
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  EXPECT_TRUE(wait_terminal(c, {id}, 30s));
}
