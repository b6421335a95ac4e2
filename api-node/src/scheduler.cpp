#include "orch/api/scheduler.hpp"

#include "orch/api/dispatch.hpp"
#include "orch/api/job_store.hpp"
#include "orch/api/metrics.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/messages.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace orch::api {

namespace {

/// Threads joined however the scope is left (a joinable std::thread that is
/// destroyed ends the process).
struct joined_threads {
  std::vector<std::thread> threads;
  ~joined_threads() {
    for (auto& t : threads)
      if (t.joinable())
        t.join();
  }
};

struct worker_entry {
  caf::actor handle;
  std::string id;
  std::string host;
  uint32_t slots = 0;
  caf::node_id node;
  micros last_seen = 0;
  /// Jobs sent to this worker: job id -> attempt.
  std::unordered_map<std::string, int32_t> jobs;
  /// The worker is shutting down and takes no new jobs.
  bool draining = false;
  /// The executors it advertised.
  std::vector<std::string> executors;

  size_t free_slots() const {
    if (draining)
      return 0;
    return jobs.size() >= slots ? 0 : slots - jobs.size();
  }
};

struct scheduler_state {
  static inline const char* name = "scheduler";

  caf::event_based_actor* self = nullptr;
  scheduler_config cfg;
  /// Claims, registrations and sweeps; and flushes, when alone.
  std::unique_ptr<job_store> store;
  /// The connections a flush commits over, one part each (see flush()).
  std::vector<std::unique_ptr<job_store>> part_stores;
  std::map<caf::actor_addr, worker_entry> workers;
  transition_batch batch;
  bool flush_scheduled = false;
  /// Whether pending jobs may exist that we have not tried to claim.
  bool want_claim = true;
  /// The api-node is shutting down.
  bool stopping = false;
  /// A flush failed; the delayed retry is the next flush.
  bool backing_off = false;

  void set_db_ok(bool ok) {
    if (cfg.probe)
      cfg.probe->database_ok = ok;
  }

  void schedule_flush() {
    if (!flush_scheduled) {
      flush_scheduled = true;
      self->send(self, flush_atom::value);
    }
  }

  worker_entry* find_by_id(const std::string& id) {
    for (auto& [addr, w] : workers)
      if (w.id == id)
        return &w;
    return nullptr;
  }

