#pragma once

#include <caf/error.hpp>

#include <spdlog/spdlog.h>

#include <string>

namespace orch {

/// Sets up the process-wide spdlog logger named `name`, writing to stderr.
/// `level` is one of trace, debug, info, warn, error, critical, off;
/// `format` is "text" or "json" (one JSON object per line).
caf::error init_logging(const std::string& name, const std::string& level,
                        const std::string& format);

} // namespace orch
