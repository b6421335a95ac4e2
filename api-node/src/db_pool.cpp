#include "orch/api/db_pool.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/messages.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <string_view>
#include <unordered_map>

namespace orch::api {

namespace {

struct task_msg {
  db_task fn;
};

struct submit_msg {
  job_submission sub;
  submit_callback done;
};

struct lookup_msg {
  std::string id;
  lookup_callback done;
};

struct list_msg {
  job_filter filter;
  /// filter_key(filter), computed once by db_pool::list.
  std::string key;
  page_formatter format;
  page_callback done;
};

/// A page's answers, for the responder: one body for every request.
struct page_answers_msg {
  std::vector<page_callback> done;
  caf::expected<std::shared_ptr<const std::string>> body;
};

/// A batch's answers, for the responder: `done[i]` gets `results[i]`.
template <class T>
struct answers_of {
  std::vector<std::function<void(T)>> done;
  std::vector<T> results;

  void deliver() {
    for (size_t i = 0; i < done.size(); ++i)
      done[i](std::move(results[i]));
  }
};

/// A committed batch's answers.
using answers_msg = answers_of<caf::expected<submit_result>>;

/// A batch of lookups' answers.
using lookup_answers_msg = answers_of<caf::expected<job>>;

} // namespace
} // namespace orch::api

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::task_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::submit_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::answers_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::lookup_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::lookup_answers_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::list_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(orch::api::page_answers_msg)

namespace orch::api {

namespace {

// Equal for filters that select the same page.
std::string filter_key(const job_filter& f) {
  std::string key;
  for (auto s : f.statuses)
    key += std::to_string(static_cast<int>(s)) + ",";
  key += f.pipeline_name ? "p" + *f.pipeline_name : "-";
  key += '\0';
  key += std::to_string(f.limit);
  key += f.before_seq ? "<" + std::to_string(*f.before_seq) : "";
  return key;
}

// Counts a connection as busy while it lives.
struct busy_scope {
  explicit busy_scope(pool_usage& u) : usage(u) {
    ++usage.busy;
  }
  ~busy_scope() {
    --usage.busy;
  }
  busy_scope(const busy_scope&) = delete;
  busy_scope& operator=(const busy_scope&) = delete;
  pool_usage& usage;
};

// Runs the callbacks of committed submissions (they format and send the
// HTTP answers) on CAF's scheduler threads, so that a writer starts its
// next group commit while the answers of the last one go out.
caf::behavior responder_actor() {
  return {
    [](answers_msg& m) { m.deliver(); },
    [](lookup_answers_msg& m) { m.deliver(); },
    [](page_answers_msg& m) {
      for (auto& done : m.done)
        done(m.body);
    },
  };
}

struct pool_state {
  static inline const char* name = "db_pool";
  std::unique_ptr<job_store> store;
  std::shared_ptr<pool_usage> usage;
  std::vector<submit_msg> queued;
  std::vector<lookup_msg> lookups;
  std::vector<list_msg> lists;
  bool flush_scheduled = false;
  caf::actor scheduler;
  caf::actor responder;

  void flush() {
    flush_scheduled = false;
    flush_lookups();
    flush_lists();
    flush_submissions();
  }

  // Runs each distinct page once, in the order its first request came, and
  // sends its answers before the next page's statement.
  void flush_lists() {
    if (lists.empty())
      return;
    busy_scope busy{*usage};
    auto items = std::move(lists);
    lists.clear();
    std::vector<std::vector<size_t>> groups;
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < items.size(); ++i) {
      auto [it, fresh] = index.emplace(items[i].key, groups.size());
      if (fresh)
        groups.emplace_back();
      groups[it->second].push_back(i);
    }
    for (auto& group : groups) {
      auto& first = items[group.front()];
      auto page = store->list_jobs(first.filter);
      if (!page)
        spdlog::warn("cannot list jobs: {}", render(page.error()));
      page_answers_msg answers{
        {},
        page ? caf::expected<std::shared_ptr<const std::string>>{
          std::make_shared<const std::string>(first.format(*page))}
             : page.error()};
      answers.done.reserve(group.size());
      for (auto i : group)
        answers.done.push_back(std::move(items[i].done));
      caf::anon_send(responder, std::move(answers));
    }
  }

  // One statement for every queued lookup; a job found twice (two requests
  // for one id) answers both.
  void flush_lookups() {
    if (lookups.empty())
      return;
    busy_scope busy{*usage};
    auto items = std::move(lookups);
    lookups.clear();
    std::vector<std::string> ids;
    ids.reserve(items.size());
    for (auto& item : items)
      ids.push_back(item.id);
    lookup_answers_msg answers;
    answers.done.reserve(items.size());
    answers.results.reserve(items.size());
    auto found = store->get_jobs(ids);
    if (!found)
      spdlog::warn("cannot read {} jobs: {}", items.size(),
                   render(found.error()));
    std::unordered_map<std::string_view, const job*> by_id;
    if (found)
      for (auto& j : *found)
        by_id.emplace(j.id, &j);
    for (auto& item : items) {
      if (!found) {
        answers.results.emplace_back(found.error());
      } else if (auto i = by_id.find(item.id); i != by_id.end()) {
        answers.results.emplace_back(*i->second);
      } else {
        answers.results.emplace_back(
          make_error(ec::not_found, "no job with id " + item.id));
      }
      answers.done.push_back(std::move(item.done));
    }
    caf::anon_send(responder, std::move(answers));
  }

