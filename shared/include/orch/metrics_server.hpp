#pragma once

#include <caf/expected.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace orch::metrics {

/// A minimal HTTP/1.1 server for `GET /metrics`, on one thread of its own:
/// it accepts one connection at a time, reads the request head (at most
/// `max_head_bytes`, within `io_timeout`), answers `GET /metrics` with
/// `render()` and anything else with 404, and closes the connection. For
/// nodes that have no HTTP server of their own (the worker-node). Nothing
/// it does can block the caller or the actor system.
class metrics_server {
public:
  static constexpr size_t max_head_bytes = 8192;
  static constexpr std::chrono::milliseconds io_timeout{2000};

  explicit metrics_server(std::function<std::string()> render);
  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// Binds `host:port` (port 0 picks a free one), starts the thread and
  /// returns the bound port; `invalid_configuration` when it cannot bind.
  caf::expected<uint16_t> start(const std::string& host, uint16_t port);

  /// Stops the thread and closes the socket; idempotent.
  void stop();

private:
  void loop();
  void serve(int fd);

  std::function<std::string()> render_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace orch::metrics
