#pragma once

#include "orch/metrics.hpp"
#include "orch/worker/mock_executor.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace orch::worker {

/// One place a scheduler may be reached.
struct scheduler_address {
  std::string host;
  uint16_t port = 4242;
};

/// A worker-node's metrics, served on its own METRICS_PORT. Updated by the
/// worker actor; read by the metrics server's thread.
struct worker_metrics {
  explicit worker_metrics(uint32_t slots);

  metrics::registry registry;
  /// Jobs running now, by executor.
  metrics::family<metrics::gauge>& running;
  /// Attempts that ended here, by executor and outcome (completed, failed,
  /// cancelled, released).
  metrics::family<metrics::counter>& jobs;
  /// Failed attempts by executor and reason: exec_failed (could not
  /// start), nonzero_exit (the run failed; a failing mock run counts here),
  /// timeout, killed (a signal the worker did not send).
  metrics::family<metrics::counter>& failures;
};

struct worker_config {
  /// Tried in turn: a worker that loses its scheduler moves on to the next.
  std::vector<scheduler_address> schedulers;
  std::string worker_id;
  std::string host;
  uint32_t slots = 1;
  mock_config mock;
  /// After `drain_atom`: how long running jobs may finish before they are
  /// cancelled and handed back.
  std::chrono::milliseconds drain_timeout{60000};
  /// Between SIGTERM and SIGKILL when a job's process group is stopped.
  std::chrono::milliseconds cancel_grace{10000};
  /// Executors offered to the scheduler.
  std::vector<std::string> executors{"mock"};
  /// Jobs run in work_root/<job id>/attempt-<n>.
  std::string work_root = "/tmp/orch-work";
  /// Work directories of jobs not running here are removed after this.
  std::chrono::milliseconds work_retention{72LL * 3600 * 1000};
  /// Where the worker counts its jobs (may be null).
  std::shared_ptr<worker_metrics> metrics;
};

/// Parses "host", "host:port" or a comma-separated list of them; entries
/// without a port use `default_port`.
std::vector<scheduler_address> parse_scheduler_addresses(
  const std::string& str, uint16_t default_port);

/// Spawns the worker actor. Its connection to the scheduler is a state
/// machine:
///
///            +----------------------------------------------+
///            v                                              |
///   +--------------+ connected +-------------+ accepted +---------+
///   | disconnected |---------->| registering |--------->| running |
///   +--------------+           +-------------+          +---------+
///       ^     |  failed/refused      |          scheduler down  |
///       |     +-- retry with backoff-+<-------------------------+
///
/// Jobs run on the mock executor (timers, no process) or as a process group
/// (command, snakemake, nextflow; see executors.hpp). A process's output is
/// sent as `job_log` batches and its progress as `job_progress_report`. A
/// cancel or timeout sends SIGTERM to the group, then SIGKILL after
/// `cancel_grace`; the outcome is reported once the group is gone.
///
/// In `disconnected` it calls the middleman's `connect` with exponential
/// backoff. In `registering` it sends `worker_hello` (with the jobs still in
/// flight from an earlier connection). In `running` it runs assigned jobs,
/// reports them, and sends heartbeats. Jobs keep running across a lost
/// connection; their results are queued and sent once registered again.
///
/// `drain_atom` (sent on SIGTERM) makes it take no new jobs, let running
/// ones finish within `drain_timeout`, cancel and hand back the rest, and
/// quit once the scheduler acknowledged every report.
caf::actor spawn_worker(caf::actor_system& sys, worker_config cfg);

} // namespace orch::worker
