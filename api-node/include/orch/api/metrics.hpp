#pragma once

#include "orch/api/job_store.hpp"
#include "orch/metrics.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace orch::api {

struct scheduler_probe;
struct pool_usage;

/// The api-node's metrics, served by `GET /metrics`. Job counters and
/// histograms are updated where a transition is committed (docs/
/// architecture.md, "Metrics"); the gauges that come from the database
/// (jobs by status, workers) are read at most once per `refresh` interval.
/// Thread-safe.
class api_metrics {
  // First: the families below are references into it.
  metrics::registry registry_;

public:
  api_metrics();
  api_metrics(const api_metrics&) = delete;
  api_metrics& operator=(const api_metrics&) = delete;

  metrics::registry& registry() {
    return registry_;
  }

  /// POST /jobs committed a new job (a 201, not an idempotent replay).
  void job_submitted(const std::string& pipeline);

  /// A start was committed: observes submit -> start of first attempts.
  void job_started(const transition_row& x);

  /// A transition was committed; counts it when it is terminal and
  /// observes the run's duration when the job had started.
  void job_ended(const transition_row& x);

  /// The label for `pipeline`: itself, or "_other" once
  /// `defaults::metrics_max_pipelines` distinct names have been seen (any
  /// name runs without a catalog; labels must stay bounded).
  std::string pipeline_label(const std::string& pipeline);

  /// HTTP requests by route pattern, method and status code.
  metrics::family<metrics::counter>& http_requests;

  /// HTTP request latency by route pattern and method.
  metrics::family<metrics::histogram>& http_duration;

  /// Reads jobs by status and the connected workers through `store` when
  /// the last read is older than `max_age` (one reader at a time; others
  /// use the cached values). A failed read keeps the previous values.
  void refresh(job_store& store, std::chrono::milliseconds max_age);

  /// Reads the pool's busy and idle connections at render time.
  void watch_pool(std::shared_ptr<const pool_usage> usage);

  /// Reads SSE clients and requests in flight from `probe` at render time.
  void watch_probe(std::shared_ptr<const scheduler_probe> probe);

  /// The exposition text.
  std::string render() const {
    return registry_.render();
  }

private:
  metrics::family<metrics::counter>& submitted_;
  metrics::family<metrics::counter>& finished_;
  metrics::family<metrics::histogram>& dispatch_;
  metrics::family<metrics::histogram>& duration_;

  std::mutex labels_mtx_;
  std::set<std::string> pipelines_seen_;

  // The database-backed gauges, cached.
  mutable std::mutex cache_mtx_;
  std::mutex refresh_mtx_;
  std::chrono::steady_clock::time_point refreshed_{};
  bool ever_refreshed_ = false;
  std::vector<job_count> counts_;
  int64_t workers_ = 0;
  int64_t slots_ = 0;
  int64_t busy_ = 0;
};

} // namespace orch::api
