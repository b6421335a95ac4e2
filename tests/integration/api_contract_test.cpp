// The REST contract of issue 2 against a real api-node and PostgreSQL:
// every endpoint, every status code and error case.

#include "common.hpp"

#include <cctype>
#include <future>
#include <regex>
#include <set>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace orch::test;

namespace {

class api : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    db = new std::string(fresh_database());
    node = api_node::start("api", *db,
                           {{"IMAGE_TAG", "v-test-7"},
                            {"ECHO_MESSAGE", "hi from test"}})
             .release();
  }

  static void TearDownTestSuite() {
    delete node;
    delete db;
  }

  void TearDown() override {
    dump_on_failure({node->proc.get()});
  }

  http_client client() {
    return http_client{node->http_port};
  }

  // Asserts a problem+json answer with `status`; returns its body.
  json expect_problem(const http_response& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json")
      << r.body;
    auto j = body_json(r);
    for (auto key : {"type", "title", "status", "detail"})
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << r.body;
    EXPECT_EQ(j.value("status", 0), status);
    return j;
  }

  void expect_field_error(const http_response& r, const std::string& field) {
    auto j = expect_problem(r, 422);
    bool found = false;
    for (auto& e : j.value("errors", json::array()))
      found = found || e.value("field", "") == field;
    EXPECT_TRUE(found) << "no error for " << field << ": " << r.body;
  }

  static std::string* db;
  static api_node* node;
};

std::string* api::db = nullptr;
api_node* api::node = nullptr;

const std::regex rfc3339{R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"};

} // namespace

TEST_F(api, root_health_version) {
  auto c = client();
  auto r = c.get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["message"], "hi from test");
  EXPECT_EQ(body_json(r)["name"], "orch");
  EXPECT_TRUE(body_json(r).contains("version"));
  r = c.get("/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r), (json{{"status", "ok"}}));
  r = c.get("/version");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["image_tag"], "v-test-7");
  EXPECT_EQ(c.get("/ready").status, 200);
}

TEST_F(api, submit_answers_201_with_location_and_the_job) {
  auto c = client();
  auto r = c.post_json("/jobs", R"({"pipeline_name":"rna.seq-1",
    "parameters":{"mock_duration_ms":100000,"x":[1,"two"]},
    "description":"d","priority":5})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto j = body_json(r);
  EXPECT_EQ(r.header("location"), "/jobs/" + j["id"].get<std::string>());
  EXPECT_EQ(j["status"], "pending");
  EXPECT_EQ(j["pipeline_name"], "rna.seq-1");
  EXPECT_EQ(j["parameters"]["x"][1], "two");
  EXPECT_EQ(j["description"], "d");
  EXPECT_EQ(j["priority"], 5);
  EXPECT_EQ(j["attempt"], 0);
  EXPECT_TRUE(j["worker_id"].is_null());
  EXPECT_TRUE(j["started_at"].is_null());
  EXPECT_TRUE(j["completed_at"].is_null());
  EXPECT_TRUE(j["error_message"].is_null());
  EXPECT_TRUE(std::regex_match(j["created_at"].get<std::string>(), rfc3339));
  EXPECT_TRUE(std::regex_match(j["updated_at"].get<std::string>(), rfc3339));
  // Committed before the answer: readable at once, identical but for the
  // waiting reason, which reads are the ones to compute.
  auto g = c.get(r.header("location"));
  ASSERT_EQ(g.status, 200);
  auto stored = body_json(g);
  EXPECT_TRUE(j["waiting_reason"].is_null());
  EXPECT_EQ(stored["waiting_reason"],
            "no connected worker can run executor mock");
  stored.erase("waiting_reason");
  j.erase("waiting_reason");
  EXPECT_EQ(stored, j);
}

