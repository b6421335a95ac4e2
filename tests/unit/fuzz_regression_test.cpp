// Replays the fuzz corpus and every past finding (tests/fuzz/regressions)
// through the fuzzer's property checks, in the normal test build.

#include "../fuzz/request_checks.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

TEST(fuzz_regression, corpus_and_findings_hold_every_property) {
  size_t files = 0;
  for (auto dir : {ORCH_FUZZ_DIR "/corpus", ORCH_FUZZ_DIR "/regressions"}) {
    for (auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in{entry.path(), std::ios::binary};
      std::stringstream ss;
      ss << in.rdbuf();
      EXPECT_EQ(orch::fuzz::check_request_input(ss.str()), "")
        << entry.path();
      ++files;
    }
  }
  EXPECT_GE(files, 5u);
}

TEST(fuzz_regression, screen_rejects_lying_content_lengths) {
  using orch::api::screen_request;
  auto huge = screen_request("POST /jobs HTTP/1.1\r\nContent-Length: "
                             "99999999999\r\n\r\n{}");
  ASSERT_TRUE(huge);
  EXPECT_NE(huge->find(": 413"), std::string::npos) << *huge;
  auto negative = screen_request("POST /jobs HTTP/1.1\r\ncontent-length: -1"
                                 "\r\n\r\n");
  ASSERT_TRUE(negative);
  EXPECT_NE(negative->find(": 400"), std::string::npos) << *negative;
  auto fine = screen_request("POST /jobs HTTP/1.1\r\nContent-Length: 2"
                             "\r\n\r\n{}");
  EXPECT_FALSE(fine);
  // Not a request line: answered 400.
  auto not_http = screen_request("{\"pipeline_name\":\"x\"}\r\n\r\n");
  ASSERT_TRUE(not_http);
  EXPECT_NE(not_http->find(": 400"), std::string::npos);
  auto big_headers = screen_request("GET / HTTP/1.1\r\nX-Big: "
                                    + std::string(70000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(big_headers);
  EXPECT_NE(big_headers->find(": 431"), std::string::npos);
}

TEST(request_screen, buffers_split_heads_and_counts_bodies) {
  orch::api::request_screen screen;
  std::string req = "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                    "\r\n{}{}GET /health HTTP/1.1\r\n\r\n";
  std::string out;
  for (char c : req)
    out += screen.feed(std::string_view{&c, 1});
  EXPECT_EQ(out, req);
}

TEST(request_screen, rejects_lying_length_after_a_long_head) {
  orch::api::request_screen screen;
  std::string head = "POST /jobs HTTP/1.1\r\nX-Pad: " + std::string(6000, 'p')
                     + "\r\nContent-Length: 99999999999\r\n\r\n{}";
  auto out = screen.feed(std::string_view{head}.substr(0, 4096));
  EXPECT_TRUE(out.empty());
  out += screen.feed(std::string_view{head}.substr(4096));
  EXPECT_NE(out.find(": 413"), std::string::npos);
  EXPECT_EQ(out.find("99999999999"), std::string::npos);
  EXPECT_TRUE(screen.feed("more body").empty());
}

TEST(request_screen, rejects_heads_over_the_limit_in_pieces) {
  orch::api::request_screen screen;
  std::string out;
  out += screen.feed("GET /health HTTP/1.1\r\nX-Big: ");
  for (int i = 0; i < 20 && out.empty(); ++i)
    out += screen.feed(std::string(4096, 'b'));
  EXPECT_NE(out.find(": 431"), std::string::npos);
}
