#include "orch/worker/mock_executor.hpp"

#include <gtest/gtest.h>

using namespace orch::worker;
using namespace std::chrono_literals;

TEST(mock_executor, draws_within_configured_bounds) {
  mock_executor ex{{0.1, 0.2, 1.0}, 42};
  for (int i = 0; i < 100; ++i) {
    auto p = ex.plan("{}");
    EXPECT_GE(p.duration, 100ms);
    EXPECT_LE(p.duration, 200ms);
    EXPECT_TRUE(p.ok);
    EXPECT_TRUE(p.error.empty());
  }
}

TEST(mock_executor, failure_rate_zero_always_fails_realistically) {
  mock_executor ex{{0, 0, 0.0}, 7};
  for (int i = 0; i < 20; ++i) {
    auto p = ex.plan("{}");
    EXPECT_FALSE(p.ok);
    EXPECT_FALSE(p.error.empty());
  }
}

TEST(mock_executor, parameters_override_the_draw) {
  mock_executor ex{{10, 30, 0.0}, 1};
  auto p = ex.plan(R"({"mock_duration_ms":5,"mock_fail":false})");
  EXPECT_EQ(p.duration, 5ms);
  EXPECT_TRUE(p.ok);
  p = ex.plan(R"({"mock_duration_ms":0,"mock_fail":true,"mock_error":"boom"})");
  EXPECT_EQ(p.duration, 0ms);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "boom");
  mock_executor lucky{{0, 0, 1.0}, 1};
  p = lucky.plan(R"({"mock_fail":true})");
  EXPECT_FALSE(p.ok);
  EXPECT_FALSE(p.error.empty());
  p = lucky.plan(R"({"mock_error":"only a message"})");
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "only a message");
}

TEST(mock_executor, ignores_malformed_overrides) {
  mock_executor ex{{0.001, 0.001, 1.0}, 1};
  auto p = ex.plan(R"({"mock_duration_ms":-5,"mock_fail":"yes"})");
  EXPECT_EQ(p.duration, 1ms);
  EXPECT_TRUE(p.ok);
}
