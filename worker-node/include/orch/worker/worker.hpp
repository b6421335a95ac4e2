#pragma once

#include "orch/worker/mock_executor.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstdint>
#include <string>

namespace orch::worker {

struct worker_config {
  std::string scheduler_host = "127.0.0.1";
  uint16_t scheduler_port = 4242;
  std::string worker_id;
  std::string host;
  uint32_t slots = 1;
  mock_config mock;
};

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
/// In `disconnected` it calls the middleman's `connect` with exponential
/// backoff. In `registering` it sends `worker_hello` (with the jobs still in
/// flight from an earlier connection). In `running` it runs assigned jobs,
/// reports them, and sends heartbeats. Jobs keep running across a lost
/// connection; their results are queued and sent once registered again.
caf::actor spawn_worker(caf::actor_system& sys, worker_config cfg);

} // namespace orch::worker
