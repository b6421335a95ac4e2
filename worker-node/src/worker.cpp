#include "orch/worker/worker.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/messages.hpp"
#include "orch/time.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <map>

namespace orch::worker {

namespace {

enum class link_state { disconnected, registering, running };

struct worker_state {
  static inline const char* name = "worker";

  caf::event_based_actor* self = nullptr;
  worker_config cfg;
  std::unique_ptr<mock_executor> mock;
  link_state link = link_state::disconnected;
  caf::actor scheduler;
  std::chrono::milliseconds backoff = defaults::reconnect_min;
  /// Jobs running here: job id -> attempt.
  std::map<std::string, int32_t> running;
  /// Results not yet delivered to a scheduler.
  std::deque<job_finished> outbox;
  /// Increments on every connection attempt; stale replies are ignored.
  uint64_t generation = 0;

  void connect() {
    if (link != link_state::disconnected)
      return;
    auto gen = ++generation;
    link = link_state::registering;
    auto mm = self->system().middleman().actor_handle();
    self
      ->request(mm, std::chrono::seconds{10}, caf::connect_atom::value,
                cfg.scheduler_host, cfg.scheduler_port)
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
    for (auto& [id, attempt] : running)
      msg.inflight.push_back({id, attempt});
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
                       scheduler_id, cfg.scheduler_host, cfg.scheduler_port,
                       cfg.worker_id, cfg.slots, running.size());
          while (!outbox.empty()) {
            self->send(scheduler, std::move(outbox.front()));
            outbox.pop_front();
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
                 cfg.scheduler_host, cfg.scheduler_port, why,
                 backoff.count());
    self->delayed_send(self, backoff, reconnect_atom::value);
    backoff = std::min(backoff * 2,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                         defaults::reconnect_max));
  }

  void on_assignment(job_assignment& job) {
    if (running.count(job.job_id) > 0) {
      spdlog::warn("job {}: already running here; duplicate assignment of "
                   "attempt {} ignored",
                   job.job_id, job.attempt);
      return;
    }
    auto plan = mock->plan(job.parameters_json);
    running.emplace(job.job_id, job.attempt);
    spdlog::info("job {}: attempt {} started, pipeline {} on mock ({} ms)",
                 job.job_id, job.attempt, job.pipeline_name,
                 plan.duration.count());
    report(job_started{job.job_id, job.attempt, cfg.worker_id, now_micros()});
    self->delayed_send(self, plan.duration, mock_done_atom::value, job.job_id,
                       job.attempt, plan.ok, plan.error);
  }

  void on_done(const std::string& job_id, int32_t attempt, bool ok,
               const std::string& error) {
    auto i = running.find(job_id);
    if (i == running.end() || i->second != attempt)
      return;
    running.erase(i);
    if (ok)
      spdlog::info("job {}: attempt {} completed", job_id, attempt);
    else
      spdlog::info("job {}: attempt {} failed: {}", job_id, attempt, error);
    job_finished msg{job_id, attempt, cfg.worker_id, ok, error, now_micros()};
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
    link = link_state::disconnected;
    scheduler = nullptr;
    backoff = defaults::reconnect_min;
    connect();
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
    [self](mock_done_atom, const std::string& job_id, int32_t attempt,
           bool ok, const std::string& error) {
      self->state.on_done(job_id, attempt, ok, error);
    },
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