  caf::result<std::string> on_register(worker_hello& hello) {
    auto sender = caf::actor_cast<caf::actor>(self->current_sender());
    if (!sender)
      return make_error(ec::protocol_mismatch, "anonymous registration");
    auto node = sender.node();
    if (hello.protocol != protocol_version) {
      spdlog::error("refused worker {} from {}: protocol version {}, ours is "
                    "{}",
                    hello.worker_id, caf::to_string(node), hello.protocol,
                    protocol_version);
      return make_error(ec::protocol_mismatch,
                        "protocol version " + std::to_string(hello.protocol)
                          + " is not supported; this scheduler speaks "
                          + std::to_string(protocol_version));
    }
    if (hello.worker_id.empty() || hello.slots == 0) {
      return make_error(ec::protocol_mismatch,
                        "a worker needs an id and at least one slot");
    }
    if (auto i = workers.find(sender.address()); i != workers.end()) {
      // A repeated hello on a live connection: idempotent.
      return cfg.scheduler_id;
    }
    for (auto& [addr, w] : workers) {
      if (w.id == hello.worker_id) {
        spdlog::error("refused worker {} from node {}: a worker with this id "
                      "is connected from node {}",
                      hello.worker_id, caf::to_string(node),
                      caf::to_string(w.node));
        return make_error(ec::duplicate_worker,
                          "worker id " + hello.worker_id
                            + " is already connected");
      }
      if (w.node == node) {
        spdlog::error("refused worker {}: its CAF node id {} is already "
                      "connected as worker {}; two processes share a node "
                      "id, which disables failure detection (give each "
                      "container a distinct /etc/fstab root UUID)",
                      hello.worker_id, caf::to_string(node), w.id);
        return make_error(ec::duplicate_worker,
                          "CAF node id " + caf::to_string(node)
                            + " is already connected");
      }
    }
    auto now = now_micros();
    if (hello.executors.empty())
      hello.executors.emplace_back("mock");
    worker_row row{hello.worker_id, hello.host,
                   static_cast<int32_t>(hello.slots), 0,
                   cfg.scheduler_id, caf::to_string(node), now, now,
                   hello.executors};
    if (auto err = store->upsert_worker(row)) {
      set_db_ok(false);
      spdlog::warn("cannot register worker {}: {}", hello.worker_id,
                   render(err));
      return err;
    }
    set_db_ok(true);
    self->monitor(sender);
    worker_entry entry{sender, hello.worker_id, hello.host, hello.slots,
                       node, now, {}, false, hello.executors};
    if (!hello.inflight.empty()) {
      // Adopt what still belongs to the worker's attempts; stop the rest.
      std::vector<job_attempt> inflight;
      for (auto& j : hello.inflight)
        inflight.push_back({j.job_id, j.attempt});
      std::vector<job_attempt> stop;
      auto owned = store->adopt(hello.worker_id, inflight, cfg.lease_ttl,
                                stop);
      if (!owned) {
        set_db_ok(false);
        spdlog::warn("cannot adopt the jobs of worker {}: {}",
                     hello.worker_id, render(owned.error()));
        return owned.error();
      }
      for (auto& j : *owned) {
        spdlog::info("job {}: adopted attempt {} from re-registered worker "
                     "{}",
                     j.job_id, j.attempt, hello.worker_id);
        entry.jobs.emplace(j.job_id, j.attempt);
      }
      for (auto& j : stop) {
        spdlog::info("job {}: attempt {} on worker {} no longer owns the "
                     "job; stopping it",
                     j.job_id, j.attempt, hello.worker_id);
        self->send(sender, job_cancel{j.job_id, j.attempt});
      }
    }
    spdlog::info("worker {} registered from {} (node {}) with {} slots for "
                 "{}",
                 hello.worker_id, hello.host, caf::to_string(node),
                 hello.slots, fmt::join(hello.executors, ", "));
    workers.emplace(sender.address(), std::move(entry));
    want_claim = true;
    schedule_flush();
    return cfg.scheduler_id;
  }

  worker_entry* sender_entry() {
    auto i = workers.find(caf::actor_cast<caf::actor_addr>(
      self->current_sender()));
    return i == workers.end() ? nullptr : &i->second;
  }

  void on_started(job_started& x) {
    auto w = sender_entry();
    if (w == nullptr) {
      spdlog::warn("job {}: start report of attempt {} from unregistered "
                   "worker {} ignored",
                   x.job_id, x.attempt, x.worker_id);
      return;
    }
    w->last_seen = now_micros();
    batch.starts.push_back({x.job_id, x.attempt, w->id, x.at});
    schedule_flush();
  }

  void on_finished(job_finished& x) {
    auto w = sender_entry();
    if (w == nullptr) {
      spdlog::warn("job {}: result of attempt {} from unregistered worker {} "
                   "ignored",
                   x.job_id, x.attempt, x.worker_id);
      return;
    }
    w->last_seen = now_micros();
    w->jobs.erase(x.job_id);
    batch.finishes.push_back({x.job_id, x.attempt,
                              static_cast<job_outcome>(x.outcome), x.error,
                              x.at});
    want_claim = true;
    schedule_flush();
  }

  void on_log(job_log& x) {
    auto w = sender_entry();
    if (w == nullptr || x.lines.empty())
      return;
    w->last_seen = now_micros();
    batch.logs.push_back(
      {x.job_id, x.attempt, std::move(x.stream), std::move(x.lines)});
    schedule_flush();
  }

  void on_progress(const job_progress_report& x) {
    auto w = sender_entry();
    if (w == nullptr)
      return;
    w->last_seen = now_micros();
    // Only the latest report of a job matters.
    for (auto& p : batch.progress)
      if (p.job_id == x.job_id) {
        p = {x.job_id, x.attempt, x.completed, x.total};
        schedule_flush();
        return;
      }
    batch.progress.push_back({x.job_id, x.attempt, x.completed, x.total});
    schedule_flush();
  }

