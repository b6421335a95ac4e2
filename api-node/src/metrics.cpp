#include "orch/api/metrics.hpp"

#include "orch/api/db_pool.hpp"
#include "orch/api/scheduler.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <spdlog/spdlog.h>

#include <map>

namespace orch::api {

namespace {

constexpr job_status all_statuses[] = {
  job_status::pending, job_status::running, job_status::completed,
  job_status::failed, job_status::cancelled};

double seconds_between(micros from, micros to) {
  return static_cast<double>(to - from) / 1e6;
}

} // namespace

api_metrics::api_metrics()
  : http_requests(registry_.add_counter(
    "http_requests_total",
    "HTTP requests answered, by route pattern (\"unmatched\" when no route "
    "matched), method and status code.",
    {"route", "method", "code"})),
    http_duration(registry_.add_histogram(
      "http_request_duration_seconds",
      "Time from routing a request to writing its response, by route "
      "pattern and method.",
      {"route", "method"}, metrics::latency_buckets())),
    submitted_(registry_.add_counter(
      "jobs_submitted_total",
      "Jobs created by POST /jobs on this api-node (idempotent replays are "
      "not counted).",
      {"pipeline"})),
    finished_(registry_.add_counter(
      "jobs_finished_total",
      "Jobs that reached a terminal status, counted by the api-node that "
      "committed the transition.",
      {"pipeline", "status"})),
    dispatch_(registry_.add_histogram(
      "job_dispatch_seconds",
      "Time from submission to the start of a job's first attempt "
      "(started_at - created_at), observed when the start is committed.",
      {"pipeline"}, metrics::duration_buckets())),
    duration_(registry_.add_histogram(
      "job_duration_seconds",
      "Time from the start of a job's last attempt to its terminal status "
      "(completed_at - started_at).",
      {"pipeline"}, metrics::duration_buckets())) {
  registry_.add_callback(
    "jobs_by_status",
    "Jobs by status and pipeline, over all api-nodes (from the job_counts "
    "counters; cached for about a second).",
    metrics::metric_type::gauge, {"status", "pipeline"}, [this] {
      std::lock_guard<std::mutex> guard{cache_mtx_};
      // Every status of every known pipeline, zeros included, so that a
      // series does not vanish when its count drops to zero.
      std::map<std::string, std::map<job_status, int64_t>> by_pipeline;
      for (auto& c : counts_)
        by_pipeline[c.pipeline_name][c.status] += c.n;
      std::vector<metrics::sample> out;
      for (auto& [pipeline, counts] : by_pipeline)
        for (auto s : all_statuses) {
          auto i = counts.find(s);
          out.push_back({{to_string(s), pipeline},
                         static_cast<double>(i == counts.end() ? 0
                                                               : i->second)});
        }
      return out;
    });
  auto cached = [this](int64_t api_metrics::*field) {
    return [this, field] {
      std::lock_guard<std::mutex> guard{cache_mtx_};
      return static_cast<double>(this->*field);
    };
  };
  registry_.gauge_fn("workers_connected",
                     "Workers connected to any api-node (as GET /workers "
                     "lists them; cached for about a second).",
                     cached(&api_metrics::workers_));
  registry_.gauge_fn("worker_slots_total",
                     "Slots of the connected workers.",
                     cached(&api_metrics::slots_));
  registry_.gauge_fn("worker_slots_busy",
                     "Running jobs on the connected workers.",
                     cached(&api_metrics::busy_));
  registry_.counter_fn("db_reconnects_total",
                       "PostgreSQL connections this api-node opened again "
                       "after losing one.",
                       [] { return static_cast<double>(job_store::reconnects()); });
}

std::string api_metrics::pipeline_label(const std::string& pipeline) {
  std::lock_guard<std::mutex> guard{labels_mtx_};
  if (pipelines_seen_.count(pipeline) > 0)
    return pipeline;
  if (pipelines_seen_.size() >= defaults::metrics_max_pipelines)
    return "_other";
  pipelines_seen_.insert(pipeline);
  return pipeline;
}

void api_metrics::job_submitted(const std::string& pipeline) {
  submitted_.with({pipeline_label(pipeline)}).inc();
}

void api_metrics::job_started(const transition_row& x) {
  // A retry's start measures its backoff and earlier runs, not the queue.
  if (x.attempt != 1 || !x.started_at)
    return;
  dispatch_.with({pipeline_label(x.pipeline_name)})
    .observe(seconds_between(x.created_at, *x.started_at));
}

void api_metrics::job_ended(const transition_row& x) {
  if (!is_terminal(x.status))
    return;
  auto pipeline = pipeline_label(x.pipeline_name);
  finished_.with({pipeline, to_string(x.status)}).inc();
  if (x.started_at && x.completed_at)
    duration_.with({pipeline})
      .observe(seconds_between(*x.started_at, *x.completed_at));
}

void api_metrics::refresh(job_store& store, std::chrono::milliseconds max_age) {
  // One reader at a time; a scrape that finds a read under way uses the
  // values it had.
  std::unique_lock<std::mutex> reading{refresh_mtx_, std::try_to_lock};
  if (!reading.owns_lock())
    return;
  auto now = std::chrono::steady_clock::now();
  if (ever_refreshed_ && now - refreshed_ < max_age)
    return;
  auto counts = store.count_jobs();
  auto workers = store.list_workers(
    std::chrono::duration_cast<std::chrono::milliseconds>(
      defaults::worker_stale_after));
  std::lock_guard<std::mutex> guard{cache_mtx_};
  // Tried once per interval, failed or not: a database outage must not
  // turn every scrape into a slow connection attempt.
  refreshed_ = now;
  ever_refreshed_ = true;
  if (counts)
    counts_ = std::move(*counts);
  else
    spdlog::debug("metrics: cannot read job counts: {}",
                  orch::render(counts.error()));
  if (workers) {
    workers_ = static_cast<int64_t>(workers->size());
    slots_ = 0;
    busy_ = 0;
    for (auto& w : *workers) {
      slots_ += w.slots;
      busy_ += w.running;
    }
  } else {
    spdlog::debug("metrics: cannot read workers: {}",
                  orch::render(workers.error()));
  }
}

void api_metrics::watch_pool(std::shared_ptr<const pool_usage> usage) {
  registry_.add_callback(
    "db_pool_connections",
    "PostgreSQL connections of the api-node's pool (readers and group-commit "
    "writers), busy running a task or idle.",
    metrics::metric_type::gauge, {"state"}, [usage] {
      auto size = usage->size.load();
      auto busy = std::min(usage->busy.load(), size);
      return std::vector<metrics::sample>{
        {{"busy"}, static_cast<double>(busy)},
        {{"idle"}, static_cast<double>(size - busy)}};
    });
}

void api_metrics::watch_probe(std::shared_ptr<const scheduler_probe> probe) {
  registry_.gauge_fn("sse_clients", "Open event streams (Server-Sent Events).",
                     [probe] {
                       return static_cast<double>(probe->sse_clients.load());
                     });
  registry_.gauge_fn("http_requests_in_flight",
                     "HTTP requests accepted and not yet answered.",
                     [probe] {
                       return static_cast<double>(
                         probe->requests_in_flight.load());
                     });
}

} // namespace orch::api
