#include "common.hpp"

#include <cstdio>

namespace orch::test {

namespace {

std::unique_ptr<pg_cluster> the_cluster;
std::atomic<int> db_counter{0};

class environment : public ::testing::Environment {
public:
  void TearDown() override {
    the_cluster.reset();
  }
};

[[maybe_unused]] auto* env
  = ::testing::AddGlobalTestEnvironment(new environment);

} // namespace

pg_cluster& cluster() {
  if (!the_cluster)
    the_cluster = std::make_unique<pg_cluster>();
  return *the_cluster;
}

std::string fresh_database() {
  return cluster().create_database("orch_test_"
                                   + std::to_string(++db_counter));
}

json body_json(const http_response& r) {
  try {
    return json::parse(r.body);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (status " << r.status << "): " << r.body;
    return json{};
  }
}

json get_job(http_client& c, const std::string& id) {
  auto r = c.get("/jobs/" + id);
  EXPECT_EQ(r.status, 200) << r.body;
  return body_json(r);
}

std::string submit(http_client& c, const json& body) {
  auto r = c.post_json("/jobs", body.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  return body_json(r).value("id", "");
}

bool wait_terminal(http_client& c, const std::vector<std::string>& ids,
                   std::chrono::milliseconds timeout) {
  size_t next = 0;
  return wait_until(
    [&] {
      while (next < ids.size()) {
        auto r = c.get("/jobs/" + ids[next]);
        if (r.status != 200)
          return false;
        auto status = body_json(r).value("status", "");
        if (status == "pending" || status == "running")
          return false;
        ++next;
      }
      return true;
    },
    timeout);
}

void dump_on_failure(std::initializer_list<child_process*> procs) {
  if (!::testing::Test::HasFailure())
    return;
  for (auto* p : procs)
    if (p != nullptr)
      std::fprintf(stderr, "----- log of %s -----\n%s\n", p->name().c_str(),
                   p->log().c_str());
}

} // namespace orch::test
