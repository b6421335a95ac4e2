#pragma once

#include <caf/actor.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace orch::api {

/// LISTENs with a connection of its own on `orch_jobs` (new jobs: wakes the
/// scheduler, so that a job submitted through any api-node reaches idle
/// workers of every node at once) and `orch_cancel` (a cancel accepted by any
/// api-node: the scheduler whose worker runs the job tells it to stop). Reconnects with
/// backoff. The scheduler's periodic sweep covers missed notifications.
class notifier {
public:
  notifier(std::string database_url, caf::actor scheduler);
  ~notifier();

  /// Starts the listening thread.
  void start();

  /// Stops and joins the listening thread (within about a second).
  void stop();

private:
  void run();

  std::string url_;
  caf::actor scheduler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace orch::api
