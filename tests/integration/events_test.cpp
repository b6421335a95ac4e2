// Server-Sent Events (issue 6): GET /jobs/{id}/events and GET /events
// against a real api-node and worker-node. Checks the wire format, replay
// from the database, resuming with Last-Event-ID without gap or duplicate,
// closing after `complete`, filters, heartbeats, the disconnection of a
// client too slow to keep up, and many clients at once.

#include "common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <map>
#include <set>
#include <thread>

using namespace orch::test;
using namespace std::chrono_literals;

namespace {

struct sse_event {
  int64_t id = -1;
  std::string type;
  json data;
};

// A minimal SSE client over a raw socket: sends one GET, then parses the
// stream incrementally.
class sse_client {
public:
  sse_client(int port, const std::string& path,
             std::map<std::string, std::string> headers = {},
             int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      throw std::runtime_error("connect failed");
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      + "Accept: text/event-stream\r\n";
    for (auto& [k, v] : headers)
      req += k + ": " + v + "\r\n";
    req += "\r\n";
    ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL);
  }

  ~sse_client() {
    close();
  }

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  // Reads until the response head is complete; returns the status code.
  int status(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (head_.empty()) {
      auto pos = buf_.find("\r\n\r\n");
      if (pos != std::string::npos) {
        head_ = buf_.substr(0, pos + 4);
        buf_.erase(0, pos + 4);
        break;
      }
      if (!fill(deadline))
        return -1;
    }
    return std::stoi(head_.substr(9, 3));
  }

  const std::string& head() const {
    return head_;
  }

  // Everything after the head read so far that is not a complete event.
  const std::string& pending() const {
    return buf_;
  }

  // The next event, or nothing on timeout or end of stream.
  std::optional<sse_event> next(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (status(timeout) < 0)
      return std::nullopt;
    for (;;) {
      auto pos = buf_.find("\n\n");
      while (pos != std::string::npos) {
        auto block = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        if (block.rfind(':', 0) == 0) {
          comments_.push_back(block);
        } else if (auto e = parse(block)) {
          return e;
        }
        pos = buf_.find("\n\n");
      }
      if (!fill(deadline))
        return std::nullopt;
    }
  }

  // Reads events until the server closes the stream; returns them.
  std::vector<sse_event> until_closed(std::chrono::milliseconds timeout) {
    std::vector<sse_event> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      auto e = next(left);
      if (!e)
        break;
      out.push_back(std::move(*e));
    }
    return out;
  }

  bool closed() const {
    return eof_;
  }

  const std::vector<std::string>& comments() const {
    return comments_;
  }

private:
  static std::optional<sse_event> parse(const std::string& block) {
    sse_event e;
    std::string data;
    size_t pos = 0;
    while (pos < block.size()) {
      auto end = block.find('\n', pos);
      if (end == std::string::npos)
        end = block.size();
      auto line = block.substr(pos, end - pos);
      pos = end + 1;
      auto colon = line.find(": ");
      if (colon == std::string::npos)
        continue;
      auto field = line.substr(0, colon);
      auto value = line.substr(colon + 2);
      if (field == "id")
        e.id = std::stoll(value);
      else if (field == "event")
        e.type = value;
      else if (field == "data")
        data += value;
    }
    if (e.type.empty())
      return std::nullopt;
    e.data = json::parse(data);
    return e;
  }

  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_ || fd_ < 0)
      return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    if (left <= 0)
      return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
      return false;
    char tmp[65536];
    auto n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  std::string head_;
  bool eof_ = false;
  std::vector<std::string> comments_;
};

class events_test : public ::testing::Test {
protected:
  void SetUp() override {
    db_ = fresh_database();
    cluster_ = std::make_unique<orch_cluster>(db_);
  }

  api_node& start(std::map<std::string, std::string> extra = {}) {
    auto& api = cluster_->start_api("api", std::move(extra));
    cluster_->start_worker("w1", api, 4,
                           {{"MOCK_MIN_SECONDS", "0"},
                            {"MOCK_MAX_SECONDS", "0"}});
    return api;
  }

  std::string db_;
  std::unique_ptr<orch_cluster> cluster_;
};

std::vector<std::string> types_of(const std::vector<sse_event>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.type == "status" ? "status:" + x.data["status"].get<std::string>()
                                     : x.type);
  return out;
}