TEST_F(api, defaults_fill_optional_fields) {
  auto c = client();
  auto r = c.post_json("/jobs", R"({"pipeline_name":"p"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto j = body_json(r);
  EXPECT_EQ(j["parameters"], json::object());
  EXPECT_TRUE(j["description"].is_null());
  EXPECT_EQ(j["priority"], 0);
}

TEST_F(api, malformed_json_is_400) {
  auto c = client();
  expect_problem(c.post_json("/jobs", R"({"pipeline_name":)"), 400);
  expect_problem(c.post_json("/jobs", "not json"), 400);
  expect_problem(c.post_json("/jobs", ""), 400);
}

TEST_F(api, rule_violations_are_422_naming_the_field) {
  auto c = client();
  expect_field_error(c.post_json("/jobs", "{}"), "pipeline_name");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":5})"),
                     "pipeline_name");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":"a b"})"),
                     "pipeline_name");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":")"
                                            + std::string(129, 'x') + "\"}"),
                     "pipeline_name");
  expect_field_error(
    c.post_json("/jobs", R"({"pipeline_name":"p","parameters":[1]})"),
    "parameters");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":"p",
    "parameters":{"k":")" + std::string(70000, 'a') + "\"}}"),
                     "parameters");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":"p",
    "description":")" + std::string(4097, 'a') + "\"}"),
                     "description");
  expect_field_error(
    c.post_json("/jobs", R"({"pipeline_name":"p","priority":1001})"),
    "priority");
  expect_field_error(
    c.post_json("/jobs", R"({"pipeline_name":"p","priority":"high"})"),
    "priority");
  expect_field_error(c.post_json("/jobs", R"({"pipeline_name":"p","x":1})"),
                     "x");
  expect_problem(c.post_json("/jobs", "[1,2]"), 422);
}

TEST_F(api, non_json_content_type_is_415) {
  auto c = client();
  expect_problem(c.request("POST", "/jobs", R"({"pipeline_name":"p"})",
                           {{"Content-Type", "text/plain"}}),
                 415);
  expect_problem(c.request("POST", "/jobs", "pipeline_name=p",
                           {{"Content-Type",
                             "application/x-www-form-urlencoded"}}),
                 415);
  EXPECT_EQ(c.request("POST", "/jobs", R"({"pipeline_name":"p"})",
                      {{"Content-Type", "application/json; charset=utf-8"}})
              .status,
            201);
}

TEST_F(api, body_over_one_mebibyte_is_413) {
  auto c = client();
  std::string big = R"({"pipeline_name":"p","description":")"
                    + std::string((1 << 20) + 10, 'a') + "\"}";
  auto r = c.post_json("/jobs", big);
  EXPECT_EQ(r.status, 413) << r.body.substr(0, 200);
}

TEST_F(api, lying_content_length_is_refused_and_the_node_survives) {
  auto c = client();
  for (auto len : {"99999999999", "-1", "abc"}) {
    auto out = c.raw(std::string{"POST /jobs HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: "}
                     + len + "\r\n\r\n{\"pipeline_name\":\"p\"}");
    ASSERT_GE(out.size(), 12u) << "no answer for Content-Length " << len;
    auto status = std::atoi(out.substr(9, 3).c_str());
    EXPECT_GE(status, 400) << out;
    EXPECT_LT(status, 500) << out;
    EXPECT_EQ(c.get("/health").status, 200) << "after " << len;
  }
  EXPECT_TRUE(node->proc->running());
}

TEST_F(api, get_job_errors) {
  auto c = client();
  expect_problem(c.get("/jobs/6f1b2a7e-0000-4000-8000-000000000000"), 404);
  expect_field_error(c.get("/jobs/not-a-uuid"), "id");
  expect_field_error(c.get("/jobs/123"), "id");
}

