#include "orch/error.hpp"

#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace orch {

const char* to_string(ec x) {
  switch (x) {
    case ec::none: return "none";
    case ec::malformed_json: return "malformed_json";
    case ec::malformed_request: return "malformed_request";
    case ec::validation_failed: return "validation_failed";
    case ec::unsupported_media_type: return "unsupported_media_type";
    case ec::payload_too_large: return "payload_too_large";
    case ec::uri_too_long: return "uri_too_long";
    case ec::headers_too_large: return "headers_too_large";
    case ec::not_found: return "not_found";
    case ec::method_not_allowed: return "method_not_allowed";
    case ec::conflict: return "conflict";
    case ec::database_unavailable: return "database_unavailable";
    case ec::database_error: return "database_error";
    case ec::protocol_mismatch: return "protocol_mismatch";
    case ec::duplicate_worker: return "duplicate_worker";
    case ec::stale_attempt: return "stale_attempt";
    case ec::unavailable: return "unavailable";
    case ec::invalid_configuration: return "invalid_configuration";
    case ec::internal: return "internal";
  }
  return "unknown";
}

caf::error make_error(ec x) {
  return caf::error{static_cast<uint8_t>(x), ec_category};
}

caf::error make_error(ec x, std::string detail) {
  return caf::error{static_cast<uint8_t>(x), ec_category,
                    caf::make_message(std::move(detail))};
}

caf::error make_validation_error(std::vector<field_error> errors) {
  std::string detail;
  for (auto& e : errors) {
    if (!detail.empty())
      detail += "; ";
    detail += e.field + ": " + e.message;
  }
  return caf::error{static_cast<uint8_t>(ec::validation_failed), ec_category,
                    caf::make_message(std::move(detail), std::move(errors))};
}

ec code_of(const caf::error& err) {
  if (!err)
    return ec::none;
  if (err.category() != ec_category)
    return ec::internal;
  return static_cast<ec>(err.code());
}

std::string detail_of(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() >= 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return {};
}

std::vector<field_error> field_errors_of(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() >= 2 && ctx.match_element<std::vector<field_error>>(1))
    return ctx.get_as<std::vector<field_error>>(1);
  return {};
}

std::string render(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == ec_category) {
    std::string result = to_string(static_cast<ec>(err.code()));
    auto detail = detail_of(err);
    if (!detail.empty()) {
      result += ": ";
      result += detail;
    }
    return result;
  }
  return caf::to_string(err);
}

} // namespace orch
