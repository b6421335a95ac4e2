#include "orch/api/problem.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <nlohmann/json.hpp>

namespace orch::api {

namespace {

struct mapping {
  int status;
  const char* title;
};

mapping map(ec code) {
  switch (code) {
    case ec::malformed_json: return {400, "Malformed JSON"};
    case ec::malformed_request: return {400, "Malformed request"};
    case ec::validation_failed: return {422, "Validation failed"};
    case ec::unsupported_media_type: return {415, "Unsupported media type"};
    case ec::payload_too_large: return {413, "Payload too large"};
    case ec::uri_too_long: return {414, "URI too long"};
    case ec::headers_too_large:
      return {431, "Request header fields too large"};
    case ec::not_found: return {404, "Not found"};
    case ec::method_not_allowed: return {405, "Method not allowed"};
    case ec::conflict: return {409, "Conflict"};
    case ec::database_unavailable:
      return {503, "Database unavailable"};
    case ec::unavailable: return {503, "Service unavailable"};
    default: return {500, "Internal server error"};
  }
}

} // namespace

int http_status_of(const caf::error& err) {
  return map(code_of(err)).status;
}

problem to_problem(const caf::error& err) {
  auto code = code_of(err);
  auto m = map(code);
  auto detail = detail_of(err);
  if (m.status >= 500 && code != ec::unavailable) {
    // Never leak internals (SQL, connection strings) to clients.
    detail = m.status == 503 ? "the database cannot be reached right now; "
                               "retry later"
                             : "an internal error occurred; see the server "
                               "log";
  }
  nlohmann::json body{
    {"type", std::string{"https://orch.dev/problems/"} + to_string(code)},
    {"title", m.title},
    {"status", m.status},
    {"detail", detail},
  };
  if (code == ec::validation_failed) {
    auto errors = nlohmann::json::array();
    for (auto& fe : field_errors_of(err)) {
      nlohmann::json e{{"field", fe.field}, {"message", fe.message}};
      if (!fe.rule.empty())
        e["rule"] = fe.rule;
      errors.push_back(std::move(e));
    }
    body["errors"] = std::move(errors);
  }
  return {m.status, body.dump(-1, ' ', false,
                              nlohmann::json::error_handler_t::replace),
          m.status == 503 ? defaults::retry_after_seconds : 0};
}

} // namespace orch::api