TEST_F(api, unknown_route_404_wrong_method_405) {
  auto c = client();
  expect_problem(c.get("/nope"), 404);
  expect_problem(c.get("/jobs/6f1b2a7e-0000-4000-8000-000000000000/x/y"),
                 404);
  auto r = c.request("DELETE", "/health");
  expect_problem(r, 405);
  EXPECT_NE(r.header("allow").find("GET"), std::string::npos);
  expect_problem(c.request("PUT", "/jobs", "{}"), 405);
  expect_problem(c.request("POST", "/workers", "{}"), 405);
}

TEST_F(api, list_filters_and_paginates_with_cursor) {
  auto fresh = fresh_database();
  auto n = api_node::start("api-list", fresh);
  http_client c{n->http_port};
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i)
    ids.push_back(submit(c, {{"pipeline_name", i % 2 ? "odd" : "even"},
                             {"parameters", {{"i", i}}}}));
  auto r = c.get("/jobs?limit=3");
  ASSERT_EQ(r.status, 200) << r.body;
  auto page = body_json(r);
  EXPECT_EQ(page["total"], 7);
  std::vector<std::string> seen;
  for (;;) {
    for (auto& j : page["jobs"])
      seen.push_back(j["id"]);
    if (page["next_cursor"].is_null())
      break;
    r = c.get("/jobs?limit=3&cursor="
              + page["next_cursor"].get<std::string>());
    ASSERT_EQ(r.status, 200) << r.body;
    page = body_json(r);
  }
  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, newest_first);
  r = c.get("/jobs?pipeline_name=odd");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["total"], 3);
  EXPECT_EQ(body_json(r)["jobs"].size(), 3u);
  r = c.get("/jobs?status=pending,running");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["total"], 7);
  r = c.get("/jobs?status=running");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["total"], 0);
  EXPECT_TRUE(body_json(r)["jobs"].empty());
  EXPECT_TRUE(body_json(r)["next_cursor"].is_null());
  expect_field_error(c.get("/jobs?status=bogus"), "status");
  expect_field_error(c.get("/jobs?limit=0"), "limit");
  expect_field_error(c.get("/jobs?limit=1001"), "limit");
  expect_field_error(c.get("/jobs?limit=ten"), "limit");
  expect_field_error(c.get("/jobs?cursor=garbage"), "cursor");
  EXPECT_EQ(c.get("/jobs?limit=1000").status, 200);
  dump_on_failure({n->proc.get()});
}

TEST_F(api, hostile_strings_round_trip_verbatim) {
  auto c = client();
  json body{{"pipeline_name", "p"},
            {"description", "'); DROP TABLE jobs; -- \u202e 🧬 ñ"},
            {"parameters", {{"q", "' OR '1'='1"}, {"emoji", "🧬"}}}};
  auto id = submit(c, body);
  auto j = get_job(c, id);
  EXPECT_EQ(j["description"], body["description"]);
  EXPECT_EQ(j["parameters"], body["parameters"]);
}

// GET /jobs/{id} is answered in batches (one statement for the lookups that
// arrive together); concurrent clients must each get the job they asked
// for, and a 404 for an id that is not there.
TEST_F(api, concurrent_lookups_each_get_their_own_job) {
  auto c = client();
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i)
    ids.push_back(submit(c, {{"pipeline_name", "lookup-" + std::to_string(i)},
                             {"parameters", {{"n", i}}}}));
  const std::string missing = "6f1b2a7e-0000-4000-8000-00000000abcd";
  std::vector<std::future<std::string>> clients;
  for (int t = 0; t < 8; ++t)
    clients.push_back(std::async(std::launch::async, [&, t] {
      http_client mine{node->http_port};
      std::string wrong;
      for (int round = 0; round < 5; ++round)
        for (size_t k = 0; k <= ids.size(); ++k) {
          size_t i = (k + static_cast<size_t>(t) * 7) % (ids.size() + 1);
          if (i == ids.size()) {
            auto r = mine.get("/jobs/" + missing);
            if (r.status != 404)
              wrong += "missing id: " + std::to_string(r.status) + "\n";
            continue;
          }
          // An id in upper case is the same job.
          auto id = ids[i];
          if (k % 2 == 1)
            for (auto& ch : id)
              ch = static_cast<char>(std::toupper(ch));
          auto r = mine.get("/jobs/" + id);
          auto j = json::parse(r.body, nullptr, false);
          if (r.status != 200 || j.is_discarded()
              || j.value("id", "") != ids[i]
              || j.value("pipeline_name", "") != "lookup-" + std::to_string(i)
              || j["parameters"].value("n", -1) != static_cast<int>(i))
            wrong += ids[i] + ": " + std::to_string(r.status) + " " + r.body
                     + "\n";
        }
      return wrong;
    }));
  for (auto& f : clients)
    EXPECT_EQ(f.get(), "");
}

