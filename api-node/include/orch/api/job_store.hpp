#pragma once

#include "orch/catalog.hpp"
#include "orch/job.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace pqxx {
class connection_base;
class transaction_base;
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
  int32_t timeout_seconds = 86400;
  std::string executor = "mock";
};

/// What became of one submission.
struct submit_result {
  job value;
  /// An earlier submission with the same Idempotency-Key and body.
  bool replayed = false;
  /// Set when the key was used with a different body.
  caf::error error;
};

/// A job and attempt, e.g. one a worker runs.
struct job_attempt {
  std::string job_id;
  int32_t attempt = 0;
};

/// What a cancel request did.
struct cancel_result {
  job value;
  /// The job was running: its worker must stop it.
  bool was_running = false;
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
    job_outcome outcome;
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
  struct log_lines {
    std::string job_id;
    int32_t attempt;
    std::string stream;
    std::vector<std::string> lines;
  };
  struct progress_report {
    std::string job_id;
    int32_t attempt;
    int64_t completed;
    int64_t total;
  };
  /// Output lines; stored after the starts, before the finishes.
  std::vector<log_lines> logs;
  /// The latest progress of running attempts.
  std::vector<progress_report> progress;
  /// Claimed but never started jobs to hand back.
  std::vector<std::string> releases;

  bool empty() const {
    return starts.empty() && finishes.empty() && requeues.empty()
           && releases.empty() && logs.empty() && progress.empty();
  }
};

/// The starts of `batch` that `job_store::apply` writes together with their
/// finish, by job id: a job with exactly one start and one finish of the
/// same attempt in the batch, and no other report (progress, output lines,
/// requeue, release). Such a job ran within one flush (a no-op or very short
/// job); one update then takes it from pending to its end, with both
/// events, under the start's fence.
std::unordered_map<std::string, const transition_batch::started*>
joined_starts(const transition_batch& batch);

/// A committed change of a job's status, with what metrics need.
struct transition_row {
  std::string job_id;
  std::string pipeline_name;
  /// The status the job reached.
  job_status status = job_status::pending;
  int32_t attempt = 0;
  micros created_at = 0;
  std::optional<micros> started_at;
  std::optional<micros> completed_at;
};

/// Which transitions of a batch took effect. The others were fenced off:
/// their attempt no longer owns the job.
struct batch_outcome {
  std::vector<std::string> started;
  std::vector<std::string> finished;
  std::vector<std::string> requeued;
  /// The committed starts.
  std::vector<transition_row> start_rows;
  /// The committed finishes and requeues (terminal or back to pending).
  std::vector<transition_row> end_rows;
};

/// The number of jobs of one pipeline in one status.
struct job_count {
  std::string pipeline_name;
  job_status status = job_status::pending;
  int64_t n = 0;
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
  /// The executors it can run.
  std::vector<std::string> executors;
};

/// One stored output line of a job.
struct log_line {
  int64_t id = 0;
  int32_t attempt = 0;
  std::string stream;
  micros at = 0;
  std::string line;
};

/// The tail of a job's log, and what the per-job cap dropped before it.
struct job_logs_page {
  std::vector<log_line> lines;
  int64_t dropped_lines = 0;
  int64_t dropped_bytes = 0;
};

/// One event of the job event stream (migration 0006): a status change
/// (`job_events`), an output line (`job_logs`), or a progress report or
/// completion marker (`job_signals`). The ids of all three share one
/// sequence, so they order the events of a job and of the whole system.
struct stream_event {
  enum class kind : uint8_t { status, log, progress, complete };
  int64_t id = 0;
  kind type = kind::status;
  std::string job_id;
  micros at = 0;
  int32_t attempt = 0;
  /// status, complete: the status reached; log, progress: the job's status
  /// when read.
  std::string status;
  /// status only.
  std::optional<std::string> from_status;
  std::optional<std::string> worker_id;
  std::optional<std::string> message;
  /// log only.
  std::string stream;
  std::string line;
  /// progress only.
  int64_t completed = 0;
  int64_t total = 0;
  /// Of the job, when read.
  std::string pipeline_name;
  std::optional<std::string> error_message;
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

  /// Sets the lease a started attempt gets (default: defaults::lease_ttl).
  void set_lease_ttl(std::chrono::milliseconds ttl) {
    lease_ttl_ = ttl;
  }

  /// Inserts `subs` as pending jobs in one transaction, with one
  /// `job_events` row each. Returns the jobs in the order of `subs`.
  caf::expected<std::vector<job>>
  insert_jobs(const std::vector<job_submission>& subs);

  /// Like `insert_jobs`, honouring Idempotency-Keys: a key seen before
  /// returns its job (replayed) when the body hash matches, and a
  /// `validation_failed` error otherwise. Its commit also tells every
  /// api-node's scheduler (NOTIFY orch_jobs) that new jobs exist. One
  /// statement, in autocommit when no submission has a key.
  caf::expected<std::vector<submit_result>>
  submit_jobs(const std::vector<job_submission>& subs);

