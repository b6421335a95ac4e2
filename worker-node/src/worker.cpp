#include "orch/worker/worker.hpp"

#include "orch/worker/executors.hpp"
#include "orch/worker/process.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/job.hpp"
#include "orch/messages.hpp"
#include "orch/time.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <deque>
#include <filesystem>
#include <optional>
#include <map>

namespace orch::worker {

std::vector<scheduler_address> parse_scheduler_addresses(
  const std::string& str, uint16_t default_port) {
  std::vector<scheduler_address> result;
  size_t pos = 0;
  while (pos <= str.size()) {
    auto end = str.find(',', pos);
    if (end == std::string::npos)
      end = str.size();
    auto item = str.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ')
      item.erase(0, 1);
    while (!item.empty() && item.back() == ' ')
      item.pop_back();
    if (!item.empty()) {
      scheduler_address addr{item, default_port};
      if (auto colon = item.rfind(':'); colon != std::string::npos
                                        && item.find(':') == colon) {
        auto port = std::atoi(item.substr(colon + 1).c_str());
        if (port > 0 && port < 65536) {
          addr.host = item.substr(0, colon);
          addr.port = static_cast<uint16_t>(port);
        }
      }
      result.push_back(std::move(addr));
    }
    pos = end + 1;
  }
  return result;
}

worker_metrics::worker_metrics(uint32_t slots)
  : running(registry.add_gauge("worker_jobs_running",
                               "Jobs running on this worker, by executor.",
                               {"executor"})),
    jobs(registry.add_counter(
      "worker_jobs_total",
      "Attempts that ended on this worker, by executor and outcome "
      "(completed, failed, cancelled, released).",
      {"executor", "outcome"})),
    failures(registry.add_counter(
      "worker_executor_failures_total",
      "Failed attempts by executor and reason: exec_failed, nonzero_exit, "
      "timeout, killed.",
      {"executor", "reason"})) {
  registry.add_gauge("worker_slots", "Jobs this worker runs at once.")
    .get()
    .set(slots);
}

namespace {

enum class link_state { disconnected, registering, running };

// Why a process run failed, as worker_executor_failures_total names it.
const char* failure_reason(const process_result& x) {
  if (x.exec_failed)
    return "exec_failed";
  if (x.signal != 0)
    return "killed";
  return "nonzero_exit";
}

using drain_timeout_atom = caf::atom_constant<caf::atom("drain_to")>;

using flush_logs_atom = caf::atom_constant<caf::atom("flush_logs")>;
using mock_step_atom = caf::atom_constant<caf::atom("mock_step")>;

/// The steps a mock run narrates (log lines and progress), for runs of at
/// least `mock_narrate_min`; shorter ones (benchmarks) stay silent.
constexpr const char* mock_steps[] = {"quality control", "alignment",
                                      "variant calling", "report"};
constexpr int32_t mock_step_count = 4;
constexpr std::chrono::milliseconds mock_narrate_min{200};

/// One attempt running here.
struct run {
  int32_t attempt = 0;
  /// Identifies this run's timer and process messages; stale ones are
  /// ignored.
  uint64_t token = 0;
  int32_t timeout_seconds = 0;
  /// The process group of a real executor; null for the mock.
  std::unique_ptr<process> proc;
  /// Set once we stop the process: what to report when its group is gone.
  std::optional<job_outcome> stop_outcome;
  std::string stop_error;
  /// Output lines not yet sent, by stream.
  std::map<std::string, std::vector<std::string>> logs;
  size_t buffered = 0;
  /// A mock run that writes log lines and progress.
  bool narrated = false;
  /// The executor that runs it (a metrics label).
  std::string executor;
};

struct worker_state {
  static inline const char* name = "worker";

