#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace orch::worker {

/// Settings of the mock executor (MOCK_* variables).
struct mock_config {
  double min_seconds = 10;
  double max_seconds = 30;
  double success_rate = 0.8;
};

/// What one mock run will do.
struct mock_plan {
  std::chrono::milliseconds duration{0};
  bool ok = true;
  std::string error;
};

/// The mock executor stands in for Snakemake: it sleeps a duration drawn
/// uniformly from [min_seconds, max_seconds] and succeeds with probability
/// `success_rate`, failing with a realistic error otherwise. Per-job
/// parameters override the draw: `mock_duration_ms` (integer >= 0),
/// `mock_fail` (bool) and `mock_error` (string).
class mock_executor {
public:
  explicit mock_executor(mock_config cfg, uint64_t seed = std::random_device{}());

  /// Plans a run of a job with these parameters (a JSON object).
  mock_plan plan(const std::string& parameters_json);

private:
  mock_config cfg_;
  std::mt19937_64 rng_;
};

} // namespace orch::worker
