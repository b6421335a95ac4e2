#include "orch/metrics.hpp"

#include "orch/error.hpp"
#include "orch/metrics_server.hpp"
#include "orch/test/exposition.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace orch::metrics;
using orch::test::parse_exposition;

namespace {

// Fails the test with every violation the strict reader found.
void expect_valid(const std::string& text) {
  auto x = parse_exposition(text);
  for (auto& e : x.errors)
    ADD_FAILURE() << e << "\nin:\n" << text;
}

// One request on a fresh connection to 127.0.0.1:`port`; returns the raw
// response.
std::string http_roundtrip(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return {};
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

} // namespace

TEST(metrics, counter_gauge_and_histogram_values) {
  registry reg;
  auto& c = reg.add_counter("things_total", "Things.", {"kind"});
  c.with({"a"}).inc();
  c.with({"a"}).inc(2);
  c.with({"b"}).inc(-5); // ignored: counters never go down
  EXPECT_EQ(c.with({"a"}).value(), 3);
  EXPECT_EQ(c.with({"b"}).value(), 0);
  auto& g = reg.add_gauge("level", "Level.");
  g.get().set(7);
  g.get().dec(2);
  g.get().inc(0.5);
  EXPECT_EQ(g.get().value(), 5.5);
  auto& h = reg.add_histogram("wait_seconds", "Waits.", {}, {1, 0.1, 10});
  h.get().observe(0.1); // on a bound: counted in that bucket (le)
  h.get().observe(0.5);
  h.get().observe(100);
  auto snap = h.get().collect();
  ASSERT_EQ(snap.cumulative.size(), 4u); // 0.1, 1, 10, +Inf (sorted)
  EXPECT_EQ(snap.cumulative[0], 1u);
  EXPECT_EQ(snap.cumulative[1], 2u);
  EXPECT_EQ(snap.cumulative[2], 2u);
  EXPECT_EQ(snap.cumulative[3], 3u);
  EXPECT_EQ(snap.count, 3u);
  EXPECT_DOUBLE_EQ(snap.sum, 100.6);
  // The same name again is the same family.
  EXPECT_EQ(&reg.add_counter("things_total", "Things.", {"kind"}), &c);
}

TEST(metrics, renders_the_text_format_exactly) {
  registry reg;
  reg.add_counter("requests_total", "Requests served.", {"route", "code"})
    .with({"/jobs/{id}", "200"})
    .inc(3);
  reg.add_gauge("temperature", "Current\\temperature\nin C.").get().set(-1.5);
  reg.add_histogram("latency_seconds", "Latency.", {"route"}, {0.5, 1})
    .with({"/"})
    .observe(0.25);
  reg.gauge_fn("answer", "The answer.", [] { return 42.0; });
  EXPECT_EQ(reg.render(),
            "# HELP requests_total Requests served.\n"
            "# TYPE requests_total counter\n"
            "requests_total{route=\"/jobs/{id}\",code=\"200\"} 3\n"
            "# HELP temperature Current\\\\temperature\\nin C.\n"
            "# TYPE temperature gauge\n"
            "temperature -1.5\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{route=\"/\",le=\"0.5\"} 1\n"
            "latency_seconds_bucket{route=\"/\",le=\"1\"} 1\n"
            "latency_seconds_bucket{route=\"/\",le=\"+Inf\"} 1\n"
            "latency_seconds_sum{route=\"/\"} 0.25\n"
            "latency_seconds_count{route=\"/\"} 1\n"
            "# HELP answer The answer.\n"
            "# TYPE answer gauge\n"
            "answer 42\n");
  expect_valid(reg.render());
}

TEST(metrics, unlabeled_families_show_zero_and_labeled_ones_only_types) {
  registry reg;
  reg.add_counter("starts_total", "Starts.");
  reg.add_counter("ends_total", "Ends.", {"status"});
  reg.add_histogram("empty_seconds", "Nothing yet.", {"x"},
                    duration_buckets());
  auto text = reg.render();
  EXPECT_NE(text.find("\nstarts_total 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("ends_total{"), std::string::npos) << text;
  expect_valid(text);
  auto x = parse_exposition(text);
  EXPECT_EQ(x.type("ends_total"), "counter");
  EXPECT_EQ(x.type("empty_seconds"), "histogram");
}

TEST(metrics, escapes_label_values) {
  registry reg;
  std::string nasty = "a\"b\\c\nd}{,=";
  reg.add_counter("odd_total", "Odd labels.", {"v"}).with({nasty}).inc();
  auto text = reg.render();
  EXPECT_NE(text.find(R"(odd_total{v="a\"b\\c\nd}{,="} 1)"), std::string::npos)
    << text;
  auto x = parse_exposition(text);
  EXPECT_TRUE(x.errors.empty());
  // The reader gets the original value back.
  EXPECT_EQ(x.sum("odd_total", {{"v", nasty}}), 1);
}

TEST(metrics, formats_values) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(12345678), "12345678");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(0.001), "0.001");
  EXPECT_EQ(format_value(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(format_value(HUGE_VAL), "+Inf");
  EXPECT_EQ(format_value(-HUGE_VAL), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::strtod(format_value(2.5e-7).c_str(), nullptr), 2.5e-7);
}

TEST(metrics, wrong_label_counts_are_fitted_not_fatal) {
  registry reg;
  auto& f = reg.add_counter("fit_total", "Fitted.", {"a", "b"});
  f.with({"x"}).inc();
  f.with({"x", "y", "z"}).inc();
  auto x = parse_exposition(reg.render());
  EXPECT_TRUE(x.errors.empty());
  EXPECT_EQ(x.sum("fit_total", {{"a", "x"}, {"b", ""}}), 1);
  EXPECT_EQ(x.sum("fit_total", {{"a", "x"}, {"b", "y"}}), 1);
}

TEST(metrics, callbacks_render_their_samples) {
  registry reg;
  int calls = 0;
  reg.add_callback("rows", "Rows by status.", metric_type::gauge,
                   {"status"}, [&] {
                     ++calls;
                     return std::vector<sample>{{{"pending"}, 3},
                                                {{"running"}, 1}};
                   });
  reg.counter_fn("reconnects_total", "Reconnects.", [] { return 2.0; });
  auto x = parse_exposition(reg.render());
  EXPECT_TRUE(x.errors.empty());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(x.sum("rows", {{"status", "pending"}}), 3);
  EXPECT_EQ(x.sum("rows"), 4);
  EXPECT_EQ(x.type("reconnects_total"), "counter");
  EXPECT_EQ(x.sum("reconnects_total"), 2);
}

TEST(metrics, concurrent_updates_are_not_lost) {
  registry reg;
  auto& c = reg.add_counter("hits_total", "Hits.", {"t"});
  auto& h = reg.add_histogram("obs_seconds", "Observations.", {},
                              latency_buckets());
  constexpr int threads = 4;
  constexpr int per_thread = 20000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      auto& mine = c.with({t % 2 == 0 ? "even" : "odd"});
      for (int i = 0; i < per_thread; ++i) {
        mine.inc();
        h.get().observe(0.001 * (i % 100));
        if (i % 1000 == 0)
          (void) reg.render(); // rendering while others write
      }
    });
  for (auto& th : pool)
    th.join();
  EXPECT_EQ(c.with({"even"}).value() + c.with({"odd"}).value(),
            threads * per_thread);
  auto snap = h.get().collect();
  EXPECT_EQ(snap.count, static_cast<uint64_t>(threads * per_thread));
  expect_valid(reg.render());
}

TEST(metrics, the_reader_rejects_broken_expositions) {
  auto errors = [](const std::string& text) {
    return parse_exposition(text).errors.size();
  };
  EXPECT_EQ(errors("# TYPE a counter\na 1\n"), 0u);
  EXPECT_GT(errors("a 1\n"), 0u);                            // no TYPE
  EXPECT_GT(errors("# TYPE a counter\na{x=\"1} 1\n"), 0u);   // unterminated
  EXPECT_GT(errors("# TYPE a counter\na{x=\"\\t\"} 1\n"), 0u); // bad escape
  EXPECT_GT(errors("# TYPE a counter\na one\n"), 0u);        // bad value
  EXPECT_GT(errors("# TYPE a counter\na -1\n"), 0u);         // negative
  EXPECT_GT(errors("# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\nb 2\n"),
            0u); // interleaved
  EXPECT_GT(errors("# TYPE h histogram\n"
                   "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
                   "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
            0u); // not cumulative
  EXPECT_GT(errors("# TYPE h histogram\n"
                   "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                   "h_sum 1\nh_count 3\n"),
            0u); // +Inf != count
  EXPECT_GT(errors("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n"
                   "h_count 1\n"),
            0u); // no +Inf
  EXPECT_GT(errors("# TYPE a counter\na 1"), 0u); // no final newline
}

TEST(metrics_server, serves_get_metrics_and_404_otherwise) {
  registry reg;
  reg.add_counter("served_total", "Served.").get().inc(5);
  metrics_server srv{[&] { return reg.render(); }};
  auto port = srv.start("127.0.0.1", 0);
  ASSERT_TRUE(port) << orch::render(port.error());
  ASSERT_GT(*port, 0);
  auto ok = http_roundtrip(*port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; "
                    "charset=utf-8\r\n"),
            std::string::npos)
    << ok;
  EXPECT_NE(ok.find("Connection: close\r\n"), std::string::npos);
  auto body = ok.substr(ok.find("\r\n\r\n") + 4);
  EXPECT_NE(ok.find("Content-Length: " + std::to_string(body.size())),
            std::string::npos);
  expect_valid(body);
  EXPECT_EQ(parse_exposition(body).sum("served_total"), 5);
  auto with_query = http_roundtrip(*port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(with_query.rfind("HTTP/1.1 200", 0), 0u) << with_query;
  auto other = http_roundtrip(*port, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(other.rfind("HTTP/1.1 404", 0), 0u) << other;
  auto post = http_roundtrip(*port, "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 404", 0), 0u) << post;
  auto huge = http_roundtrip(*port, "GET /metrics HTTP/1.1\r\nX: "
                                      + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(huge.rfind("HTTP/1.1 431", 0), 0u) << huge.substr(0, 100);
  // Still serving after all that.
  auto again = http_roundtrip(*port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(again.rfind("HTTP/1.1 200", 0), 0u) << again;
  srv.stop();
  EXPECT_TRUE(http_roundtrip(*port, "GET /metrics HTTP/1.1\r\n\r\n").empty());
}

TEST(metrics_server, a_silent_client_does_not_block_the_next_one_forever) {
  registry reg;
  metrics_server srv{[&] { return reg.render(); }};
  auto port = srv.start("127.0.0.1", 0);
  ASSERT_TRUE(port);
  // Connects and says nothing; the server gives up after its I/O timeout.
  int idle = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(*port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(idle, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  auto start = std::chrono::steady_clock::now();
  auto ok = http_roundtrip(*port, "GET /metrics HTTP/1.1\r\n\r\n");
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_LT(waited, metrics_server::io_timeout * 3);
  ::close(idle);
}

TEST(metrics_server, refuses_an_unusable_address) {
  metrics_server srv{[] { return std::string{}; }};
  EXPECT_FALSE(srv.start("256.0.0.1", 0));
}
