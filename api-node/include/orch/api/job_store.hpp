#pragma once

#include "orch/job.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
} // namespace pqxx

namespace orch::api {

/// A pending job the scheduler claimed for dispatch.
struct claimed_job {
  std::string id;
  /// The attempt the job has had so far; the dispatched run is `attempt+1`.
  int32_t attempt = 0;
  std::string pipeline_name;
  std::string parameters_json;
  int32_t priority = 0;
  int64_t seq = 0;
};

/// Transitions the scheduler persists together, in this order: starts,
/// finishes, requeues of lost workers' jobs, released claims.
struct transition_batch {
  struct started {
    std::string job_id;
    int32_t attempt;
    std::string worker_id;
    micros at;
  };
  struct finished {
    std::string job_id;
    int32_t attempt;
    bool ok;
    std::string error;
    micros at;
  };
  struct requeued {
    std::string job_id;
    int32_t attempt;
    std::string worker_id;
    std::string reason;
  };
  std::vector<started> starts;
  std::vector<finished> finishes;
  std::vector<requeued> requeues;
  /// Claimed but never started jobs to hand back.
  std::vector<std::string> releases;

  bool empty() const {
    return starts.empty() && finishes.empty() && requeues.empty()
           && releases.empty();
  }
};

/// Which transitions of a batch took effect. The others were fenced off:
/// their attempt no longer owns the job.
struct batch_outcome {
  std::vector<std::string> started;
  std::vector<std::string> finished;
  std::vector<std::string> requeued;
};

/// A worker as registered.
struct worker_row {
  std::string id;
  std::string host;
  int32_t slots = 0;
  int32_t running = 0;
  std::string scheduler_id;
  std::string node_id;
  micros connected_at = 0;
  micros last_seen = 0;
};

/// All SQL of orch, over one PostgreSQL connection. Not thread-safe: one
/// store per thread (per detached actor). Every function catches libpqxx
/// exceptions and answers with an `ec`: `database_unavailable` when the
/// connection is gone (the next call reconnects), `database_error` otherwise.
class job_store {
public:
  explicit job_store(std::string url);
  ~job_store();
  job_store(const job_store&) = delete;
  job_store& operator=(const job_store&) = delete;

  /// Opens the connection if needed and checks it with a round trip.
  caf::error ping();

  /// Inserts `subs` as pending jobs in one transaction, with one
  /// `job_events` row each, and notifies the schedulers. Returns the jobs in
  /// the order of `subs`.
  caf::expected<std::vector<job>>
  insert_jobs(const std::vector<job_submission>& subs);

  /// Returns one job, or `not_found`.
  caf::expected<job> get_job(const std::string& id);

  /// Returns one page of jobs, newest first.
  caf::expected<job_page> list_jobs(const job_filter& filter);

  /// Claims up to `limit` pending jobs for `scheduler_id`, highest priority
  /// first, then in submission order, skipping rows other schedulers hold.
  caf::expected<std::vector<claimed_job>>
  claim(size_t limit, const std::string& scheduler_id,
        std::chrono::milliseconds ttl);

  /// Applies `batch` in one transaction, fenced by attempt numbers.
  caf::expected<batch_outcome> apply(const transition_batch& batch,
                                     const std::string& scheduler_id);

  /// Records a worker as connected to `w.scheduler_id`.
  caf::error upsert_worker(const worker_row& w);

  /// Records that a worker left, unless another scheduler owns it by now.
  caf::error disconnect_worker(const std::string& id,
                               const std::string& scheduler_id);

  /// Updates last_seen of the workers connected to `scheduler_id`.
  caf::error touch_workers(const std::vector<std::string>& ids,
                           const std::vector<micros>& last_seen,
                           const std::string& scheduler_id);

  /// Lists connected workers (seen within `stale_after`), with the number of
  /// jobs each runs.
  caf::expected<std::vector<worker_row>>
  list_workers(std::chrono::milliseconds stale_after);

  /// Applies the migrations in `dir` (files NNNN_name.sql, in order) that
  /// `schema_migrations` does not list, each in its own transaction, under
  /// an advisory lock. Returns how many were applied.
  caf::expected<size_t> migrate(const std::string& dir);

private:
  template <class F>
  auto guarded(const char* what, F&& f) -> decltype(f());

  pqxx::connection_base& conn();

  struct connection_holder;

  std::string url_;
  std::unique_ptr<connection_holder> conn_;
};

/// Renders `xs` as a PostgreSQL array literal, e.g. {"a","b"}; a `nullopt`
/// becomes NULL. Used to pass whole batches as one parameter.
std::string pg_array(const std::vector<std::string>& xs);
std::string pg_array(const std::vector<std::optional<std::string>>& xs);
template <class Int>
std::string pg_int_array(const std::vector<Int>& xs) {
  std::string out = "{";
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0)
      out += ',';
    out += std::to_string(xs[i]);
  }
  out += '}';
  return out;
}

} // namespace orch::api
