#include "orch/api/problem.hpp"
#include "orch/error.hpp"

#include <caf/sec.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace orch;
using namespace orch::api;

TEST(problem, maps_every_client_error) {
  EXPECT_EQ(http_status_of(make_error(ec::malformed_json)), 400);
  EXPECT_EQ(http_status_of(make_error(ec::validation_failed)), 422);
  EXPECT_EQ(http_status_of(make_error(ec::unsupported_media_type)), 415);
  EXPECT_EQ(http_status_of(make_error(ec::payload_too_large)), 413);
  EXPECT_EQ(http_status_of(make_error(ec::not_found)), 404);
  EXPECT_EQ(http_status_of(make_error(ec::method_not_allowed)), 405);
  EXPECT_EQ(http_status_of(make_error(ec::conflict)), 409);
  EXPECT_EQ(http_status_of(make_error(ec::database_unavailable)), 503);
  EXPECT_EQ(http_status_of(make_error(ec::internal)), 500);
  EXPECT_EQ(http_status_of(caf::make_error(caf::sec::unexpected_message)), 500);
}

TEST(problem, validation_body_names_fields) {
  auto p = to_problem(make_validation_error({{"limit", "too big"}}));
  auto j = nlohmann::json::parse(p.body);
  EXPECT_EQ(j["status"], 422);
  EXPECT_EQ(j["errors"][0]["field"], "limit");
  EXPECT_EQ(j["errors"][0]["message"], "too big");
  for (auto key : {"type", "title", "status", "detail"})
    EXPECT_TRUE(j.contains(key)) << key;
}

TEST(problem, server_errors_hide_internals_and_ask_to_retry) {
  auto p = to_problem(make_error(ec::database_unavailable,
                                 "password=secret host=db"));
  EXPECT_EQ(p.status, 503);
  EXPECT_GT(p.retry_after, 0);
  EXPECT_EQ(p.body.find("secret"), std::string::npos);
  p = to_problem(make_error(ec::database_error, "SELECT secret"));
  EXPECT_EQ(p.body.find("secret"), std::string::npos);
}
