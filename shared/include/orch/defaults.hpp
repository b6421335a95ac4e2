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
/// Range of `max_attempts`, and the defaults of the retry fields.
inline constexpr int32_t max_max_attempts = 100;
inline constexpr double default_retry_backoff_seconds = 10;
inline constexpr double max_retry_backoff_seconds = 86400;
inline constexpr int32_t default_timeout_seconds = 86400;
inline constexpr int32_t max_timeout_seconds = 30 * 86400;
/// Longest retry delay, whatever the backoff grows to.
inline constexpr double max_retry_delay_seconds = 6 * 3600;
/// Longest Idempotency-Key header.
inline constexpr size_t max_idempotency_key = 255;
/// Longest request target (path and query) and most query parameters.
inline constexpr size_t max_url_length = 8192;
inline constexpr size_t max_query_params = 32;
/// Page size bounds of GET /jobs.
inline constexpr int32_t default_page_size = 100;
inline constexpr int32_t max_page_size = 1000;

// -- HTTP --------------------------------------------------------------------

inline constexpr uint16_t http_port = 8080;
/// A client must send a request's headers, then its body, within these.
inline constexpr auto http_header_timeout = 20s;
inline constexpr auto http_body_timeout = 30s;
/// Seconds a client is told to wait after a 503.
inline constexpr int retry_after_seconds = 2;

// -- Scheduler ---------------------------------------------------------------

inline constexpr uint16_t scheduler_port = 4242;
/// How long a dispatch claim on a pending job holds before another scheduler
/// may take the job (covers an api-node that died between claim and start).
inline constexpr auto claim_ttl = 10s;
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
/// A running job's lease: renewed by its worker's heartbeats (through the
/// scheduler's sweep); when it lapses, any api-node's reaper requeues it.
inline constexpr auto lease_ttl = 20s;
/// How often each api-node runs the reaper.
inline constexpr auto reaper_interval = 2s;
/// A worker counts as alive for lease renewal while heard within this.
inline constexpr auto worker_alive_window = 6s;
/// Extra requeues a job gets beyond max_attempts when its worker is lost
/// (noticed through monitoring), so that a crash-looping job still ends.
inline constexpr int32_t lost_worker_requeues = 2;
/// Most jobs claimed in one statement.
inline constexpr size_t max_claim_batch = 1000;

// -- Worker ------------------------------------------------------------------

/// Reconnect backoff of a worker that lost or never reached its scheduler.
inline constexpr auto reconnect_min = 100ms;
inline constexpr auto reconnect_max = 5s;
/// Seconds a worker-node finishes running jobs after SIGTERM before it
/// cancels and hands back the rest.
inline constexpr double drain_seconds = 60;
/// Seconds between SIGTERM and SIGKILL when an executor stops a job.
inline constexpr double cancel_grace_seconds = 10;
/// Mock executor defaults.
inline constexpr double mock_min_seconds = 10;
inline constexpr double mock_max_seconds = 30;
inline constexpr double mock_success_rate = 0.8;

// -- Executors, logs and outputs ---------------------------------------------

/// Per-job log cap: the last lines and bytes kept (older ones are dropped,
/// and GET /jobs/{id}/logs says how many).
inline constexpr size_t max_log_lines = 10000;
inline constexpr size_t max_log_bytes = 5 << 20;
/// A longer output line is cut there.
inline constexpr size_t max_log_line_bytes = 64 << 10;
/// Most lines `GET /jobs/{id}/logs?tail=` returns.
inline constexpr int64_t max_log_tail = 10000;
/// The worker sends buffered output lines at least this often.
inline constexpr auto log_flush_interval = 200ms;
/// ... or as soon as this many lines are buffered for one job.
inline constexpr size_t log_batch_lines = 256;
/// Where executors run jobs: WORK_ROOT/<job id>/attempt-<n>.
inline constexpr const char* work_root = "/tmp/orch-work";
/// How long finished work directories are kept.
inline constexpr double work_retention_hours = 72;
/// How often the worker looks for expired work directories.
inline constexpr auto work_sweep_interval = 10min;
/// Most files `GET /jobs/{id}/outputs` lists.
inline constexpr size_t max_output_files = 10000;

// -- Database ----------------------------------------------------------------

/// Connections of the api-node's HTTP query pool.
inline constexpr size_t db_pool_size = 4;
/// Most submissions committed in one group-commit transaction.
inline constexpr size_t max_submit_batch = 512;
/// Most `GET /jobs/{id}` lookups answered by one statement, and most
/// `GET /jobs` requests one list actor gathers before it runs their pages.
inline constexpr size_t max_read_batch = 512;
/// Actors (each with a connection) that run `GET /jobs` pages.
inline constexpr size_t list_actors = 2;
/// How long a draining api-node waits for requests in flight.
inline constexpr auto http_drain_timeout = 10s;
/// Backoff between attempts to reconnect to PostgreSQL.
inline constexpr auto db_reconnect_min = 100ms;
inline constexpr auto db_reconnect_max = 2s;

// -- Metrics -----------------------------------------------------------------

/// GET /metrics reads jobs by status and the workers from the database at
/// most this often; scrapes in between get the cached values.
inline constexpr auto metrics_cache_ttl = 1s;
/// Distinct pipeline label values; further pipelines count as "_other"
/// (without a catalog any name is a pipeline).
inline constexpr size_t metrics_max_pipelines = 200;
/// Port of a worker-node's own GET /metrics (METRICS_PORT).
inline constexpr uint16_t metrics_port = 9090;

} // namespace orch::defaults
