#include "orch/api/http_server.hpp"
#include "orch/api/openapi.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>

using namespace orch::api;

// The router and the OpenAPI document can never drift apart.
TEST(openapi, describes_exactly_the_routes_of_the_router) {
  auto doc = nlohmann::json::parse(openapi_document());
  EXPECT_EQ(doc["openapi"], "3.1.0");
  std::vector<std::string> documented;
  std::regex param{"\\{[^}]+\\}"};
  for (auto& [path, ops] : doc["paths"].items())
    for (auto& [method, op] : ops.items()) {
      auto m = method;
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      documented.push_back(m + " " + std::regex_replace(path, param, "{}"));
      EXPECT_TRUE(op.contains("operationId")) << path;
      EXPECT_TRUE(op.contains("responses")) << path;
    }
  std::sort(documented.begin(), documented.end());
  EXPECT_EQ(documented, http_server::routes());
}

TEST(openapi, every_reference_resolves) {
  auto doc = nlohmann::json::parse(openapi_document());
  std::function<void(const nlohmann::json&)> walk = [&](const auto& x) {
    if (x.is_object()) {
      if (auto r = x.find("$ref"); r != x.end()) {
        auto ptr = r->template get<std::string>().substr(1);
        EXPECT_TRUE(doc.contains(nlohmann::json::json_pointer{ptr})) << ptr;
      }
      for (auto& [k, v] : x.items())
        walk(v);
    } else if (x.is_array()) {
      for (auto& v : x)
        walk(v);
    }
  };
  walk(doc);
}