  void on_down(const caf::down_msg& dm) {
    auto i = workers.find(dm.source);
    if (i == workers.end())
      return;
    auto& w = i->second;
    auto reason = "worker " + w.id + " lost (" + render(dm.reason)
                  + "); requeued";
    spdlog::warn("worker {} is gone ({}); requeueing its {} jobs", w.id,
                 render(dm.reason), w.jobs.size());
    for (auto& [job_id, attempt] : w.jobs) {
      spdlog::info("job {}: requeued, attempt {} was on lost worker {}",
                   job_id, attempt, w.id);
      batch.requeues.push_back({job_id, attempt, w.id, reason});
      batch.releases.push_back(job_id);
    }
    if (auto err = store->disconnect_worker(w.id, cfg.scheduler_id))
      spdlog::warn("cannot record that worker {} left: {}", w.id,
                   render(err));
    workers.erase(i);
    schedule_flush();
  }

  void on_heartbeat(const std::string& worker_id) {
    if (auto w = sender_entry(); w != nullptr)
      w->last_seen = now_micros();
    else
      spdlog::debug("heartbeat from unregistered worker {}", worker_id);
  }

  // Persists the queued transitions and claims for the free slots. With
  // more than one connection the claim runs on the first while the batch
  // commits on the others, split by job (part_of), each part in its own
  // transaction. A job's reports in one flush share one part, and a flush
  // ends before the next begins, so each job's transitions still commit in
  // order. Parts touch disjoint rows of jobs (their own jobs' rows, and
  // inserts); a claim takes only rows no one holds (SKIP LOCKED), so it
  // never waits on a part. The claim may run before this batch's finishes
  // commit (a slot is free once its worker said so); what they free in the
  // database (a pipeline's max_concurrent, requeued or released jobs) is
  // claimed by the flush that follows. A part that fails is kept and
  // retried after a pause, with whatever arrived meanwhile; the others
  // stand.
  void flush() {
    if (backing_off)
      return; // the retry flushes everything queued
    flush_scheduled = false;
    if (batch.empty()) {
      dispatch();
      return;
    }
    const bool apart = !part_stores.empty();
    auto parts = split_by_job(std::move(batch),
                              apart ? part_stores.size() : 1);
    batch = transition_batch{};
    std::vector<std::optional<caf::expected<batch_outcome>>> outcomes(
      parts.size());
    auto run = [this, apart, &parts, &outcomes](size_t i) {
      auto& db = apart ? *part_stores[i] : *store;
      outcomes[i] = db.apply(parts[i], cfg.scheduler_id);
    };
    bool claimed = true;
    if (!apart) {
      run(0);
    } else {
      // With no claim to make, this thread commits one part itself: a
      // flush of one job's report starts no thread.
      const bool claiming = want_claim && !stopping;
      std::optional<size_t> own;
      joined_threads parts_running;
      for (size_t i = 0; i < parts.size(); ++i) {
        if (parts[i].empty())
          continue;
        if (!claiming && !own)
          own = i;
        else
          parts_running.threads.emplace_back(run, i);
      }
      if (own)
        run(*own);
      else
        claimed = dispatch();
    }
    bool failed = false;
    bool freed = false;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!outcomes[i])
        continue;
      auto& part = parts[i];
      if (!*outcomes[i]) {
        failed = true;
        spdlog::warn("cannot persist {} transitions and {} log batches, "
                     "retrying: {}",
                     part.starts.size() + part.finishes.size()
                       + part.requeues.size() + part.releases.size()
                       + part.progress.size(),
                     part.logs.size(), render(outcomes[i]->error()));
        // Keep them, in order, ahead of anything that arrived meanwhile.
        merge_front(std::move(part));
        continue;
      }
      freed = freed || !part.finishes.empty() || !part.requeues.empty()
              || !part.releases.empty();
      count(**outcomes[i]);
      report(part, **outcomes[i]);
    }
    if (failed) {
      set_db_ok(false);
      backing_off = true;
      flush_scheduled = true;
      self->delayed_send(self, defaults::db_reconnect_min, flush_atom::value,
                         reconnect_atom::value);
      return;
    }
    set_db_ok(claimed);
    if (!apart) {
      dispatch();
    } else if (freed) {
      want_claim = true;
      schedule_flush();
    }
  }

  void merge_front(transition_batch&& older) {
    auto prepend = [](auto& dst, auto&& src) {
      src.insert(src.end(), std::make_move_iterator(dst.begin()),
                 std::make_move_iterator(dst.end()));
      dst = std::move(src);
    };
    prepend(batch.starts, std::move(older.starts));
    prepend(batch.finishes, std::move(older.finishes));
    prepend(batch.requeues, std::move(older.requeues));
    prepend(batch.releases, std::move(older.releases));
    prepend(batch.logs, std::move(older.logs));
    // Progress: a newer report of the same job wins over the older one.
    for (auto& p : older.progress) {
      auto newer = std::any_of(batch.progress.begin(), batch.progress.end(),
                               [&](auto& q) { return q.job_id == p.job_id; });
      if (!newer)
        batch.progress.push_back(std::move(p));
    }
  }

  // Committed starts and terminal transitions go to the metrics.
  void count(const batch_outcome& outcome) {
    if (!cfg.metrics)
      return;
    for (auto& row : outcome.start_rows)
      cfg.metrics->job_started(row);
    for (auto& row : outcome.end_rows)
      cfg.metrics->job_ended(row);
  }

  void report(const transition_batch& done, const batch_outcome& outcome) {
    std::unordered_set<std::string> started{outcome.started.begin(),
                                            outcome.started.end()};
    std::unordered_set<std::string> finished{outcome.finished.begin(),
                                             outcome.finished.end()};
    for (auto& s : done.starts) {
      if (started.count(s.job_id) > 0) {
        spdlog::debug("job {}: running, attempt {} on {}", s.job_id,
                      s.attempt, s.worker_id);
        continue;
      }
      // Cancelled or taken over meanwhile: the attempt must not run.
      spdlog::warn("job {}: start of attempt {} on {} rejected (cancelled "
                   "or no longer claimed); stopping it",
                   s.job_id, s.attempt, s.worker_id);
      if (auto w = find_by_id(s.worker_id))
        self->send(w->handle, job_cancel{s.job_id, s.attempt});
    }
    for (auto& f : done.finishes) {
      if (finished.count(f.job_id) > 0)
        spdlog::debug("job {}: attempt {} ended ({})", f.job_id, f.attempt,
                      static_cast<int>(f.outcome));
      else
        spdlog::warn("job {}: stale result of attempt {} rejected", f.job_id,
                     f.attempt);
    }
  }

  size_t free_slots() const {
    size_t n = 0;
    for (auto& [addr, w] : workers)
      n += w.free_slots();
    return n;
  }

  // The executors of workers with a free slot.
  std::vector<std::string> free_executors() const {
    std::vector<std::string> result;
    for (auto& [addr, w] : workers)
      if (w.free_slots() > 0)
        for (auto& e : w.executors)
          if (std::find(result.begin(), result.end(), e) == result.end())
            result.push_back(e);
    return result;
  }

  // Claims as many pending jobs as there are free slots (only jobs a worker
  // with a free slot can run) and sends them out.
  // Returns false when a claim failed.
  bool dispatch() {
    while (want_claim && !stopping) {
      auto free = free_slots();
      if (free == 0)
        return true;
      auto limit = std::min(free, defaults::max_claim_batch);
      auto claimed = store->claim(limit, cfg.scheduler_id, defaults::claim_ttl,
                                  free_executors());
      if (!claimed) {
        set_db_ok(false);
        spdlog::warn("cannot claim jobs: {}", render(claimed.error()));
        return false; // The sweep tries again.
      }
      set_db_ok(true);
      if (claimed->size() < limit)
        want_claim = false;
      assign(*claimed);
    }
    return true;
  }

  void assign(std::vector<claimed_job>& jobs) {
    std::vector<worker_entry*> order;
    std::vector<size_t> free;
    std::vector<std::vector<std::string>> worker_executors;
    for (auto& [addr, w] : workers) {
      order.push_back(&w);
      free.push_back(w.free_slots());
      worker_executors.push_back(w.executors);
    }
    std::vector<std::string> job_executors;
    for (auto& job : jobs)
      job_executors.push_back(job.executor);
    auto plan = plan_dispatch(std::move(free), worker_executors,
                              job_executors);
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto& job = jobs[i];
      if (plan[i] == npos) {
        batch.releases.push_back(job.id);
        schedule_flush();
        continue;
      }
      auto* w = order[plan[i]];
      auto attempt = job.attempt + 1;
      w->jobs.emplace(job.id, attempt);
      spdlog::debug("job {}: dispatched to {} as attempt {}", job.id, w->id,
                    attempt);
      std::string settings = "{}";
      if (cfg.pipelines)
        if (auto p = cfg.pipelines->find(job.pipeline_name))
          settings = p->settings.dump();
      self->send(w->handle,
                 job_assignment{job.id, attempt, std::move(job.pipeline_name),
                                std::move(job.parameters_json),
                                job.timeout_seconds, std::move(job.executor),
                                std::move(settings)});
    }
  }

  // A cancel was accepted for `job_id`: if one of our workers runs it,
  // tell that worker to stop it.
  void on_cancel(const std::string& job_id) {
    for (auto& [addr, w] : workers) {
      auto i = w.jobs.find(job_id);
      if (i == w.jobs.end())
        continue;
      spdlog::info("job {}: cancelling attempt {} on {}", job_id, i->second,
                   w.id);
      self->send(w.handle, job_cancel{job_id, i->second});
    }
  }

  void on_drain(const std::string& worker_id) {
    if (auto w = sender_entry(); w != nullptr) {
      spdlog::info("worker {} is draining: no new jobs for it", w->id);
      w->draining = true;
    } else {
      spdlog::debug("drain from unregistered worker {}", worker_id);
    }
  }

  // Hands back what this scheduler claimed and persists what it holds; run
  // when the api-node shuts down.
  void shutdown() {
    stopping = true; // claim nothing more: it would only be handed back
    backing_off = false;
    flush();
    if (auto err = store->release_claims(cfg.scheduler_id))
      spdlog::warn("cannot release claims: {}", render(err));
    for (auto& [addr, w] : workers)
      if (auto err = store->disconnect_worker(w.id, cfg.scheduler_id))
        spdlog::warn("cannot record that worker {} left: {}", w.id,
                     render(err));
  }

  void reap() {
    if (auto err = store->compact_counts())
      spdlog::warn("cannot compact job counts: {}", render(err));
    std::vector<transition_row> rows;
    auto reaped = store->reap(defaults::max_claim_batch, &rows);
    if (!reaped) {
      set_db_ok(false);
      spdlog::warn("reaper: {}", render(reaped.error()));
      return;
    }
    for (auto& id : *reaped)
      spdlog::warn("job {}: lease expired, worker lost; requeued or failed",
                   id);
    if (cfg.metrics)
      for (auto& row : rows)
        cfg.metrics->job_ended(row);
    if (!reaped->empty()) {
      want_claim = true;
      schedule_flush();
    }
  }

  void sweep() {
    std::vector<std::string> ids;
    std::vector<micros> seen;
    std::vector<job_attempt> leased;
    auto alive_since
      = now_micros()
        - std::chrono::duration_cast<std::chrono::microseconds>(
            defaults::worker_alive_window)
            .count();
    for (auto& [addr, w] : workers) {
      ids.push_back(w.id);
      seen.push_back(w.last_seen);
      if (w.last_seen >= alive_since)
        for (auto& [job_id, attempt] : w.jobs)
          leased.push_back({job_id, attempt});
    }
    if (auto err = store->renew_leases(leased, cfg.lease_ttl)) {
      set_db_ok(false);
      spdlog::warn("cannot renew leases: {}", render(err));
    }
    if (auto err = store->touch_workers(ids, seen, cfg.scheduler_id)) {
      set_db_ok(false);
      spdlog::warn("cannot record worker liveness: {}", render(err));
    } else {
      set_db_ok(true);
    }
    want_claim = true;
    schedule_flush();
  }
};

