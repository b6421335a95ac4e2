#pragma once

#include <caf/error.hpp>

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace orch::api {

/// An HTTP error response: status, problem+json body, extra headers.
struct problem {
  int status = 500;
  std::string body;
  /// Seconds for a Retry-After header; 0 for none.
  int retry_after = 0;
};

/// The one place where our errors become HTTP statuses and RFC 9457
/// problem documents: {"type","title","status","detail"} plus "errors"
/// [{"field","message"}] for validation errors.
problem to_problem(const caf::error& err);

/// Returns the HTTP status for `err`.
int http_status_of(const caf::error& err);

} // namespace orch::api