void expect_increasing_ids(const std::vector<sse_event>& xs) {
  for (size_t i = 1; i < xs.size(); ++i)
    EXPECT_LT(xs[i - 1].id, xs[i].id) << "event " << i;
}

} // namespace

TEST_F(events_test, job_stream_carries_status_progress_logs_then_closes) {
  auto& api = start();
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "narrated"},
                       {"parameters", succeeding(800)}});
  sse_client s{api.http_port, "/jobs/" + id + "/events"};
  ASSERT_EQ(s.status(), 200);
  EXPECT_NE(s.head().find("Content-Type: text/event-stream"),
            std::string::npos)
    << s.head();
  auto events = s.until_closed(30s);
  ASSERT_TRUE(s.closed()) << "the stream must close after complete";
  ASSERT_FALSE(events.empty());
  auto kinds = types_of(events);
  EXPECT_EQ(kinds.front(), "status:pending");
  EXPECT_EQ(kinds.back(), "complete");
  EXPECT_EQ(kinds[kinds.size() - 2], "status:completed");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "status:running"),
            kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "progress"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "log"), kinds.end());
  expect_increasing_ids(events);
  for (auto& e : events) {
    EXPECT_EQ(e.data["job_id"], id);
    EXPECT_EQ(e.data["type"], e.type);
    ASSERT_TRUE(e.data["at"].is_string());
    EXPECT_EQ(e.data["at"].get<std::string>().back(), 'Z');
    EXPECT_TRUE(e.data["pipeline_name"].is_string());
  }
  auto& last = events.back();
  EXPECT_EQ(last.data["status"], "completed");
  EXPECT_TRUE(last.data["error_message"].is_null());
  // Progress ends at the total; logs carry their stream and text.
  for (auto& e : events) {
    if (e.type == "progress") {
      EXPECT_LE(e.data["completed"].get<int64_t>(),
                e.data["total"].get<int64_t>());
      EXPECT_GT(e.data["total"].get<int64_t>(), 0);
    }
    if (e.type == "log") {
      EXPECT_TRUE(e.data["line"].is_string());
      EXPECT_TRUE(e.data["stream"] == "stdout" || e.data["stream"] == "stderr");
    }
  }
  // The status events are exactly the job's job_events rows, by id.
  auto rows = query(db_, "SELECT id, to_status FROM job_events WHERE job_id = '"
                           + id + "' ORDER BY id");
  std::vector<std::pair<int64_t, std::string>> stored, streamed;
  for (auto& r : rows)
    stored.emplace_back(std::stoll(r[0]), r[1]);
  for (auto& e : events)
    if (e.type == "status")
      streamed.emplace_back(e.id, e.data["status"].get<std::string>());
  EXPECT_EQ(streamed, stored);
}

TEST_F(events_test, resume_with_last_event_id_has_no_gap_and_no_duplicate) {
  auto& api = start();
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "narrated"},
                       {"parameters", succeeding(1500)}});
  // Read a few live events, then drop the connection mid-run.
  std::vector<sse_event> first;
  {
    sse_client s{api.http_port, "/jobs/" + id + "/events"};
    for (int i = 0; i < 3; ++i) {
      auto e = s.next(20s);
      ASSERT_TRUE(e);
      first.push_back(std::move(*e));
    }
  }
  sse_client again{api.http_port, "/jobs/" + id + "/events",
                   {{"Last-Event-ID", std::to_string(first.back().id)}}};
  auto rest = again.until_closed(30s);
  ASSERT_TRUE(again.closed());
  ASSERT_FALSE(rest.empty());
  EXPECT_GT(rest.front().id, first.back().id);
  std::vector<sse_event> joined = first;
  joined.insert(joined.end(), rest.begin(), rest.end());
  expect_increasing_ids(joined);
  // The same events as a full replay of the finished job.
  sse_client full{api.http_port, "/jobs/" + id + "/events"};
  auto all = full.until_closed(20s);
  ASSERT_EQ(all.size(), joined.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].id, joined[i].id);
    EXPECT_EQ(all[i].type, joined[i].type);
    EXPECT_EQ(all[i].data, joined[i].data);
  }
  // After the last event of a finished job there is nothing more: 204 makes
  // EventSource stop reconnecting. The query parameter works like the header.
  sse_client done{api.http_port, "/jobs/" + id + "/events?last_event_id="
                                   + std::to_string(all.back().id)};
  EXPECT_EQ(done.status(), 204);
}

