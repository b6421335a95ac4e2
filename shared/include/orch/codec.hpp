#pragma once

#include "orch/job.hpp"

#include <caf/expected.hpp>

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

/// JSON codec and validation of the REST payloads. Errors are `ec` values:
/// `malformed_json` for text that is not JSON, `validation_failed` (with field
/// errors) for JSON that breaks a rule.
namespace orch::codec {

/// Parses and validates a `POST /jobs` body.
caf::expected<job_submission> parse_submission(std::string_view body);

/// Renders a job in the REST shape.
nlohmann::json to_json(const job& x);

/// Appends the REST shape of `x` to `out` without building a JSON DOM: the
/// stored parameters are embedded as they are (PostgreSQL hands them out as
/// valid JSON). Same content as `to_json(x).dump()`; keys in another order.
void append_json(std::string& out, const job& x);

/// Percent done, rounded to one decimal (0 when the total is unknown).
double progress_percent(const job_progress& x);

/// Appends `str` as a JSON string literal (quoted and escaped).
void append_json_string(std::string& out, std::string_view str);

/// Returns an opaque cursor for the keyset position `seq`.
std::string encode_cursor(int64_t seq);

/// Decodes a cursor made by `encode_cursor`; `validation_failed` otherwise.
caf::expected<int64_t> decode_cursor(std::string_view cursor);

/// Returns a stable 64-bit hash of `str` as 16 hex digits.
std::string hash_hex(std::string_view str);

/// Returns the number of Unicode code points of the UTF-8 string `str`.
size_t utf8_length(std::string_view str);

} // namespace orch::codec