  caf::event_based_actor* self = nullptr;
  worker_config cfg;
  std::unique_ptr<mock_executor> mock;
  link_state link = link_state::disconnected;
  caf::actor scheduler;
  /// Index into cfg.schedulers of the one we talk to (or try next).
  size_t target = 0;
  std::chrono::milliseconds backoff = defaults::reconnect_min;
  std::map<std::string, run> running;
  uint64_t next_token = 0;
  /// Results not yet delivered to a scheduler.
  std::deque<job_finished> outbox;
  /// Increments on every connection attempt; stale replies are ignored.
  uint64_t generation = 0;
  bool draining = false;
  bool finishing = false;
  bool log_flush_scheduled = false;

  // An attempt started here (metrics).
  void count_start(run& r, const std::string& executor) {
    r.executor = executor;
    if (cfg.metrics)
      cfg.metrics->running.with({executor}).inc();
  }

  // An attempt that count_start counted ended (metrics); `reason` names a
  // failure.
  void count_end(const std::string& executor, job_outcome outcome,
                 const char* reason = nullptr) {
    if (!cfg.metrics)
      return;
    cfg.metrics->running.with({executor}).dec();
    cfg.metrics->jobs.with({executor, to_string(outcome)}).inc();
    if (outcome == job_outcome::failed && reason != nullptr)
      cfg.metrics->failures.with({executor, reason}).inc();
  }

  const scheduler_address& address() const {
    return cfg.schedulers[target % cfg.schedulers.size()];
  }

  void connect() {
    if (link != link_state::disconnected || finishing)
      return;
    auto gen = ++generation;
    link = link_state::registering;
    auto mm = self->system().middleman().actor_handle();
    auto addr = address();
    self
      ->request(mm, std::chrono::seconds{10}, caf::connect_atom::value,
                addr.host, addr.port)
      .then(
        [this, gen](const caf::node_id&, caf::strong_actor_ptr& ptr,
                    const std::set<std::string>&) {
          if (gen != generation)
            return;
          if (!ptr) {
            retry("no actor published at the scheduler port");
            return;
          }
          hello(caf::actor_cast<caf::actor>(std::move(ptr)), gen);
        },
        [this, gen](caf::error& err) {
          if (gen == generation)
            retry(self->system().render(err));
        });
  }

  void hello(caf::actor sched, uint64_t gen) {
    worker_hello msg;
    msg.worker_id = cfg.worker_id;
    msg.host = cfg.host;
    msg.slots = cfg.slots;
    msg.executors = cfg.executors;
    for (auto& [id, r] : running)
      msg.inflight.push_back({id, r.attempt});
    self->request(sched, std::chrono::seconds{10}, register_atom::value,
                  std::move(msg))
      .then(
        [this, sched, gen](const std::string& scheduler_id) {
          if (gen != generation)
            return;
          scheduler = sched;
          self->monitor(scheduler);
          link = link_state::running;
          backoff = defaults::reconnect_min;
          spdlog::info("registered with scheduler {} at {}:{} as {} ({} "
                       "slots, {} jobs in flight)",
                       scheduler_id, address().host, address().port,
                       cfg.worker_id, cfg.slots, running.size());
          while (!outbox.empty()) {
            self->send(scheduler, std::move(outbox.front()));
            outbox.pop_front();
          }
          if (draining) {
            self->send(scheduler, drain_atom::value, cfg.worker_id);
            maybe_finish_drain();
          }
        },
        [this, gen](caf::error& err) {
          if (gen != generation)
            return;
          if (code_of(err) == ec::protocol_mismatch
              || code_of(err) == ec::duplicate_worker)
            spdlog::error("the scheduler refused this worker: {}",
                          render(err));
          retry(render(err));
        });
  }

  void retry(const std::string& why) {
    link = link_state::disconnected;
    scheduler = nullptr;
    spdlog::warn("scheduler {}:{} unavailable ({}); retrying in {} ms",
                 address().host, address().port, why, backoff.count());
    ++target; // try the next address, if there are several
    if (draining && running.empty()) {
      finish();
      return;
    }
    self->delayed_send(self, backoff, reconnect_atom::value);
    backoff = std::min(backoff * 2,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                         defaults::reconnect_max));
  }

