#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

/// Every limit, timeout and default of orch, named and in one place.
namespace orch::defaults {

using namespace std::chrono_literals;

// -- REST input limits --------------------------------------------------------

/// Longest accepted request body.
inline constexpr size_t max_body_bytes = 1 << 20;
/// Room for the request line and headers on top of the body.
inline constexpr size_t max_header_bytes = 64 << 10;
/// Length bounds and charset of `pipeline_name`: [A-Za-z0-9_.-].
inline constexpr size_t max_pipeline_name = 128;
/// Longest serialized `parameters` object.
inline constexpr size_t max_parameters_bytes = 64 << 10;
/// Deepest nesting of `parameters`.
inline constexpr size_t max_parameters_depth = 32;
/// Longest `description`, in characters.
inline constexpr size_t max_description = 4096;
/// Range of `priority`.
inline constexpr int32_t min_priority = -1000;
inline constexpr int32_t max_priority = 1000;
/// Page size bounds of GET /jobs.
inline constexpr int32_t default_page_size = 100;
inline constexpr int32_t max_page_size = 1000;

// -- HTTP --------------------------------------------------------------------

inline constexpr uint16_t http_port = 8080;
/// A client must send a request's headers, then its body, within these.
inline constexpr auto http_header_timeout = 10s;
inline constexpr auto http_body_timeout = 30s;
/// Seconds a client is told to wait after a 503.
inline constexpr int retry_after_seconds = 2;

// -- Scheduler ---------------------------------------------------------------

inline constexpr uint16_t scheduler_port = 4242;
/// How long a dispatch claim on a pending job holds before another scheduler
/// may take the job (covers an api-node that died between claim and start).
inline constexpr auto claim_ttl = 30s;
/// Period of the scheduler's sweep: claims work that no notification
/// announced, and persists workers' liveness.
inline constexpr auto sweep_interval = 1s;
/// A worker whose last_seen is older than this is not listed as connected.
inline constexpr auto worker_stale_after = 15s;
/// CAF middleman heartbeats, on every node: a hung peer is dropped after
/// `connection_timeout` without traffic.
inline constexpr auto heartbeat_interval = 1s;
inline constexpr auto connection_timeout = 5s;
/// How often a worker tells the scheduler that it is alive.
inline constexpr auto worker_heartbeat = 2s;
/// Most jobs claimed in one statement.
inline constexpr size_t max_claim_batch = 1000;

// -- Worker ------------------------------------------------------------------

/// Reconnect backoff of a worker that lost or never reached its scheduler.
inline constexpr auto reconnect_min = 100ms;
inline constexpr auto reconnect_max = 5s;
/// Mock executor defaults.
inline constexpr double mock_min_seconds = 10;
inline constexpr double mock_max_seconds = 30;
inline constexpr double mock_success_rate = 0.8;

// -- Database ----------------------------------------------------------------

/// Connections of the api-node's HTTP query pool.
inline constexpr size_t db_pool_size = 4;
/// Most submissions committed in one group-commit transaction.
inline constexpr size_t max_submit_batch = 512;
/// Backoff between attempts to reconnect to PostgreSQL.
inline constexpr auto db_reconnect_min = 100ms;
inline constexpr auto db_reconnect_max = 2s;

} // namespace orch::defaults
