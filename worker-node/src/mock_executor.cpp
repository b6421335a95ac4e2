#include "orch/worker/mock_executor.hpp"

#include <nlohmann/json.hpp>

#include <array>

namespace orch::worker {

namespace {

constexpr std::array<const char*, 6> failures = {
  "Error in rule align_reads: bwa mem exited with non-zero exit status 1",
  "MissingInputException: reference genome GRCh38.fa not found in "
  "resources/genome/",
  "Error in rule call_variants: mean coverage 4.2x is below the required "
  "10x",
  "Error in rule trim_adapters: job exceeded its time limit of 3600 s",
  "Error in rule sort_bam: samtools sort ran out of disk space (No space "
  "left on device)",
  "Error in rule quality_control: FastQC found truncated FASTQ input "
  "sample_07_R2.fastq.gz",
};

} // namespace

mock_executor::mock_executor(mock_config cfg, uint64_t seed)
  : cfg_(cfg), rng_(seed) {
  // nop
}

mock_plan mock_executor::plan(const std::string& parameters_json) {
  mock_plan result;
  auto lo = std::min(cfg_.min_seconds, cfg_.max_seconds);
  auto hi = std::max(cfg_.min_seconds, cfg_.max_seconds);
  std::uniform_real_distribution<double> secs{lo, hi};
  result.duration = std::chrono::milliseconds{
    static_cast<int64_t>(secs(rng_) * 1000.0)};
  std::bernoulli_distribution success{
    std::clamp(cfg_.success_rate, 0.0, 1.0)};
  result.ok = success(rng_);
  std::uniform_int_distribution<size_t> pick{0, failures.size() - 1};
  if (!result.ok)
    result.error = failures[pick(rng_)];
  nlohmann::json params;
  try {
    params = nlohmann::json::parse(parameters_json);
  } catch (const nlohmann::json::exception&) {
    return result;
  }
  if (!params.is_object())
    return result;
  if (auto i = params.find("mock_duration_ms");
      i != params.end() && i->is_number_integer() && *i >= 0)
    result.duration = std::chrono::milliseconds{i->get<int64_t>()};
  if (auto i = params.find("mock_fail"); i != params.end() && i->is_boolean()) {
    result.ok = !i->get<bool>();
    if (!result.ok && result.error.empty())
      result.error = failures[pick(rng_)];
  }
  if (auto i = params.find("mock_error"); i != params.end() && i->is_string()) {
    if (!result.ok || params.find("mock_fail") == params.end()) {
      // An explicit error message means the run fails with it, unless
      // mock_fail says otherwise.
      result.ok = false;
      result.error = i->get<std::string>();
    }
  }
  if (result.ok)
    result.error.clear();
  return result;
}

} // namespace orch::worker