caf::behavior scheduler_actor(caf::stateful_actor<scheduler_state>* self,
                              scheduler_config cfg) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.store = std::make_unique<job_store>(st.cfg.database_url);
  st.store->set_lease_ttl(st.cfg.lease_ttl);
  for (size_t i = 1; i < st.cfg.db_connections; ++i) {
    st.part_stores.push_back(std::make_unique<job_store>(st.cfg.database_url));
    st.part_stores.back()->set_lease_ttl(st.cfg.lease_ttl);
  }
  if (auto err = st.store->ping()) {
    spdlog::warn("scheduler: database not reachable yet: {}", render(err));
  } else {
    st.set_db_ok(true);
  }
  if (st.cfg.probe)
    st.cfg.probe->running = true;
  self->attach_functor([probe = st.cfg.probe] {
    if (probe)
      probe->running = false;
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    self->state.on_down(dm);
  });
  self->set_default_handler(
    [](caf::scheduled_actor* ptr,
       caf::message_view& x) -> caf::result<caf::message> {
      auto sender = ptr->current_sender();
      spdlog::error("scheduler: refused a message it does not understand "
                    "from {} ({}); is that worker built for another "
                    "protocol version? ours is {}",
                    sender ? caf::to_string(sender->node()) : "anonymous",
                    caf::to_string(x.content()), protocol_version);
      return caf::sec::unexpected_message;
    });
  self->set_error_handler([](caf::error& err) {
    spdlog::warn("scheduler: error message: {}", render(err));
  });
  self->set_exception_handler([](caf::scheduled_actor*,
                                 std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      spdlog::critical("scheduler: unhandled exception: {}", e.what());
    }
    return make_error(ec::internal, "unhandled exception in scheduler");
  });
  self->delayed_send(self, defaults::sweep_interval, tick_atom::value);
  self->delayed_send(self, defaults::reaper_interval, reap_atom::value);
  spdlog::info("scheduler {} started", st.cfg.scheduler_id);
  return {
    [self](register_atom, worker_hello& hello) -> caf::result<std::string> {
      return self->state.on_register(hello);
    },
    [self](job_started& x) { self->state.on_started(x); },
    [self](job_finished& x) { self->state.on_finished(x); },
    [self](job_log& x) { self->state.on_log(x); },
    [self](job_progress_report& x) { self->state.on_progress(x); },
    [self](heartbeat_atom, const std::string& worker_id) {
      self->state.on_heartbeat(worker_id);
    },
    [self](wake_atom) {
      self->state.want_claim = true;
      self->state.schedule_flush();
    },
    [self](cancel_atom, const std::string& job_id) {
      self->state.on_cancel(job_id);
    },
    [self](drain_atom, const std::string& worker_id) {
      self->state.on_drain(worker_id);
    },
    [self](drain_done_atom) {
      // The worker's reports before this one have all been received.
      return drain_done_atom::value;
    },
    [self](drain_atom) {
      self->state.shutdown();
      self->quit();
      return drain_done_atom::value;
    },
    [self](reap_atom) {
      self->state.reap();
      self->delayed_send(self, defaults::reaper_interval, reap_atom::value);
    },
    [self](flush_atom) { self->state.flush(); },
    [self](flush_atom, reconnect_atom) {
      self->state.backing_off = false;
      self->state.flush();
    },
    [self](tick_atom) {
      self->state.sweep();
      self->delayed_send(self, defaults::sweep_interval, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg) {
  return sys.spawn<caf::detached>(scheduler_actor, std::move(cfg));
}

} // namespace orch::api