TEST_F(events_test, firehose_filters_by_status_and_pipeline) {
  auto& api = start();
  http_client c{api.http_port};
  sse_client completed{api.http_port, "/events?status=completed&types=status"};
  sse_client only_b{api.http_port, "/events?pipeline_name=b"};
  ASSERT_EQ(completed.status(), 200);
  ASSERT_EQ(only_b.status(), 200);
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.insert(submit(c, {{"pipeline_name", "a"},
                          {"parameters", succeeding(0)}}));
  auto b = submit(c, {{"pipeline_name", "b"}, {"parameters", succeeding(0)}});
  ids.insert(b);
  std::set<std::string> seen;
  while (seen.size() < ids.size()) {
    auto e = completed.next(20s);
    ASSERT_TRUE(e) << "saw " << seen.size() << " of " << ids.size();
    EXPECT_EQ(e->type, "status");
    EXPECT_EQ(e->data["status"], "completed");
    seen.insert(e->data["job_id"].get<std::string>());
  }
  EXPECT_EQ(seen, ids);
  // Pipeline b: its pending, running, completed and complete, nothing of a.
  std::vector<std::string> kinds;
  while (kinds.empty() || kinds.back() != "complete") {
    auto e = only_b.next(20s);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->data["job_id"], b);
    EXPECT_EQ(e->data["pipeline_name"], "b");
    kinds.push_back(e->type == "status" ? e->data["status"].get<std::string>()
                                        : e->type);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"pending", "running",
                                             "completed", "complete"}));
  EXPECT_FALSE(only_b.closed()) << "the firehose stays open";
}

// Also: Pistache answers 408 on connections idle for longer than its header
// timeout (20 s); a stream it handed over must never get one.
TEST_F(events_test, heartbeats_keep_idle_streams_alive_past_http_timeouts) {
  auto& api = start({{"SSE_HEARTBEAT_SECONDS", "1"}});
  sse_client s{api.http_port, "/events"};
  ASSERT_EQ(s.status(), 200);
  auto until = std::chrono::steady_clock::now() + 24s;
  while (std::chrono::steady_clock::now() < until && !s.closed()) {
    auto e = s.next(500ms);
    EXPECT_FALSE(e) << "no job, no event";
  }
  EXPECT_FALSE(s.closed());
  size_t beats = 0;
  for (auto& x : s.comments()) {
    EXPECT_EQ(x, ": heartbeat");
    beats += x == ": heartbeat" ? 1 : 0;
  }
  EXPECT_GE(beats, 15u);
  EXPECT_EQ(s.pending().find("HTTP/"), std::string::npos) << s.pending();
  // And it still carries events.
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "late"}, {"parameters", succeeding(0)}});
  auto e = s.next(10s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data["job_id"], id);
}

TEST_F(events_test, a_slow_client_is_disconnected_and_resumes) {
  auto& api = start({{"SSE_CLIENT_BUFFER_KIB", "16"}});
  http_client c{api.http_port};
  sse_client slow{api.http_port, "/events?types=status", {}, 4096};
  ASSERT_EQ(slow.status(), 200);
  const int n = 1500;
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i)
    ids.push_back(submit(c, {{"pipeline_name", "bulk"},
                             {"description", std::string(200, 'x')},
                             {"parameters", succeeding(0)}}));
  ASSERT_TRUE(wait_terminal(c, ids, 120s));
  // Now read: the hub must have given up on us before the end.
  auto got = slow.until_closed(30s);
  ASSERT_TRUE(slow.closed()) << "a client this far behind is disconnected";
  auto expected = std::stoul(query(db_, "SELECT count(*) FROM job_events")[0][0]);
  ASSERT_LT(got.size(), expected);
  ASSERT_FALSE(got.empty());
  // Resume: the rest arrives, with no gap and no duplicate.
  sse_client resumed{api.http_port, "/events?types=status",
                     {{"Last-Event-ID", std::to_string(got.back().id)}}};
  while (got.size() < expected) {
    auto e = resumed.next(20s);
    ASSERT_TRUE(e) << got.size() << " of " << expected;
    got.push_back(std::move(*e));
  }
  expect_increasing_ids(got);
  auto rows = query(db_, "SELECT id FROM job_events ORDER BY id");
  ASSERT_EQ(rows.size(), got.size());
  for (size_t i = 0; i < rows.size(); ++i)
    ASSERT_EQ(std::stoll(rows[i][0]), got[i].id) << i;
}