// Equal list requests that arrive together share one statement
// (db_pool::list); each client must still get the page its own filter
// selects, and see the jobs it submitted before it asked.
TEST_F(api, concurrent_lists_each_get_their_own_page) {
  auto c = client();
  const int pipelines = 6;
  for (int i = 0; i < pipelines; ++i)
    for (int k = 0; k <= i; ++k)
      submit(c, {{"pipeline_name", "page-" + std::to_string(i)}});
  std::vector<std::future<std::string>> clients;
  for (int t = 0; t < 8; ++t)
    clients.push_back(std::async(std::launch::async, [&, t] {
      http_client mine{node->http_port};
      std::string wrong;
      auto ryw = "ryw-" + std::to_string(t);
      for (int round = 0; round < 12; ++round) {
        int i = (round + t) % pipelines;
        auto name = "page-" + std::to_string(i);
        auto r = mine.get("/jobs?pipeline_name=" + name + "&limit=100");
        auto j = json::parse(r.body, nullptr, false);
        if (r.status != 200 || j.is_discarded()
            || j["jobs"].size() != static_cast<size_t>(i + 1)
            || j.value("total", -1) != i + 1)
          wrong += name + ": " + std::to_string(r.status) + " " + r.body
                   + "\n";
        else
          for (auto& x : j["jobs"])
            if (x.value("pipeline_name", "") != name)
              wrong += name + " listed a job of " + x.dump() + "\n";
        // Read your writes: a job acknowledged before the list is in it.
        auto id = submit(mine, {{"pipeline_name", ryw}});
        auto mineonly = mine.get("/jobs?pipeline_name=" + ryw + "&limit=100");
        auto m = json::parse(mineonly.body, nullptr, false);
        if (m.is_discarded() || m["jobs"].empty()
            || m["jobs"][0].value("id", "") != id
            || m.value("total", -1) != round + 1)
          wrong += ryw + " missed " + id + ": " + mineonly.body + "\n";
      }
      return wrong;
    }));
  for (auto& f : clients)
    EXPECT_EQ(f.get(), "");
}

