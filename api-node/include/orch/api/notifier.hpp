#pragma once

#include <caf/actor.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace orch::api {

/// LISTENs on the `orch_jobs` channel with a connection of its own and wakes
/// the scheduler on every notification, so that a job submitted through any
/// api-node reaches idle workers of every node at once. Reconnects with
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