  void on_assignment(job_assignment& job) {
    if (draining) {
      spdlog::info("job {}: draining, handing back attempt {}", job.job_id,
                   job.attempt);
      report_finished(job.job_id, job.attempt, job_outcome::released,
                      "worker draining");
      return;
    }
    if (running.count(job.job_id) > 0) {
      spdlog::warn("job {}: already running here; duplicate assignment of "
                   "attempt {} ignored",
                   job.job_id, job.attempt);
      return;
    }
    if (!job.executor.empty() && job.executor != "mock") {
      start_process(job);
      return;
    }
    auto plan = mock->plan(job.parameters_json);
    auto token = ++next_token;
    auto& r = running[job.job_id];
    r.attempt = job.attempt;
    r.token = token;
    count_start(r, "mock");
    auto limit = std::chrono::milliseconds{
      static_cast<int64_t>(job.timeout_seconds) * 1000};
    spdlog::info("job {}: attempt {} started, pipeline {} on mock ({} ms)",
                 job.job_id, job.attempt, job.pipeline_name,
                 plan.duration.count());
    report(job_started{job.job_id, job.attempt, cfg.worker_id, now_micros()});
    if (plan.duration > limit) {
      self->delayed_send(self, limit, mock_done_atom::value, job.job_id,
                         token, false,
                         "timeout after " + std::to_string(job.timeout_seconds)
                           + " s");
    } else {
      self->delayed_send(self, plan.duration, mock_done_atom::value,
                         job.job_id, token, plan.ok, plan.error);
    }
    if (plan.duration >= mock_narrate_min) {
      r.narrated = true;
      std::string stream = "stdout";
      std::string line = "[mock] pipeline " + job.pipeline_name + ": "
                         + std::to_string(mock_step_count) + " steps over "
                         + std::to_string(plan.duration.count()) + " ms";
      on_proc_line(job.job_id, token, stream, line);
      job_progress_report p{job.job_id, job.attempt, 0, mock_step_count};
      on_proc_progress(p);
      for (int32_t k = 1; k < mock_step_count; ++k)
        self->delayed_send(self, plan.duration * k / mock_step_count,
                           mock_step_atom::value, job.job_id, token, k);
    }
  }

