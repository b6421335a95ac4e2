#pragma once

#include "orch/api/job_store.hpp"
#include "orch/job.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

namespace orch::api {

/// Work for one pooled connection; runs on that connection's thread.
using db_task = std::function<void(job_store&)>;

/// How busy a pool's connections are, for metrics.
struct pool_usage {
  /// Connections (one per actor).
  std::atomic<int64_t> size{0};
  /// Connections running a task or a group commit right now.
  std::atomic<int64_t> busy{0};
};

/// Called once a submission is committed (or failed to be).
using submit_callback = std::function<void(caf::expected<submit_result>)>;

/// Called with the job a lookup found, `not_found`, or the database error.
using lookup_callback = std::function<void(caf::expected<job>)>;

/// Formats a page as its HTTP body; runs once for all the requests the page
/// answers.
using page_formatter = std::function<std::string(const job_page&)>;

/// Called with the formatted page (shared by every request it answers) or
/// the database error.
using page_callback
  = std::function<void(caf::expected<std::shared_ptr<const std::string>>)>;

/// A fixed set of detached actors, each owning one PostgreSQL connection.
/// HTTP handlers hand them work and return at once; the actor answers the
/// HTTP request when the database did.
///
/// Submissions are group-committed: an actor that receives a submission
/// queues it and schedules one flush at the end of its mailbox, so that all
/// submissions that arrived meanwhile are inserted in one transaction. Every
/// callback runs only after that commit, on a responder actor of the
/// writer's (CAF's scheduler threads), so that the writer starts its next
/// transaction while the answers go out. Then the scheduler is woken.
///
/// Lookups of one job by id (`GET /jobs/{id}`) are batched the same way, on
/// one actor of their own (its own connection): every lookup in its mailbox
/// before its flush joins one `WHERE id = ANY(...)` statement, and its
/// responder answers them. One lookup actor makes the biggest batches:
/// measured against 2 and 4 (docs/performance.md), it served the most
/// lookups with the lowest p99.
///
/// List requests (`GET /jobs`) go to `defaults::list_actors` list actors,
/// chosen by the filter, so that equal requests meet on one actor. A list
/// actor gathers the requests in its mailbox, runs each distinct page once,
/// formats it once, and answers every request for it with that body:
/// requests that arrive together for the same page share one statement.
/// Each answer still reflects a statement that started after its request
/// arrived (the flush runs after the request was queued), so a client reads
/// its own writes.
class db_pool {
public:
  /// Spawns `readers` actors for `run`, `writers` for `submit`, one for
  /// `lookup` and `defaults::list_actors` for `list`. Few
  /// writers make big group commits: every submission that arrives while a
  /// writer commits joins its next transaction.
  db_pool(caf::actor_system& sys, std::string url, size_t readers,
          size_t writers, caf::actor scheduler);
  ~db_pool();

  /// Runs `task` on some pooled connection.
  void run(db_task task);

  /// Inserts `sub` as part of the next group commit, then calls `done`.
  void submit(job_submission sub, submit_callback done);

  /// Reads job `id` (a lower-case UUID) as part of the lookup actor's next
  /// batch, then calls `done`.
  void lookup(std::string id, lookup_callback done);

  /// Reads the page `filter` selects with the requests for the same page
  /// that queued with it, formats it with `format`, then calls `done`.
  void list(job_filter filter, page_formatter format, page_callback done);

  /// Stops the pool's actors.
  void stop();

  /// The pool's busy and idle connections.
  std::shared_ptr<const pool_usage> usage() const {
    return usage_;
  }

private:
  std::shared_ptr<pool_usage> usage_ = std::make_shared<pool_usage>();
  std::vector<caf::actor> readers_;
  std::vector<caf::actor> writers_;
  caf::actor lookup_;
  std::vector<caf::actor> listers_;
  std::atomic<size_t> next_reader_{0};
  std::atomic<size_t> next_writer_{0};
};

} // namespace orch::api
