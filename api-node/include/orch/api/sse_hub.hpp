#pragma once

#include "orch/api/job_store.hpp"

#include <caf/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace orch::api {

/// Server-Sent Events of job events (GET /jobs/{id}/events, GET /events).
///
/// ## Why a hub (docs/adr/0003-sse-socket-handoff.md)
/// Pistache 0.0.5 aborts when a ResponseStream is written from any thread
/// but its reactor's, and a stream written inside the handler holds a
/// reactor thread for its whole life. So the HTTP handler only validates
/// the request; then it hands the connection over: it duplicates the
/// socket descriptor and passes the copy to the hub, and never answers
/// through Pistache. The hub's single thread owns every stream: it writes
/// the response head and the events with non-blocking sends, watches the
/// sockets with epoll, and reads the events from PostgreSQL. Pistache keeps
/// its own descriptor of the socket and closes it when the peer goes (or
/// when the hub shuts the socket down).
///
/// ## Where events come from
/// Every api-node's hub reads the event stream of migration 0006 (status
/// changes, log lines, progress, completion markers; one id sequence) from
/// the database, so a client sees the jobs of every api-node and scheduler.
/// One query per poll interval serves all clients, whatever their number.
///
/// ## The read position, and why there is no gap
/// Ids are allocated when rows are inserted, and a transaction may commit
/// after another that drew a higher id. The hub's `cursor` therefore moves
/// only over contiguous ids: when the next id is missing, the hub waits for
/// it up to `hole_timeout` (a rolled-back transaction, or a log line the
/// cap dropped at once, leaves a hole that never fills) before it skips
/// it. Everything at or below the cursor is final.
///
/// ## A client's life
///
///   attach --> replay --(caught up with cursor)--> live --> closed
///                 |                                  |
///                 +--- complete (job streams) -------+--> flush, close
///
/// - replay: pages of events with `after < id <= cursor` read for this
///   client alone (from Last-Event-ID, or from the start of a job's
///   history), fetched while its buffer is nearly empty, each page at most
///   half the client buffer; a client that resumes ahead of the cursor
///   (e.g. it comes from an api-node whose hub was further) waits in replay
///   until the cursor passes its id, so nothing is sent twice;
/// - live: the events the hub reads past its cursor, formatted once per
///   group of clients with the same subscription and shared by them;
/// - a job stream closes after its `complete` event; a job that had
///   completed before Last-Event-ID is answered 204 by the handler;
/// - a client whose unsent data exceeds `client_buffer_bytes` is
///   disconnected (it resumes with Last-Event-ID); the hub never waits for a
///   client, and nothing else waits for the hub.
///
/// ## Wire format
///   id: <event id>
///   event: status | progress | log | complete
///   data: {"job_id", "at", "type", "pipeline_name", <payload fields>}
/// Payload: status {status, from_status, attempt, worker_id, message};
/// progress {completed, total, percent, attempt}; log {stream, line,
/// attempt}; complete {status, attempt, error_message}. A comment line
/// (": heartbeat") goes out every `heartbeat` so that proxies keep idle
/// streams open.
struct sse_config {
  std::chrono::milliseconds poll_interval{100};
  /// Poll interval while no client is connected (ids only).
  std::chrono::milliseconds idle_poll_interval{250};
  std::chrono::milliseconds hole_timeout{1000};
  std::chrono::milliseconds heartbeat{15000};
  size_t client_buffer_bytes = 1 << 20;
  size_t max_clients = 4096;
  /// How far back (in ids) a firehose client may resume.
  int64_t max_firehose_replay = 100000;
  /// Rows per query.
  size_t page = 1000;
};

/// Event types, as a bit set.
enum sse_type : uint8_t {
  sse_status = 1,
  sse_progress = 2,
  sse_log = 4,
  sse_complete = 8,
  sse_all = 15,
};

/// The bit of `sse_type` for an event of type `k`.
uint8_t sse_type_bit(stream_event::kind k);

/// What one client asked for.
struct sse_subscription {
  /// One job's events; the firehose when empty.
  std::optional<std::string> job_id;
  /// Firehose filters: statuses (empty: all) and pipeline.
  std::vector<std::string> statuses;
  std::optional<std::string> pipeline_name;
  uint8_t types = sse_all;
  /// Resume after this event id.
  std::optional<int64_t> last_event_id;
};

class sse_hub {
public:
  sse_hub(sse_config cfg, std::string database_url);
  ~sse_hub();

  sse_hub(const sse_hub&) = delete;
  sse_hub& operator=(const sse_hub&) = delete;

  /// Reads the current end of the event stream and starts the hub's
  /// thread.
  caf::error start();

  /// Closes every stream (clients reconnect, e.g. to another api-node) and
  /// stops the thread.
  void stop();

  /// Takes over a connection whose request was validated: `fd` is the
  /// hub's own descriptor of the socket, which it closes when done.
  /// Answers `service_unavailable` (and closes nothing) when the hub is
  /// full or stopped.
  caf::error attach(int fd, sse_subscription sub);

  /// Streams open now.
  int64_t clients() const;

  /// Keeps the number of open streams in `counter` (e.g. the one GET
  /// /metrics shows as `sse_clients`). Call before `start`.
  void count_clients_in(std::atomic<int64_t>& counter);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace orch::api
