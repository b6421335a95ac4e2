#include "orch/worker/worker.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/job.hpp"
#include "orch/messages.hpp"
#include "orch/time.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <deque>
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

namespace {

enum class link_state { disconnected, registering, running };

using drain_timeout_atom = caf::atom_constant<caf::atom("drain_to")>;

/// One attempt running here.
struct run {
  int32_t attempt = 0;
  /// Identifies this run's timer message; a stale timer is ignored.
  uint64_t token = 0;
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
    msg.executors = {"mock"};
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
    auto plan = mock->plan(job.parameters_json);
    auto token = ++next_token;
    running.emplace(job.job_id, run{job.attempt, token});
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
  }

  void on_done(const std::string& job_id, uint64_t token, bool ok,
               const std::string& error) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second.token != token)
      return;
    auto attempt = i->second.attempt;
    running.erase(i);
    if (ok)
      spdlog::info("job {}: attempt {} completed", job_id, attempt);
    else
      spdlog::info("job {}: attempt {} failed: {}", job_id, attempt, error);
    report_finished(job_id, attempt,
                    ok ? job_outcome::completed : job_outcome::failed, error);
    maybe_finish_drain();
  }

  void on_cancel(const job_cancel& x) {
    auto i = running.find(x.job_id);
    if (i == running.end() || i->second.attempt != x.attempt)
      return;
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
