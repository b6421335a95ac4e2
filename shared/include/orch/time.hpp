#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace orch {

/// Microseconds since the Unix epoch, UTC. Timestamps travel in this form
/// between nodes and from the database.
using micros = int64_t;

/// Returns the current wall-clock time.
micros now_micros();

/// Formats `t` as RFC 3339 UTC with milliseconds, e.g.
/// "2026-11-22T20:52:13.123Z".
std::string format_rfc3339(micros t);

} // namespace orch
