#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace orch {

/// The one error enum of orch. Every module boundary returns
/// `caf::expected<T>` or `caf::error` with one of these codes; the api-node
/// maps them to HTTP statuses in exactly one place (`api/problem.hpp`).
enum class ec : uint8_t {
  /// Not an error.
  none = 0,
  /// The request body is not well-formed JSON.
  malformed_json,
  /// The HTTP request itself is malformed (e.g. a bad Content-Length).
  malformed_request,
  /// Well-formed input that breaks a rule; the context names the fields.
  validation_failed,
  /// The request body has a media type we do not accept.
  unsupported_media_type,
  /// The request body exceeds the size limit.
  payload_too_large,
  /// The request target (path and query) exceeds the length limit.
  uri_too_long,
  /// The request headers exceed the size limit.
  headers_too_large,
  /// No such resource (job, route).
  not_found,
  /// The route exists, but not for this method.
  method_not_allowed,
  /// The request conflicts with the resource's current state.
  conflict,
  /// PostgreSQL cannot be reached right now; try again later.
  database_unavailable,
  /// PostgreSQL answered with an error we did not expect.
  database_error,
  /// A peer speaks another protocol version or another set of message types.
  protocol_mismatch,
  /// A worker id or CAF node id is already registered.
  duplicate_worker,
  /// A report about an attempt that no longer owns the job.
  stale_attempt,
  /// The node is shutting down or not ready.
  unavailable,
  /// A configuration value is invalid.
  invalid_configuration,
  /// A bug: an invariant of ours did not hold.
  internal,
};

/// The CAF error category of `ec`.
constexpr caf::atom_value ec_category = caf::atom("orch");

/// Returns a short, stable name for `x`, e.g. "validation_failed".
const char* to_string(ec x);

/// Converts `x` into a `caf::error` without context.
caf::error make_error(ec x);

/// Converts `x` into a `caf::error` with a human-readable detail.
caf::error make_error(ec x, std::string detail);

/// One rule a field broke.
struct field_error {
  field_error() = default;
  field_error(std::string field, std::string message, std::string rule = {})
    : field(std::move(field)), message(std::move(message)),
      rule(std::move(rule)) {
    // nop
  }

  std::string field;
  std::string message;
  /// The rule broken, e.g. "required", "type", "max"; may be empty.
  std::string rule;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, field_error& x) {
  return f(caf::meta::type_name("orch.field_error"), x.field, x.message,
           x.rule);
}

/// A `validation_failed` error that names each offending field.
caf::error make_validation_error(std::vector<field_error> errors);

/// Returns our code of `err`, or `ec::internal` for foreign categories.
ec code_of(const caf::error& err);

/// Returns the detail text stored in `err`, or an empty string.
std::string detail_of(const caf::error& err);

/// Returns the field errors stored in a `validation_failed` error.
std::vector<field_error> field_errors_of(const caf::error& err);

/// Renders any error (ours or CAF's) for log lines.
std::string render(const caf::error& err);

} // namespace orch