TEST_F(events_test, many_clients_all_see_every_job_finish) {
  auto& api = start();
  http_client c{api.http_port};
  const int clients = 200;
  std::vector<std::unique_ptr<sse_client>> streams;
  for (int i = 0; i < clients; ++i) {
    streams.push_back(std::make_unique<sse_client>(
      api.http_port, "/events?types=complete"));
    ASSERT_EQ(streams.back()->status(), 200) << i;
  }
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i)
    ids.insert(submit(c, {{"pipeline_name", "many"},
                          {"parameters", succeeding(50)}}));
  for (auto& s : streams) {
    std::set<std::string> seen;
    while (seen.size() < ids.size()) {
      auto e = s->next(30s);
      ASSERT_TRUE(e);
      seen.insert(e->data["job_id"].get<std::string>());
    }
    EXPECT_EQ(seen, ids);
  }
  // The node still answers while all of them are open, and counts them.
  EXPECT_EQ(c.get("/health").status, 200);
  auto m = c.get("/metrics");
  EXPECT_NE(m.body.find("\nsse_clients " + std::to_string(clients) + "\n"),
            std::string::npos);
  streams.clear();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.get("/metrics").body.find("\nsse_clients 0\n") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
      << "closed streams must be counted out";
    std::this_thread::sleep_for(20ms);
  }
}

TEST_F(events_test, bad_requests_get_problems) {
  auto& api = start();
  http_client c{api.http_port};
  auto r = c.get("/events?types=bogus");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.header("Content-Type").find("application/problem+json"),
            std::string::npos);
  EXPECT_EQ(c.get("/events?status=sleeping").status, 422);
  EXPECT_EQ(c.get("/jobs/not-a-uuid/events").status, 422);
  EXPECT_EQ(c.get("/jobs/3f0c1e9a-8d7b-4c1e-9f53-0c6f5b2a7d10/events").status,
            404);
  EXPECT_EQ(c.request("GET", "/events", "", {{"Last-Event-ID", "abc"}}).status,
            422);
  EXPECT_EQ(c.request("POST", "/events", "{}").status, 405);
  // The connection that was refused still serves requests.
  EXPECT_EQ(c.get("/health").status, 200);
}

// A job stream ends at the job's complete marker even when its types filter
// leaves the marker out: in replay (the job had finished) and live.
TEST_F(events_test, a_job_stream_without_complete_in_its_types_still_closes) {
  auto& api = start();
  http_client c{api.http_port};
  auto done = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  ASSERT_TRUE(wait_terminal(c, {done}, 30s));
  sse_client replayed{api.http_port, "/jobs/" + done + "/events?types=status"};
  auto xs = replayed.until_closed(5s);
  EXPECT_TRUE(replayed.closed()) << "replay of a finished job must close";
  EXPECT_EQ(types_of(xs), (std::vector<std::string>{
                            "status:pending", "status:running",
                            "status:completed"}));
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(1500)}});
  sse_client live{api.http_port, "/jobs/" + id + "/events?types=status"};
  auto ys = live.until_closed(15s);
  EXPECT_TRUE(live.closed()) << "a live job stream must close after complete";
  ASSERT_FALSE(ys.empty());
  EXPECT_EQ(types_of(ys).back(), "status:completed");
}

