#pragma once

// The actor protocol between the api-node's scheduler and worker-nodes.
// Every node registers exactly these types (`register_message_types`), under
// names that carry the protocol version. A peer built with other types sees
// our messages as unknown and is refused, never crashed.
//
// Worker                                   Scheduler
//   | -- (register_atom, worker_hello) -----> |  monitor, persist worker
//   | <------------ (ok_atom, scheduler_id) - |  or an error: refused
//   | <------------------- job_assignment --- |  claimed in Postgres first
//   | -- job_started ----------------------> |  pending -> running
//   | -- job_log ---------------------------> |  (optional, any number)
//   | -- job_progress_report ---------------> |  (optional, any number)
//   | -- job_finished ----------------------> |  running -> completed|failed
//   | -- (heartbeat_atom, worker_id) -------> |  every few seconds; renews
//   |                                         |  the leases of its jobs
//   | <------------------------- job_cancel - |  a cancel was accepted
//   | -- (drain_atom, worker_id) -----------> |  SIGTERM: no new jobs
//   | -- (drain_done_atom) -----------------> |  reply: all reports seen
//
// After losing its scheduler a worker keeps its jobs running, reconnects (to
// the same or another api-node) and lists them in `worker_hello.inflight`;
// the scheduler adopts those whose attempt still owns the job in Postgres
// and cancels the others.
//
// Every report names the job's attempt. The scheduler applies it only while
// that attempt still owns the job in Postgres (fencing), so a report from a
// worker that was presumed dead never overwrites a newer attempt.

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace orch {

/// Bumped on every incompatible change of the types below.
inline constexpr uint32_t protocol_version = 2;

using register_atom = caf::atom_constant<caf::atom("register")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
using mock_done_atom = caf::atom_constant<caf::atom("mock_done")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using drain_done_atom = caf::atom_constant<caf::atom("drain_done")>;
using reap_atom = caf::atom_constant<caf::atom("reap")>;
using proc_exit_atom = caf::atom_constant<caf::atom("proc_exit")>;
using proc_line_atom = caf::atom_constant<caf::atom("proc_line")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;

/// A job a worker is running, as reported when it (re-)registers.
struct inflight_job {
  std::string job_id;
  int32_t attempt = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inflight_job& x) {
  return f(caf::meta::type_name("orch.v2.inflight_job"), x.job_id, x.attempt);
}

/// The first message of a worker to a scheduler.
struct worker_hello {
  uint32_t protocol = protocol_version;
  std::string worker_id;
  std::string host;
  uint32_t slots = 1;
  /// Executors this worker can run, e.g. "mock".
  std::vector<std::string> executors;
  /// Jobs still running on this worker from an earlier connection.
  std::vector<inflight_job> inflight;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_hello& x) {
  return f(caf::meta::type_name("orch.v2.worker_hello"), x.protocol,
           x.worker_id, x.host, x.slots, x.executors, x.inflight);
}

/// A claimed job, sent by the scheduler to one worker.
struct job_assignment {
  std::string job_id;
  /// The attempt this run is; reports must carry it.
  int32_t attempt = 0;
  std::string pipeline_name;
  std::string parameters_json;
  /// The worker stops the attempt after this long and reports
  /// "timeout after N s".
  int32_t timeout_seconds = 86400;
  /// "mock", "command", "snakemake" or "nextflow".
  std::string executor = "mock";
  /// The executor's settings from the api-node's catalog (a JSON object).
  std::string settings_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_assignment& x) {
  return f(caf::meta::type_name("orch.v2.job_assignment"), x.job_id,
           x.attempt, x.pipeline_name, x.parameters_json, x.timeout_seconds,
           x.executor, x.settings_json);
}

/// Stop an attempt: the scheduler accepted a cancel, or the attempt no
/// longer owns its job. The worker kills it and reports it `cancelled`.
struct job_cancel {
  std::string job_id;
  int32_t attempt = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_cancel& x) {
  return f(caf::meta::type_name("orch.v2.job_cancel"), x.job_id, x.attempt);
}

/// The worker started the job's executor.
struct job_started {
  std::string job_id;
  int32_t attempt = 0;
  std::string worker_id;
  /// Microseconds since the epoch, on the worker's clock.
  int64_t at = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_started& x) {
  return f(caf::meta::type_name("orch.v2.job_started"), x.job_id, x.attempt,
           x.worker_id, x.at);
}

/// Output lines of a running job.
struct job_log {
  std::string job_id;
  int32_t attempt = 0;
  /// "stdout" or "stderr".
  std::string stream;
  std::vector<std::string> lines;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_log& x) {
  return f(caf::meta::type_name("orch.v2.job_log"), x.job_id, x.attempt,
           x.stream, x.lines);
}

/// Steps done of a running attempt (the latest report wins).
struct job_progress_report {
  std::string job_id;
  int32_t attempt = 0;
  int64_t completed = 0;
  int64_t total = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        job_progress_report& x) {
  return f(caf::meta::type_name("orch.v2.job_progress"), x.job_id,
           x.attempt, x.completed, x.total);
}

/// The job's executor ended.
struct job_finished {
  std::string job_id;
  int32_t attempt = 0;
  std::string worker_id;
  /// A `job_outcome` value.
  uint8_t outcome = 0;
  /// Why it failed; empty when completed.
  std::string error;
  int64_t at = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_finished& x) {
  return f(caf::meta::type_name("orch.v2.job_finished"), x.job_id, x.attempt,
           x.worker_id, x.outcome, x.error, x.at);
}

/// Registers every message type and our error category with `cfg`. Every
/// node calls this, so that all nodes agree on the types.
void register_message_types(caf::actor_system_config& cfg);

/// Sets CAF's middleman heartbeats and connection timeout (off by default
/// in CAF 0.17), so that a hung peer is noticed. Every node calls this.
void enable_heartbeats(caf::actor_system_config& cfg);

/// Makes idle CAF scheduler threads block on their queue's condition
/// variable after a short spin, instead of CAF 0.17's default "moderate"
/// phase: 500 sleeps of 50 us each (about 20,000 wake-ups a second per
/// thread) after every message. At a few hundred jobs a second those
/// wake-ups were a quarter of the api-node's CPU. A message for a sleeping
/// thread wakes it through the condition variable, so no message waits
/// longer. Every node calls this.
void quiet_idle_threads(caf::actor_system_config& cfg);

} // namespace orch