  // A narrated mock run reached step `k` (of mock_step_count).
  void on_mock_step(const std::string& job_id, uint64_t token, int32_t k) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token)
      return;
    std::string stream = "stdout";
    std::string line = "[mock] step " + std::to_string(k) + "/"
                       + std::to_string(mock_step_count) + " done: "
                       + mock_steps[k - 1] + "; starting "
                       + mock_steps[k];
    on_proc_line(job_id, token, stream, line);
    job_progress_report p{job_id, i->second.attempt, k, mock_step_count};
    on_proc_progress(p);
  }

  void on_done(const std::string& job_id, uint64_t token, bool ok,
               const std::string& error) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token)
      return;
    auto attempt = i->second.attempt;
    if (i->second.narrated) {
      // A narrated run: its last words.
      std::string out = ok ? "stdout" : "stderr";
      std::string line = ok ? std::string{"[mock] step 4/4 done: report"}
                            : "[mock] " + error;
      i->second.logs[out].push_back(std::move(line));
      flush_logs(job_id, i->second);
      if (ok && link == link_state::running)
        self->send(scheduler, job_progress_report{job_id, attempt,
                                                  mock_step_count,
                                                  mock_step_count});
    }
    running.erase(i);
    // A failing mock run stands for a pipeline that exits non-zero.
    count_end("mock", ok ? job_outcome::completed : job_outcome::failed,
              error.rfind("timeout after", 0) == 0 ? "timeout"
                                                   : "nonzero_exit");
    if (ok)
      spdlog::info("job {}: attempt {} completed", job_id, attempt);
    else
      spdlog::info("job {}: attempt {} failed: {}", job_id, attempt, error);
    report_finished(job_id, attempt,
                    ok ? job_outcome::completed : job_outcome::failed, error);
    maybe_finish_drain();
  }

  // Runs a job as a process group: command, snakemake or nextflow.
  void start_process(job_assignment& job) {
    auto token = ++next_token;
    auto& r = running[job.job_id];
    r.attempt = job.attempt;
    r.token = token;
    r.timeout_seconds = job.timeout_seconds;
    count_start(r, job.executor);
    report(job_started{job.job_id, job.attempt, cfg.worker_id, now_micros()});
    auto fail_now = [&](const std::string& why) {
      spdlog::warn("job {}: attempt {} cannot start: {}", job.job_id,
                   job.attempt, why);
      running.erase(job.job_id);
      count_end(job.executor, job_outcome::failed, "exec_failed");
      report_finished(job.job_id, job.attempt, job_outcome::failed, why);
      maybe_finish_drain();
    };
    if (std::find(cfg.executors.begin(), cfg.executors.end(), job.executor)
        == cfg.executors.end()) {
      fail_now("worker " + cfg.worker_id + " cannot run executor "
               + job.executor);
      return;
    }
    executor_job ej;
    ej.job_id = job.job_id;
    ej.attempt = job.attempt;
    ej.pipeline_name = job.pipeline_name;
    ej.executor = job.executor;
    try {
      ej.settings = nlohmann::json::parse(job.settings_json);
      ej.parameters = nlohmann::json::parse(job.parameters_json);
    } catch (const nlohmann::json::exception& e) {
      fail_now(std::string{"malformed assignment: "} + e.what());
      return;
    }
    ej.workdir = std::filesystem::path{cfg.work_root} / job.job_id
                 / ("attempt-" + std::to_string(job.attempt));
    auto plan = plan_launch(ej);
    if (!plan) {
      fail_now("cannot start " + job.executor + ": " + detail_of(plan.error()));
      return;
    }
    auto handle = caf::actor_cast<caf::actor>(self);
    // Deep enough that an error block printed by one rule survives the
    // output of the rules still running beside it.
    auto tail = std::make_shared<tail_buffer>(1000);
    auto job_id = job.job_id;
    auto attempt = job.attempt;
    auto executor = job.executor;
    // Both callbacks run on the process's reader thread; they only post
    // messages to this actor.
    auto proc = process::start(
      plan->spec,
      [handle, job_id, attempt, token, tail, executor,
       last = std::optional<progress_report>{}](const char* stream,
                                                std::string line) mutable {
        if (auto p = parse_progress(executor, line);
            p && (!last || last->completed != p->completed
                  || last->total != p->total)) {
          last = p;
          caf::anon_send(handle, job_progress_report{job_id, attempt,
                                                     p->completed, p->total});
        }
        tail->add(stream, line);
        caf::anon_send(handle, proc_line_atom::value, job_id, token,
                       std::string{stream}, std::move(line));
      },
      [handle, job_id, attempt, token, tail, ej](process_result result) {
        auto sum = summarize(ej, result, *tail);
        for (auto& [stream, line] : sum.extra_logs)
          caf::anon_send(handle, proc_line_atom::value, job_id, token, stream,
                         line);
        if (sum.final_progress)
          caf::anon_send(handle,
                         job_progress_report{job_id, attempt,
                                             sum.final_progress->completed,
                                             sum.final_progress->total});
        caf::anon_send(handle, proc_exit_atom::value, job_id, token, sum.ok,
                       sum.error, std::string{failure_reason(result)});
      });
    if (!proc) {
      fail_now("cannot start " + job.executor + ": "
               + detail_of(proc.error()));
      return;
    }
    spdlog::info("job {}: attempt {} started, pipeline {} on {} (pid {}, in "
                 "{})",
                 job.job_id, job.attempt, job.pipeline_name, job.executor,
                 (*proc)->pid(), ej.workdir.string());
    running[job.job_id].proc = std::move(*proc);
    self->delayed_send(self,
                       std::chrono::seconds{std::max(job.timeout_seconds, 1)},
                       kill_atom::value, job.job_id, token, int32_t{0});
  }

  // Stops a process group: SIGTERM now, SIGKILL after the grace period.
  // The outcome is reported when the group is gone (on_proc_exit).
  void stop_process(const std::string& job_id, run& r, job_outcome outcome,
                    std::string error) {
    if (r.stop_outcome)
      return;
    r.stop_outcome = outcome;
    r.stop_error = std::move(error);
    r.proc->signal_group(SIGTERM);
    self->delayed_send(self, cfg.cancel_grace, kill_atom::value, job_id,
                       r.token, int32_t{1});
  }

  // phase 0: the attempt's timeout; phase 1: the grace period ended.
  void on_kill(const std::string& job_id, uint64_t token, int32_t phase) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token || !i->second.proc)
      return;
    auto& r = i->second;
    if (phase == 0) {
      spdlog::info("job {}: attempt {} timed out after {} s; stopping it",
                   job_id, r.attempt, r.timeout_seconds);
      stop_process(job_id, r, job_outcome::failed,
                   "timeout after " + std::to_string(r.timeout_seconds)
                     + " s");
    } else {
      spdlog::warn("job {}: still running {} ms after SIGTERM; SIGKILL",
                   job_id, cfg.cancel_grace.count());
      r.proc->signal_group(SIGKILL);
    }
  }

  void on_proc_line(const std::string& job_id, uint64_t token,
                    std::string& stream, std::string& line) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token)
      return;
    auto& r = i->second;
    r.logs[stream].push_back(std::move(line));
    if (++r.buffered >= defaults::log_batch_lines)
      flush_logs(job_id, r);
    else if (!log_flush_scheduled) {
      log_flush_scheduled = true;
      self->delayed_send(self, defaults::log_flush_interval,
                         flush_logs_atom::value);
    }
  }

  void on_proc_progress(job_progress_report& p) {
    auto i = running.find(p.job_id);
    if (i == running.end() || i->second.attempt != p.attempt)
      return;
    // Lines before the progress line go first.
    flush_logs(p.job_id, i->second);
    if (link == link_state::running)
      self->send(scheduler, std::move(p));
  }

  void flush_logs(const std::string& job_id, run& r) {
    for (auto& [stream, lines] : r.logs)
      if (!lines.empty() && link == link_state::running)
        self->send(scheduler,
                   job_log{job_id, r.attempt, stream, std::move(lines)});
    // Disconnected: lines are dropped (the result itself is kept).
    r.logs.clear();
    r.buffered = 0;
  }

  void flush_all_logs() {
    log_flush_scheduled = false;
    for (auto& [job_id, r] : running)
      if (r.buffered > 0)
        flush_logs(job_id, r);
  }

  void on_proc_exit(const std::string& job_id, uint64_t token, bool ok,
                    const std::string& error, const std::string& reason) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token)
      return;
    auto& r = i->second;
    flush_logs(job_id, r);
    auto outcome = r.stop_outcome ? *r.stop_outcome
                                  : (ok ? job_outcome::completed
                                        : job_outcome::failed);
    auto why = r.stop_outcome ? r.stop_error : error;
    auto attempt = r.attempt;
    // A failure the worker caused itself is a timeout (its only reason to
    // stop a run as failed); otherwise the process decided.
    count_end(r.executor, outcome,
              r.stop_outcome ? "timeout" : reason.c_str());
    running.erase(i);
    spdlog::info("job {}: attempt {} {}{}{}", job_id, attempt,
                 outcome == job_outcome::completed   ? "completed"
                 : outcome == job_outcome::cancelled ? "cancelled"
                 : outcome == job_outcome::released  ? "handed back"
                                                     : "failed",
                 why.empty() ? "" : ": ", why);
    report_finished(job_id, attempt, outcome,
                    outcome == job_outcome::completed ? std::string{} : why);
    maybe_finish_drain();
  }

  // Removes work directories of jobs not running here that are older than
  // the retention period.
  void sweep_work_dirs() {
    namespace fs = std::filesystem;
    std::error_code err;
    auto cutoff = fs::file_time_type::clock::now() - cfg.work_retention;
    size_t removed = 0;
    for (fs::directory_iterator it{cfg.work_root, err}, end; !err && it != end;
         it.increment(err)) {
      auto name = it->path().filename().string();
      if (running.count(name) > 0 || !it->is_directory(err))
        continue;
      auto mtime = fs::last_write_time(it->path(), err);
      if (err || mtime > cutoff)
        continue;
      fs::remove_all(it->path(), err);
      if (!err)
        ++removed;
    }
    if (removed > 0)
      spdlog::info("removed {} work directories older than {} h", removed,
                   cfg.work_retention.count() / 3600000.0);
  }

  void on_cancel(const job_cancel& x) {
    auto i = running.find(x.job_id);
    if (i == running.end() || i->second.attempt != x.attempt)
      return;
    if (i->second.proc) {
      spdlog::info("job {}: attempt {} cancel: SIGTERM to process group {}",
                   x.job_id, x.attempt, i->second.proc->pid());
      stop_process(x.job_id, i->second, job_outcome::cancelled, "cancelled");
      return;
    }
    count_end(i->second.executor, job_outcome::cancelled);
    running.erase(i);
    // The mock runs no process; a real executor stops its process group
    // here (SIGTERM, then SIGKILL after the grace period).
    spdlog::info("job {}: attempt {} cancelled", x.job_id, x.attempt);
    report_finished(x.job_id, x.attempt, job_outcome::cancelled, "cancelled");
    maybe_finish_drain();
  }

  void report_finished(const std::string& job_id, int32_t attempt,
                       job_outcome outcome, std::string error) {
    job_finished msg{job_id, attempt, cfg.worker_id,
                     static_cast<uint8_t>(outcome), std::move(error),
                     now_micros()};
    if (link == link_state::running)
      self->send(scheduler, std::move(msg));
    else
      outbox.push_back(std::move(msg));
  }

  // Sends a start report now, or drops it when disconnected: the
  // re-registration lists the job as in flight instead.
  void report(job_started msg) {
    if (link == link_state::running)
      self->send(scheduler, std::move(msg));
  }

  void on_scheduler_down(const caf::down_msg& dm) {
    if (dm.source != scheduler.address())
      return;
    spdlog::warn("lost the scheduler ({}); {} jobs keep running",
                 render(dm.reason), running.size());
    ++generation;
    ++target;
    link = link_state::disconnected;
    scheduler = nullptr;
    backoff = defaults::reconnect_min;
    if (draining && running.empty()) {
      finish();
      return;
    }
    connect();
  }

  void drain() {
    if (draining)
      return;
    draining = true;
    spdlog::info("draining: {} jobs running, {} ms to finish them",
                 running.size(), cfg.drain_timeout.count());
    if (link == link_state::running)
      self->send(scheduler, drain_atom::value, cfg.worker_id);
    self->delayed_send(self, cfg.drain_timeout, drain_timeout_atom::value);
    maybe_finish_drain();
  }

  void on_drain_timeout() {
    if (running.empty())
      return;
    spdlog::warn("drain timeout: cancelling and handing back {} jobs",
                 running.size());
    auto left = std::move(running);
    running.clear();
    for (auto& [job_id, r] : left) {
      // Destroying the process SIGKILLs its group.
      r.proc.reset();
      count_end(r.executor, job_outcome::released);
      spdlog::info("job {}: attempt {} handed back", job_id, r.attempt);
      report_finished(job_id, r.attempt, job_outcome::released,
                      "handed back by draining worker " + cfg.worker_id);
    }
    maybe_finish_drain();
  }

  void maybe_finish_drain() {
    if (!draining || !running.empty() || finishing)
      return;
    if (link != link_state::running) {
      // Nobody to tell: reports still queued are lost, and the leases of
      // their jobs expire; any api-node's reaper then requeues them.
      if (!outbox.empty())
        spdlog::warn("exiting with {} undelivered reports", outbox.size());
      finish();
      return;
    }
    finishing = true;
    // Every report sent before this request is received before its reply.
    self->request(scheduler, std::chrono::seconds{10}, drain_done_atom::value)
      .then([this](drain_done_atom) { finish(); },
            [this](caf::error& err) {
              spdlog::warn("scheduler did not confirm the drain: {}",
                           render(err));
              finish();
            });
  }

  void finish() {
    finishing = true;
    spdlog::info("drained; exiting");
    self->quit();
  }
};