// Resuming a finished job past the last event the client would get answers
// 204 (EventSource stops reconnecting), also when log lines arrived after
// the complete marker or the types filter leaves the marker out.
TEST_F(events_test, resume_of_a_finished_job_is_204_despite_late_lines) {
  auto& api = start();
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  auto complete = query(db_, "SELECT id FROM job_signals WHERE kind = "
                             "'complete' AND job_id = '" + id + "'");
  ASSERT_EQ(complete.size(), 1u);
  auto completed = query(db_, "SELECT id FROM job_events WHERE to_status = "
                              "'completed' AND job_id = '" + id + "'");
  ASSERT_EQ(completed.size(), 1u);
  // A late line of the current attempt (kept by the store), after the
  // marker.
  query(db_, "INSERT INTO job_logs (job_id, attempt, stream, line) VALUES ('"
               + id + "', 1, 'stdout', 'late')");
  sse_client after_complete{api.http_port, "/jobs/" + id + "/events",
                            {{"Last-Event-ID", complete[0][0]}}};
  EXPECT_EQ(after_complete.status(3s), 204);
  sse_client filtered{api.http_port, "/jobs/" + id + "/events?types=status",
                      {{"Last-Event-ID", completed[0][0]}}};
  EXPECT_EQ(filtered.status(3s), 204);
  // Before the marker, the rest still comes (and the stream closes).
  sse_client before{api.http_port, "/jobs/" + id + "/events",
                    {{"Last-Event-ID", completed[0][0]}}};
  ASSERT_EQ(before.status(), 200);
  auto xs = before.until_closed(5s);
  EXPECT_TRUE(before.closed());
  ASSERT_FALSE(xs.empty());
  EXPECT_EQ(xs.front().type, "complete");
}

// A client may resume (e.g. after its api-node drained) with an id this
// hub's cursor has not reached yet: it waits for the cursor instead of
// getting the events up to its id a second time.
TEST_F(events_test, resume_ahead_of_the_hub_cursor_has_no_duplicate) {
  auto& api = start();
  http_client c{api.http_port};
  auto first = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  ASSERT_TRUE(wait_terminal(c, {first}, 30s));
  // An open transaction holds an id: the hub's cursor stops below it for
  // up to its hole timeout (1 s) while later ids commit.
  pqxx::connection conn{db_};
  pqxx::work tx{conn};
  tx.exec("INSERT INTO job_signals (job_id, attempt, kind, completed, total)"
          " VALUES ('" + first + "', 1, 'progress', 0, 1)");
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(300)}});
  auto pending = query(db_, "SELECT min(id) FROM job_events WHERE job_id = '"
                              + id + "'");
  auto seen = std::stoll(pending[0][0]);
  sse_client s{api.http_port, "/jobs/" + id + "/events",
               {{"Last-Event-ID", std::to_string(seen)}}};
  auto xs = s.until_closed(15s);
  tx.abort();
  EXPECT_TRUE(s.closed());
  ASSERT_FALSE(xs.empty());
  for (auto& x : xs)
    EXPECT_GT(x.id, seen) << x.type << " sent again";
  EXPECT_EQ(xs.back().type, "complete");
}

// A replay page is cut to what the client's buffer holds: a client that
// reads as fast as it can is never disconnected because of the hub's own
// page size.
TEST_F(events_test, a_replay_larger_than_the_client_buffer_is_not_cut_off) {
  auto& api = start({{"SSE_CLIENT_BUFFER_KIB", "64"}});
  http_client c{api.http_port};
  auto id = submit(c, {{"pipeline_name", "p"}, {"parameters", succeeding(0)}});
  ASSERT_TRUE(wait_terminal(c, {id}, 30s));
  sse_client watch{api.http_port, "/events?pipeline_name=sentinel&types=status"};
  ASSERT_EQ(watch.status(), 200);
  // A long history (2 MB in one page of 1000 events), before the marker.
  query(db_, "BEGIN; INSERT INTO job_logs (job_id, attempt, stream, line)"
             " SELECT '" + id + "', 1, 'stdout', repeat('x', 2000)"
             " FROM generate_series(1, 1500);"
             " UPDATE job_signals SET id = nextval(pg_get_serial_sequence("
             "'job_events', 'id')) WHERE job_id = '" + id + "'; COMMIT");
  // Past the hub's cursor: the history is replayed, not a live burst. A
  // later job's event reaching a firehose means the cursor passed it.
  auto sentinel = submit(c, {{"pipeline_name", "sentinel"},
                             {"parameters", succeeding(0)}});
  auto e = watch.next(20s);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->data["job_id"], sentinel);
  sse_client s{api.http_port, "/jobs/" + id + "/events"};
  auto xs = s.until_closed(30s);
  EXPECT_TRUE(s.closed());
  ASSERT_FALSE(xs.empty());
  EXPECT_EQ(xs.back().type, "complete") << xs.size() << " events";
  EXPECT_EQ(xs.size(), 1500u + 4u);
}