  void flush_submissions() {
    if (queued.empty())
      return;
    busy_scope busy{*usage};
    auto items = std::move(queued);
    queued.clear();
    std::vector<job_submission> subs;
    answers_msg answers;
    subs.reserve(items.size());
    answers.done.reserve(items.size());
    answers.results.reserve(items.size());
    for (auto& item : items) {
      subs.push_back(std::move(item.sub));
      answers.done.push_back(std::move(item.done));
    }
    // Every answer goes out from the responder, after the transaction ended.
    auto results = store->submit_jobs(subs);
    if (!results) {
      spdlog::warn("cannot insert {} submitted jobs: {}", items.size(),
                   render(results.error()));
      answers.results.assign(items.size(), results.error());
      caf::anon_send(responder, std::move(answers));
      return;
    }
    for (auto& r : *results) {
      if (r.error) {
        answers.results.emplace_back(std::move(r.error));
        continue;
      }
      spdlog::debug("job {}: {}, pipeline {}", r.value.id,
                    r.replayed ? "replayed" : "submitted",
                    r.value.pipeline_name);
      answers.results.emplace_back(std::move(r));
    }
    caf::anon_send(responder, std::move(answers));
    // The local scheduler; every other node's heard the commit's NOTIFY.
    caf::anon_send(scheduler, wake_atom::value);
  }
};

// Flushes at once when a batch is full, else once the mailbox holds no
// more of what arrived meanwhile (the flush message queues behind it).
void schedule_flush(caf::stateful_actor<pool_state>* self, bool full) {
  auto& st = self->state;
  if (full) {
    st.flush();
  } else if (!st.flush_scheduled) {
    st.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

caf::behavior pool_actor(caf::stateful_actor<pool_state>* self,
                         std::string url, caf::actor scheduler,
                         std::shared_ptr<pool_usage> usage) {
  self->state.store = std::make_unique<job_store>(std::move(url));
  self->state.usage = std::move(usage);
  self->state.scheduler = std::move(scheduler);
  self->state.responder = self->spawn<caf::linked>(responder_actor);
  self->set_exception_handler([](caf::scheduled_actor*,
                                 std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      spdlog::critical("db_pool: unhandled exception: {}", e.what());
    }
    return make_error(ec::internal, "unhandled exception in db_pool");
  });
  return {
    [self](task_msg& t) {
      busy_scope busy{*self->state.usage};
      try {
        t.fn(*self->state.store);
      } catch (const std::exception& e) {
        spdlog::error("db_pool: task failed: {}", e.what());
      }
    },
    [self](submit_msg& s) {
      auto& st = self->state;
      st.queued.push_back(std::move(s));
      schedule_flush(self, st.queued.size() >= defaults::max_submit_batch);
    },
    [self](list_msg& l) {
      auto& st = self->state;
      st.lists.push_back(std::move(l));
      schedule_flush(self, st.lists.size() >= defaults::max_read_batch);
    },
    [self](lookup_msg& l) {
      auto& st = self->state;
      st.lookups.push_back(std::move(l));
      schedule_flush(self, st.lookups.size() >= defaults::max_read_batch);
    },
    [self](flush_atom) { self->state.flush(); },
  };
}

} // namespace

db_pool::db_pool(caf::actor_system& sys, std::string url, size_t readers,
                 size_t writers, caf::actor scheduler) {
  for (size_t i = 0; i < std::max<size_t>(readers, 1); ++i)
    readers_.push_back(
      sys.spawn<caf::detached>(pool_actor, url, scheduler, usage_));
  for (size_t i = 0; i < std::max<size_t>(writers, 1); ++i)
    writers_.push_back(
      sys.spawn<caf::detached>(pool_actor, url, scheduler, usage_));
  lookup_ = sys.spawn<caf::detached>(pool_actor, url, scheduler, usage_);
  for (size_t i = 0; i < defaults::list_actors; ++i)
    listers_.push_back(
      sys.spawn<caf::detached>(pool_actor, url, scheduler, usage_));
  usage_->size = static_cast<int64_t>(readers_.size() + writers_.size() + 1
                                      + listers_.size());
}

db_pool::~db_pool() {
  stop();
}

void db_pool::run(db_task task) {
  caf::anon_send(readers_[next_reader_++ % readers_.size()],
                 task_msg{std::move(task)});
}

void db_pool::submit(job_submission sub, submit_callback done) {
  caf::anon_send(writers_[next_writer_++ % writers_.size()],
                 submit_msg{std::move(sub), std::move(done)});
}

void db_pool::lookup(std::string id, lookup_callback done) {
  caf::anon_send(lookup_, lookup_msg{std::move(id), std::move(done)});
}

void db_pool::list(job_filter filter, page_formatter format,
                   page_callback done) {
  auto key = filter_key(filter);
  auto& to = listers_[std::hash<std::string>{}(key) % listers_.size()];
  caf::anon_send(to, list_msg{std::move(filter), std::move(key),
                              std::move(format), std::move(done)});
}

void db_pool::stop() {
  // The handles stay valid: a late task goes to an exited actor and is
  // dropped, which only happens while the process shuts down.
  for (auto* group : {&readers_, &writers_, &listers_})
    for (auto& a : *group)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(lookup_, caf::exit_reason::user_shutdown);
}

} // namespace orch::api
