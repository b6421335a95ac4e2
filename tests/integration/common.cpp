#include "common.hpp"

#include <cctype>
#include <cstdio>
#include <sstream>

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

std::vector<std::vector<std::string>> query(const std::string& db_url,
                                            const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  auto out = cluster().psql(db_name(db_url), sql);
  std::istringstream in{out};
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    size_t start = 0;
    for (;;) {
      auto bar = line.find('|', start);
      cols.push_back(line.substr(start, bar - start));
      if (bar == std::string::npos)
        break;
      start = bar + 1;
    }
    rows.push_back(std::move(cols));
  }
  return rows;
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

long count_jobs(http_client& c, const std::string& statuses) {
  auto r = c.get("/jobs?limit=1&status=" + statuses);
  if (r.status != 200)
    return -1;
  try {
    return json::parse(r.body).at("total").get<long>();
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<json> list_all_jobs(http_client& c,
                                const std::string& query_string) {
  std::vector<json> jobs;
  std::string cursor;
  for (int page = 0; page < 1000; ++page) {
    auto path = "/jobs?limit=1000" + query_string;
    if (!cursor.empty())
      path += "&cursor=" + url_encode(cursor);
    auto r = c.get(path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    if (r.status != 200)
      break;
    auto j = body_json(r);
    for (auto& x : j.value("jobs", json::array()))
      jobs.push_back(x);
    if (!j.contains("next_cursor") || !j["next_cursor"].is_string())
      break;
    cursor = j["next_cursor"].get<std::string>();
  }
  return jobs;
}

std::vector<std::string> worker_ids(http_client& c) {
  std::vector<std::string> ids;
  auto r = c.get("/workers");
  if (r.status != 200)
    return ids;
  try {
    auto body = json::parse(r.body);
    for (auto& w : body.at("workers"))
      ids.push_back(w.at("id").get<std::string>());
  } catch (const std::exception&) {
    // Not the expected shape: no workers as far as the caller can tell.
  }
  return ids;
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
