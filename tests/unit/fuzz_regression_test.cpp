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
  EXPECT_FALSE(screen_request("{\"pipeline_name\":\"x\"}"));
  auto big_headers = screen_request("GET / HTTP/1.1\r\nX-Big: "
                                    + std::string(70000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(big_headers);
  EXPECT_NE(big_headers->find(": 431"), std::string::npos);
}
