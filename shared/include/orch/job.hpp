#pragma once

#include "orch/time.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orch {

/// The life of a job. Every change is one database transition with one
/// `job_events` row.
///
///            submit
///              |
///              v        claim + start (attempt += 1)
///          +-------+ --------------------------> +---------+
///          |pending|                              | running |
///          +-------+ <-------------------------- +---------+
///              |       worker lost (requeue)       |      |
///              |                                   | ok   | error
///              |                                   v      v
///              |                          +---------+  +------+
///              +-----> cancelled          |completed|  |failed|
///                                         +---------+  +------+
///
/// `completed`, `failed` and `cancelled` are terminal. Further edges:
/// - running -> pending: a failed attempt with attempts left (not before
///   `next_attempt_at`), a worker lost or a lease expired (requeue), or a
///   draining worker handing the job back (the attempt is not counted).
/// - running -> cancelled: the worker confirmed a cancel; a cancel accepted
///   while the worker was unreachable also wins over its late result.
enum class job_status : uint8_t {
  pending,
  running,
  completed,
  failed,
  cancelled,
};

/// Returns the lower-case name used in JSON and in the database.
const char* to_string(job_status x);

/// Parses a status name; returns nothing for unknown names.
std::optional<job_status> parse_job_status(std::string_view str);

/// Returns whether `x` is final.
constexpr bool is_terminal(job_status x) {
  return x == job_status::completed || x == job_status::failed
         || x == job_status::cancelled;
}

/// A validated `POST /jobs` body.
struct job_submission {
  std::string pipeline_name;
  /// The `parameters` object, serialized as compact JSON.
  std::string parameters_json = "{}";
  std::optional<std::string> description;
  int32_t priority = 0;
  /// Attempts before the job fails for good (1..100).
  int32_t max_attempts = 1;
  /// Base of the exponential retry backoff, in seconds.
  double retry_backoff_seconds = 10;
  /// Longest a single attempt may run.
  int32_t timeout_seconds = 86400;
  /// The client's Idempotency-Key header, if any.
  std::optional<std::string> idempotency_key;
  /// Hash of the canonical request body (for idempotent replays).
  std::string request_hash;
  /// The executor that runs it: from the catalog, "mock" without one.
  std::string executor = "mock";
};

/// Steps an executor reported for the current attempt.
struct job_progress {
  int64_t completed = 0;
  int64_t total = 0;
};

/// A job as stored.
struct job {
  std::string id;
  job_status status = job_status::pending;
  std::string pipeline_name;
  std::string parameters_json = "{}";
  std::optional<std::string> description;
  int32_t priority = 0;
  int32_t attempt = 0;
  std::optional<std::string> worker_id;
  micros created_at = 0;
  micros updated_at = 0;
  std::optional<micros> started_at;
  std::optional<micros> completed_at;
  std::optional<std::string> error_message;
  int32_t max_attempts = 1;
  double retry_backoff_seconds = 10;
  int32_t timeout_seconds = 86400;
  /// When a failed job may be claimed again.
  std::optional<micros> next_attempt_at;
  /// A cancel was accepted; the job ends `cancelled` whatever its worker
  /// reports.
  bool cancel_requested = false;
  std::string executor = "mock";
  /// Null until the executor reports progress.
  std::optional<job_progress> progress;
  /// Why a pending job is not running yet (no worker can run its executor,
  /// its pipeline is at max_concurrent, retry backoff); null otherwise.
  std::optional<std::string> waiting_reason;
};

/// The outcome a worker reports for one attempt.
enum class job_outcome : uint8_t {
  completed = 0,
  failed = 1,
  /// Stopped on request (cancel, or a start the scheduler rejected).
  cancelled = 2,
  /// Handed back unfinished by a draining worker; does not use an attempt.
  released = 3,
};

/// "completed", "failed", "cancelled" or "released".
const char* to_string(job_outcome x);

/// Filters and page of `GET /jobs`.
struct job_filter {
  std::vector<job_status> statuses;
  std::optional<std::string> pipeline_name;
  int32_t limit = 100;
  /// Keyset position: only jobs older than this submission sequence.
  std::optional<int64_t> before_seq;
};

/// One page of `GET /jobs`, newest first.
struct job_page {
  std::vector<job> jobs;
  int64_t total = 0;
  /// Sequence of the last job on this page when more follow.
  std::optional<int64_t> next_seq;
};

/// Returns a time-ordered (version 7) UUID in canonical lower-case form:
/// 48 bits of Unix milliseconds and 74 random bits.
std::string make_uuid();

/// Returns whether `str` is a UUID in canonical 8-4-4-4-12 hex form (any
/// case).
bool is_uuid(std::string_view str);

} // namespace orch