caf::behavior worker_actor(caf::stateful_actor<worker_state>* self,
                           worker_config cfg) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.mock = std::make_unique<mock_executor>(st.cfg.mock);
  self->set_down_handler([self](caf::down_msg& dm) {
    self->state.on_scheduler_down(dm);
  });
  self->set_default_handler(
    [](caf::scheduled_actor* ptr,
       caf::message_view& x) -> caf::result<caf::message> {
      spdlog::error("worker: dropped a message it does not understand ({}); "
                    "is the scheduler built for another protocol version? "
                    "ours is {}",
                    caf::to_string(x.content()), protocol_version);
      return caf::message{};
    });
  self->set_error_handler([](caf::error& err) {
    spdlog::warn("worker: error message: {}", render(err));
  });
  self->send(self, reconnect_atom::value);
  self->send(self, sweep_atom::value);
  self->delayed_send(self, defaults::worker_heartbeat, heartbeat_atom::value);
  return {
    [self](reconnect_atom) { self->state.connect(); },
    [self](job_assignment& job) { self->state.on_assignment(job); },
    [self](job_cancel& x) { self->state.on_cancel(x); },
    [self](mock_done_atom, const std::string& job_id, uint64_t token, bool ok,
           const std::string& error) {
      self->state.on_done(job_id, token, ok, error);
    },
    [self](drain_atom) { self->state.drain(); },
    [self](kill_atom, const std::string& job_id, uint64_t token,
           int32_t phase) { self->state.on_kill(job_id, token, phase); },
    [self](proc_line_atom, const std::string& job_id, uint64_t token,
           std::string& stream, std::string& line) {
      self->state.on_proc_line(job_id, token, stream, line);
    },
    [self](job_progress_report& p) { self->state.on_proc_progress(p); },
    [self](proc_exit_atom, const std::string& job_id, uint64_t token, bool ok,
           const std::string& error, const std::string& reason) {
      self->state.on_proc_exit(job_id, token, ok, error, reason);
    },
    [self](flush_logs_atom) { self->state.flush_all_logs(); },
    [self](mock_step_atom, const std::string& job_id, uint64_t token,
           int32_t k) { self->state.on_mock_step(job_id, token, k); },
    [self](sweep_atom) {
      self->state.sweep_work_dirs();
      self->delayed_send(self, defaults::work_sweep_interval,
                         sweep_atom::value);
    },
    [self](drain_timeout_atom) { self->state.on_drain_timeout(); },
    [self](heartbeat_atom) {
      auto& st = self->state;
      if (st.link == link_state::running)
        self->send(st.scheduler, heartbeat_atom::value, st.cfg.worker_id);
      self->delayed_send(self, defaults::worker_heartbeat,
                         heartbeat_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_worker(caf::actor_system& sys, worker_config cfg) {
  return sys.spawn(worker_actor, std::move(cfg));
}

} // namespace orch::worker