  /// Cancels a job: a pending one at once, a running one by setting
  /// `cancel_requested` (and notifying the schedulers on `orch_cancel`).
  /// Answers `not_found`, or `conflict` naming the status of a terminal job.
  caf::expected<cancel_result> cancel_job(const std::string& id);

  /// Extends the leases of running attempts.
  caf::error renew_leases(const std::vector<job_attempt>& jobs,
                          std::chrono::milliseconds ttl);

  /// Returns running jobs whose lease lapsed to pending (or fails them
  /// with "worker lost" when no attempts are left, or cancels them when a
  /// cancel was requested). Rows are locked SKIP LOCKED, so concurrent
  /// reapers never reap a job twice. Returns the reaped job ids; `rows`,
  /// when given, receives each reaped job's new state.
  caf::expected<std::vector<std::string>>
  reap(size_t limit, std::vector<transition_row>* rows = nullptr);

  /// Takes over attempts a re-registering worker still runs: those whose
  /// attempt still owns its running job get a fresh lease and are returned;
  /// `cancelled` lists those that must stop (requeued, reaped, finished, or
  /// cancel requested).
  caf::expected<std::vector<job_attempt>>
  adopt(const std::string& worker_id, const std::vector<job_attempt>& jobs,
        std::chrono::milliseconds ttl, std::vector<job_attempt>& cancelled);

  /// Folds the job count deltas into job_counts (migration 0004). Safe to
  /// call from every api-node: one compacts, the others skip.
  caf::error compact_counts();

  /// Hands back every pending claim of `scheduler_id`.
  caf::error release_claims(const std::string& scheduler_id);

  /// Counts jobs by pipeline and status from the counters of migration
  /// 0004 (job_counts plus the uncompacted deltas; no scan of jobs).
  caf::expected<std::vector<job_count>> count_jobs();

  /// Connections opened again after one was lost, by every store of this
  /// process.
  static uint64_t reconnects();

  /// Returns one job, or `not_found`.
  caf::expected<job> get_job(const std::string& id);

  /// Returns the jobs of `ids` (lower-case UUIDs) that exist, in no
  /// particular order: one statement for a batch of lookups.
  caf::expected<std::vector<job>> get_jobs(const std::vector<std::string>& ids);

  /// Returns one page of jobs, newest first.
  caf::expected<job_page> list_jobs(const job_filter& filter);

  /// Claims up to `limit` pending jobs for `scheduler_id`, highest priority
  /// first, then in submission order, skipping rows other schedulers hold.
  /// Only jobs whose executor is in `executors` qualify, and a pipeline with
  /// a `max_concurrent` never gets more running or claimed jobs than that,
  /// counted over all api-nodes under a lock on its `pipelines` row.
  caf::expected<std::vector<claimed_job>>
  claim(size_t limit, const std::string& scheduler_id,
        std::chrono::milliseconds ttl,
        const std::vector<std::string>& executors = {"mock"});

  /// Applies `batch` in one transaction, fenced by attempt numbers. The
  /// jobs of `joined_starts(batch)` go from pending to their end in one
  /// update, with both events; the outcome lists them as started and as
  /// finished, as if the start and the finish had been applied in turn.
  caf::expected<batch_outcome> apply(const transition_batch& batch,
                                     const std::string& scheduler_id);

  /// Returns the last `tail` lines of a job's log (all streams, or only
  /// `stream`), oldest first; `not_found` for an unknown job.
  caf::expected<job_logs_page> get_logs(const std::string& id, int64_t tail,
                                        const std::optional<std::string>& stream);
  /// Returns up to `limit` ids of stream events after `after`, in order.
  caf::expected<std::vector<int64_t>> stream_ids(int64_t after, size_t limit);
  /// Returns up to `limit` stream events with `after < id <= upto`, in id
  /// order; of one job when `job_id` is set.
  caf::expected<std::vector<stream_event>>
  stream_events(int64_t after, int64_t upto,
                const std::optional<std::string>& job_id, size_t limit);
  /// The highest stream event id committed so far (0 when none).
  caf::expected<int64_t> stream_head();
  /// Stores the catalog in `pipelines` (max_concurrent is enforced from
  /// there) and removes pipelines it no longer lists.
  caf::error sync_pipelines(const catalog& cat);
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
  /// Appends log lines (fenced by attempt) and applies the per-job cap.
  void append_logs(pqxx::transaction_base& tx,
                   const std::vector<transition_batch::log_lines>& logs);

  /// Declares `sql` as prepared statement `name` on the current connection
  /// (once per connection) and returns `name`. Saves the planning of
  /// frequent reads, which costs more than executing them.
  std::string prepared(const std::string& name, const std::string& sql);

  struct connection_holder;

  std::string url_;
  std::unique_ptr<connection_holder> conn_;
  /// Whether a connection was open before (the next one is a reconnect).
  bool connected_before_ = false;
  std::chrono::milliseconds lease_ttl_;
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