// Large answers are written on the connection's socket directly
// (send_direct); what a slow reader's socket does not take at once must
// follow through Pistache's write queue, in order, and leave the
// connection ready for its next request.
TEST_F(api, large_list_reaches_a_slow_reader_whole) {
  auto c = client();
  // 8 MB: more than the api-node's socket send buffer grows to on loopback
  // (about 2.5 MB here), so the direct write cannot take it all.
  const int jobs = 1000;
  std::string pad(8000, 'p');
  for (int i = 0; i < jobs; ++i)
    submit(c, {{"pipeline_name", "slow-reader"},
               {"parameters", {{"i", i}, {"pad", pad}}}});
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  // Closed however the test ends.
  std::unique_ptr<int, void (*)(int*)> closer{&fd,
                                              [](int* x) { ::close(*x); }};
  int rcvbuf = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(node->http_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string in;
  // Reads one response; returns its status and body, leaving what follows.
  auto read_response = [&](std::string& body) {
    size_t head_end = std::string::npos;
    size_t length = 0;
    for (;;) {
      if (head_end == std::string::npos) {
        head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          std::string head = in.substr(0, head_end);
          for (auto& ch : head)
            ch = static_cast<char>(std::tolower(ch));
          auto at = head.find("content-length: ");
          if (at == std::string::npos)
            return -1;
          length = std::stoul(head.substr(at + 16));
        }
      }
      if (head_end != std::string::npos && in.size() >= head_end + 4 + length)
        break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0
          || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
        return -2;
      // Small reads, as a slow client makes them.
      char buf[16384];
      auto k = ::recv(fd, buf, sizeof buf, 0);
      if (k <= 0)
        return -3;
      in.append(buf, static_cast<size_t>(k));
    }
    int status = std::stoi(in.substr(9, 3));
    body = in.substr(head_end + 4, length);
    in.erase(0, head_end + 4 + length);
    return status;
  };
  auto get = [&](const std::string& path) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    return ::send(fd, req.data(), req.size(), MSG_NOSIGNAL)
           == static_cast<ssize_t>(req.size());
  };
  ASSERT_TRUE(
    get("/jobs?pipeline_name=slow-reader&limit=" + std::to_string(jobs)));
  std::string body;
  ASSERT_EQ(read_response(body), 200);
  EXPECT_GT(body.size(), 8000000u);
  EXPECT_TRUE(in.empty()) << "bytes after the answer: " << in.size();
  auto j = json::parse(body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << body.substr(0, 200);
  ASSERT_EQ(j["jobs"].size(), static_cast<size_t>(jobs));
  std::set<int> seen;
  for (auto& x : j["jobs"]) {
    EXPECT_EQ(x["parameters"].value("pad", ""), pad);
    seen.insert(x["parameters"].value("i", -1));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(jobs));
  // The same connection serves the next request.
  ASSERT_TRUE(get("/health"));
  ASSERT_EQ(read_response(body), 200);
  EXPECT_NE(body.find("ok"), std::string::npos) << body;
}

