#pragma once

#include "orch/catalog.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace orch::api {

class api_metrics;

/// What the rest of the api-node may observe of its scheduler.
struct scheduler_probe {
  /// True while the scheduler actor runs.
  std::atomic<bool> running{false};
  /// True while the scheduler's last database operation succeeded.
  std::atomic<bool> database_ok{false};
  /// True once the api-node drains (SIGTERM): /ready answers 503.
  std::atomic<bool> draining{false};
  /// HTTP requests accepted and not yet answered.
  std::atomic<int64_t> requests_in_flight{0};
  /// Open event streams (SSE): incremented when a stream starts and
  /// decremented when it ends, by whoever serves them; GET /metrics shows
  /// it as the `sse_clients` gauge.
  std::atomic<int64_t> sse_clients{0};
};

struct scheduler_config {
  std::string database_url;
  /// Unique per process: names this scheduler's claims in Postgres.
  std::string scheduler_id;
  std::shared_ptr<scheduler_probe> probe;
  /// Lease of a running attempt; renewed while its worker is heard from.
  std::chrono::milliseconds lease_ttl{20000};
  /// The pipeline catalog: executor settings sent with each assignment.
  std::shared_ptr<const catalog> pipelines;
  /// Counts committed starts and terminal transitions (may be null).
  std::shared_ptr<api_metrics> metrics;
  /// PostgreSQL connections (SCHEDULER_DB_CONNECTIONS): the first claims
  /// while the others persist the workers' reports, split by job; with one,
  /// it does both in turn.
  size_t db_connections = 3;
};

/// Spawns the scheduler: a detached actor with its own PostgreSQL
/// connections (`db_connections` of them; see flush() in scheduler.cpp).
///
/// It accepts worker registrations (see messages.hpp), monitors workers, and
/// keeps each worker's slots busy: it claims pending jobs in Postgres
/// (FOR UPDATE SKIP LOCKED), sends them as `job_assignment`, and persists the
/// workers' reports. Reports and claims are batched: a handler only queues
/// its transition and schedules one `flush` at the end of the mailbox, so
/// every message that arrived meanwhile shares one flush: one transaction
/// per connection, the batch split over them by job.
///
/// It wakes on `wake_atom` (a local submission or a NOTIFY), on a freed
/// slot, and on a periodic sweep. When a worker goes down (connection lost,
/// or no heartbeat within the middleman's connection timeout), its running
/// jobs return to `pending` with an event that says why.
caf::actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg);

} // namespace orch::api
