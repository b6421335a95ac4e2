#pragma once

#include "orch/api/db_pool.hpp"
#include "orch/api/scheduler.hpp"
#include "orch/api/sse_hub.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace orch::api {

class api_metrics;

struct http_config {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  size_t threads = 2;
  std::string version;
  std::string image_tag = "unknown";
  std::string echo_message = "Hello World";
  /// Swagger UI for GET /docs (DOCS_DIR); empty: the default places.
  std::string docs_dir;
};

/// What the HTTP handlers reach: the pool for database work, the scheduler
/// to wake after a commit, and the scheduler's health.
struct http_context {
  http_config cfg;
  /// For the reads that reactor threads run themselves, one connection per
  /// reactor thread.
  std::string database_url;
  db_pool* pool = nullptr;
  caf::actor scheduler;
  std::shared_ptr<scheduler_probe> probe;
  /// The pipeline catalog (empty: every name runs on mock).
  std::shared_ptr<const catalog> pipelines;
  /// Where job work directories live: outputs are served from here.
  std::string work_root;
  /// Serves the event streams (null: GET /events answers 503).
  sse_hub* events = nullptr;
  /// GET /metrics and the counters the handlers update (may be null).
  std::shared_ptr<api_metrics> metrics;
};

/// The REST API on Pistache. Handlers parse and validate. Submissions go to
/// the pool's group-commit writers, whose actor sends the response; cancels
/// and slow reads go to its readers. The hot single-statement reads
/// (GET /jobs/{id}, GET /jobs) run on the reactor thread itself over that
/// thread's own connection: a hop to another thread and back cost more than
/// the query (see docs/adr/0002-reads-on-reactor-threads.md). Errors become
/// problem+json in one place (`problem.hpp`).
class http_server {
public:
  explicit http_server(http_context ctx);
  ~http_server();

  /// Binds and starts serving in background threads. Returns the bound
  /// port (the chosen one when the configured port is 0).
  caf::expected<uint16_t> start();

  /// Stops accepting and closes connections.
  void stop();

  /// Every route as "METHOD /path", path parameters written "{}" (for
  /// the check that the OpenAPI document describes exactly these).
  static std::vector<std::string> routes();

  /// The routes and handlers; defined in http_server.cpp.
  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace orch::api