TEST_F(api, keep_alive_without_connection_header) {
  http_client c{node->http_port};
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(c.get("/health").status, 200);
  EXPECT_EQ(c.post_json("/jobs", R"({"pipeline_name":"ka"})").status, 201);
  EXPECT_EQ(c.get("/jobs?limit=1").status, 200);
  EXPECT_EQ(c.connects(), 1);
  auto r = c.request("GET", "/health", "", {{"Connection", "close"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(c.get("/health").status, 200);
  EXPECT_EQ(c.connects(), 2);
}

TEST_F(api, workers_lists_connected_workers) {
  auto c = client();
  auto w = start_worker("contract-w", node->scheduler_port, 3);
  ASSERT_TRUE(wait_until(
    [&] {
      auto r = c.get("/workers");
      return r.status == 200 && body_json(r)["workers"].size() == 1;
    },
    20s))
    << w->log();
  auto list = body_json(c.get("/workers"))["workers"];
  auto& x = list[0];
  EXPECT_EQ(x["id"], "contract-w");
  EXPECT_EQ(x["slots"], 3);
  EXPECT_TRUE(x.contains("host"));
  EXPECT_TRUE(x.contains("running"));
  EXPECT_TRUE(std::regex_match(x["connected_at"].get<std::string>(),
                               rfc3339));
  EXPECT_TRUE(std::regex_match(x["last_seen"].get<std::string>(), rfc3339));
  w->stop();
  EXPECT_TRUE(wait_until(
    [&] { return body_json(c.get("/workers"))["workers"].empty(); }, 20s));
}

TEST_F(api, help_lists_every_variable) {
  child_process help{"api-help", {api_node_binary(), "--help"}, {}};
  ASSERT_EQ(help.wait_exit(10s), 0);
  for (auto var : {"DATABASE_URL", "HTTP_HOST", "HTTP_PORT", "HTTP_THREADS",
                   "SCHEDULER_HOST", "SCHEDULER_PORT", "LOG_LEVEL",
                   "LOG_FORMAT", "IMAGE_TAG", "ECHO_MESSAGE", "--no-migrate"})
    EXPECT_NE(help.log().find(var), std::string::npos) << var;
  child_process whelp{"worker-help", {worker_node_binary(), "--help"}, {}};
  ASSERT_EQ(whelp.wait_exit(10s), 0);
  for (auto var : {"SCHEDULER_HOST", "SCHEDULER_PORT", "WORKER_ID",
                   "WORKER_SLOTS", "MOCK_MIN_SECONDS", "MOCK_MAX_SECONDS",
                   "MOCK_SUCCESS_RATE", "LOG_FORMAT"})
    EXPECT_NE(whelp.log().find(var), std::string::npos) << var;
}

TEST_F(api, ready_is_503_without_database) {
  auto fresh = fresh_database();
  auto n = api_node::start("api-ready", fresh);
  http_client c{n->http_port};
  EXPECT_EQ(c.get("/ready").status, 200);
  cluster().psql("postgres",
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = '"
                   + fresh.substr(fresh.rfind('/') + 1) + "'");
  cluster().psql("postgres", "ALTER DATABASE \""
                               + fresh.substr(fresh.rfind('/') + 1)
                               + "\" WITH ALLOW_CONNECTIONS false");
  cluster().psql("postgres",
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = '"
                   + fresh.substr(fresh.rfind('/') + 1) + "'");
  EXPECT_TRUE(wait_until([&] { return c.get("/ready").status == 503; }, 20s));
  auto r = c.post_json("/jobs", R"({"pipeline_name":"p"})");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_EQ(c.get("/health").status, 200);
  cluster().psql("postgres", "ALTER DATABASE \""
                               + fresh.substr(fresh.rfind('/') + 1)
                               + "\" WITH ALLOW_CONNECTIONS true");
  EXPECT_TRUE(wait_until([&] { return c.get("/ready").status == 200; }, 20s));
  EXPECT_EQ(c.post_json("/jobs", R"({"pipeline_name":"p"})").status, 201);
  dump_on_failure({n->proc.get()});
}

TEST_F(api, limits_are_inclusive) {
  auto c = client();
  auto accepted = [&](const json& body) {
    auto r = c.post_json("/jobs", body.dump());
    EXPECT_EQ(r.status, 201) << body.dump().substr(0, 200) << " -> "
                             << r.body.substr(0, 300);
  };
  accepted({{"pipeline_name", std::string(128, 'x')}});
  accepted({{"pipeline_name", "A-Za-z0-9_.-"}});
  accepted({{"pipeline_name", "p"}, {"priority", 1000}});
  accepted({{"pipeline_name", "p"}, {"priority", -1000}});
  accepted({{"pipeline_name", "p"}, {"description", nullptr}});
  accepted({{"pipeline_name", "p"}, {"description", ""}});
  // 4096 characters, 8192 bytes: the limit counts characters.
  std::string enye_4096;
  for (int i = 0; i < 4096; ++i)
    enye_4096 += "\xc3\xb1";
  accepted({{"pipeline_name", "p"}, {"description", enye_4096}});
  // {"k":"…"} serialized is 8 bytes plus the string: exactly 64 KiB.
  accepted({{"pipeline_name", "p"},
            {"parameters", {{"k", std::string((64 << 10) - 8, 'a')}}}});
}

TEST_F(api, more_rule_violations_name_the_field) {
  auto c = client();
  auto rejected = [&](const json& body, const std::string& field) {
    SCOPED_TRACE(body.dump().substr(0, 200));
    expect_field_error(c.post_json("/jobs", body.dump()), field);
  };
  rejected({{"pipeline_name", ""}}, "pipeline_name");
  rejected({{"pipeline_name", nullptr}}, "pipeline_name");
  rejected({{"pipeline_name", "a/b"}}, "pipeline_name");
  rejected({{"pipeline_name", "ñ"}}, "pipeline_name");
  rejected({{"pipeline_name", "p"}, {"priority", -1001}}, "priority");
  rejected({{"pipeline_name", "p"}, {"priority", 1.5}}, "priority");
  rejected({{"pipeline_name", "p"}, {"priority", "5"}}, "priority");
  rejected({{"pipeline_name", "p"}, {"priority", true}}, "priority");
  rejected({{"pipeline_name", "p"}, {"priority", 4294967297LL}}, "priority");
  rejected({{"pipeline_name", "p"}, {"description", 5}}, "description");
  std::string enye_4097;
  for (int i = 0; i < 4097; ++i)
    enye_4097 += "\xc3\xb1";
  rejected({{"pipeline_name", "p"}, {"description", enye_4097}},
           "description");
  rejected({{"pipeline_name", "p"}, {"parameters", "x=1"}}, "parameters");
  rejected({{"pipeline_name", "p"},
            {"parameters", {{"k", std::string((64 << 10) - 7, 'a')}}}},
           "parameters");
  rejected({{"pipeline_name", "p"}, {"id", "6f1b2a7e-0000-4000-8000-000000000000"}},
           "id");
  rejected({{"pipeline_name", "p"}, {"status", "completed"}}, "status");
}

TEST_F(api, ill_formed_utf8_is_400) {
  auto c = client();
  expect_problem(c.post_json("/jobs", "{\"pipeline_name\":\"p\","
                                      "\"description\":\"\xff\xfe\"}"),
                 400);
}

TEST_F(api, list_query_errors_are_422) {
  auto c = client();
  expect_field_error(c.get("/jobs?limit=-1"), "limit");
  expect_field_error(c.get("/jobs?status=running,bogus"), "status");
  expect_field_error(c.get("/jobs?cursor=" + std::string(40, 'A')), "cursor");
  EXPECT_EQ(c.get("/jobs?limit=1").status, 200);
  EXPECT_EQ(c.get("/jobs?status=completed,failed,cancelled").status, 200);
}

// A body that ends before its Content-Length, then a closed connection: no
// job may be created from the fragment, and the node keeps serving.
TEST_F(api, truncated_body_creates_no_job) {
  auto c = client();
  http_client raw_client{node->http_port, 3s};
  raw_client.raw("POST /jobs HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 400\r\n"
                 "\r\n{\"pipeline_name\":\"truncated\"}");
  raw_client.raw("POST /jobs HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 10\r\n"
                 "\r\n{\"pipeline_name\":\"truncated\"}");
  raw_client.raw("GARBAGE\r\n\r\n");
  auto r = c.get("/jobs?pipeline_name=truncated");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(r)["total"], 0) << r.body;
  EXPECT_EQ(c.get("/health").status, 200);
  EXPECT_TRUE(node->proc->running());
}

// After refusing an unusable Content-Length the byte stream has no framing
// left: the answer says "Connection: close", and the node must then close,
// not hold the socket until some idle timeout.
TEST_F(api, unusable_content_length_closes_the_connection) {
  http_client raw_client{node->http_port};
  for (auto len : {"99999999999", "-1", "abc"}) {
    bool closed = false;
    auto start = std::chrono::steady_clock::now();
    auto out = raw_client.raw(std::string{"POST /jobs HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Type: application/json\r\n"
                                          "Content-Length: "}
                                + len + "\r\n\r\n{\"pipeline_name\":\"p\"}",
                              5s, &closed);
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
    ASSERT_GE(out.size(), 12u) << "no answer for Content-Length " << len;
    EXPECT_TRUE(closed) << "Content-Length " << len
                        << ": connection still open after " << waited.count()
                        << " ms; answer: " << out.substr(0, out.find("\r\n"));
  }
}
