#include "orch/api/sse_hub.hpp"

#include "orch/api/job_store.hpp"
#include "orch/codec.hpp"
#include "orch/error.hpp"
#include "orch/time.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace orch::api {

namespace {

using clock_type = std::chrono::steady_clock;
using chunk = std::shared_ptr<const std::string>;
using nlohmann::json;

constexpr const char* response_head
  = "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-cache\r\n"
    "Connection: close\r\n"
    "X-Accel-Buffering: no\r\n"
    "\r\n"
    "retry: 2000\n"
    ": connected\n\n";

const char* type_name(stream_event::kind k) {
  switch (k) {
    case stream_event::kind::status: return "status";
    case stream_event::kind::log: return "log";
    case stream_event::kind::progress: return "progress";
    case stream_event::kind::complete: return "complete";
  }
  return "status";
}


json nullable(const std::optional<std::string>& x) {
  return x ? json(*x) : json(nullptr);
}

// One event in the wire format (see sse_hub.hpp).
std::string format(const stream_event& e) {
  json payload;
  switch (e.type) {
    case stream_event::kind::status:
      payload = {{"status", e.status},
                 {"from_status", nullable(e.from_status)},
                 {"attempt", e.attempt},
                 {"worker_id", nullable(e.worker_id)},
                 {"message", nullable(e.message)}};
      break;
    case stream_event::kind::progress:
      payload = {{"completed", e.completed},
                 {"total", e.total},
                 {"percent",
                  codec::progress_percent(job_progress{e.completed, e.total})},
                 {"attempt", e.attempt}};
      break;
    case stream_event::kind::log:
      payload = {{"stream", e.stream}, {"line", e.line}, {"attempt", e.attempt}};
      break;
    case stream_event::kind::complete:
      payload = {{"status", e.status},
                 {"attempt", e.attempt},
                 {"error_message", e.status == "completed"
                                     ? json(nullptr)
                                     : nullable(e.error_message)}};
      break;
  }
  json data = {{"job_id", e.job_id},
               {"at", format_rfc3339(e.at)},
               {"type", type_name(e.type)},
               {"pipeline_name", e.pipeline_name}};
  for (auto& [k, v] : payload.items())
    data[k] = std::move(v);
  std::string out = "id: " + std::to_string(e.id) + "\nevent: "
                    + type_name(e.type) + "\ndata: ";
  out += data.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

bool matches(const sse_subscription& sub, const stream_event& e) {
  if ((sub.types & sse_type_bit(e.type)) == 0)
    return false;
  if (sub.job_id)
    return *sub.job_id == e.job_id;
  if (sub.pipeline_name && *sub.pipeline_name != e.pipeline_name)
    return false;
  if (!sub.statuses.empty()
      && std::find(sub.statuses.begin(), sub.statuses.end(), e.status)
           == sub.statuses.end())
    return false;
  return true;
}

// Clients with equal keys get the same bytes.
std::string group_key(const sse_subscription& sub) {
  std::string key = sub.job_id ? "job:" + *sub.job_id : "all:";
  key += '|';
  key += std::to_string(sub.types);
  key += '|';
  if (sub.pipeline_name)
    key += *sub.pipeline_name;
  key += '|';
  auto statuses = sub.statuses;
  std::sort(statuses.begin(), statuses.end());
  for (auto& s : statuses)
    key += s + ",";
  return key;
}

struct group;

struct client {
  int fd = -1;
  sse_subscription sub;
  bool live = false;
  bool closing = false;
  bool want_out = false;
  /// Replay: the last id delivered.
  int64_t cursor = 0;
  std::deque<chunk> queue;
  size_t offset = 0;
  size_t queued = 0;
  group* grp = nullptr;
};

struct group {
  sse_subscription sub;
  std::vector<client*> members;
  std::string pending;
  bool saw_complete = false;
};

} // namespace

struct sse_hub::impl {
  sse_config cfg;
  std::string database_url;
  std::atomic<int64_t> own_clients{0};
  /// Streams open now (own_clients, or a counter the owner shows).
  std::atomic<int64_t>* n_clients = &own_clients;
  std::atomic<bool> running{false};
  int epfd = -1;
  int wakefd = -1;
  std::thread thread;

  std::mutex mtx;
  std::vector<std::pair<int, sse_subscription>> incoming;

  // Owned by the hub thread from here on.
  std::unique_ptr<job_store> store;
  std::unordered_map<int, std::unique_ptr<client>> clients;
  /// Clients with data to write (or to drop), in order; may repeat.
  std::deque<int> dirty;
  std::map<std::string, std::unique_ptr<group>> groups;
  std::unordered_map<std::string, std::vector<group*>> job_groups;
  std::vector<group*> firehose_groups;
  int64_t cursor = 0;
  std::optional<clock_type::time_point> hole_since;
  int64_t hole_at = 0;
  bool db_ok = true;

  impl(sse_config c, std::string url)
    : cfg(c), database_url(std::move(url)) {
    // nop
  }

  // -- connections -----------------------------------------------------------

  void add_client(int fd, sse_subscription sub) {
    auto c = std::make_unique<client>();
    c->fd = fd;
    c->sub = std::move(sub);
    if (c->sub.job_id) {
      c->cursor = c->sub.last_event_id.value_or(0);
    } else if (c->sub.last_event_id) {
      c->cursor = std::max(*c->sub.last_event_id,
                           cursor - cfg.max_firehose_replay);
    } else {
      c->cursor = cursor;
    }
    // A fixed send buffer (no autotuning to megabytes): a stalled client
    // then shows up in `queued`, where the per-client limit applies.
    int sndbuf = 128 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    epoll_event ev{};
    ev.events = EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::warn("SSE: cannot watch a stream: {}", std::strerror(errno));
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
      --*n_clients;
      return;
    }
    auto* raw = c.get();
    clients.emplace(fd, std::move(c));
    enqueue(*raw, std::make_shared<const std::string>(response_head));
    // A Last-Event-ID past the cursor (it came from another api-node, or
    // this hub waits on a hole) stays in replay until the cursor gets
    // there: live now, it would get the events up to its id again.
    if (raw->cursor == cursor)
      go_live(*raw);
  }

  void go_live(client& c) {
    auto key = group_key(c.sub);
    auto& g = groups[key];
    if (!g) {
      g = std::make_unique<group>();
      g->sub = c.sub;
      if (c.sub.job_id)
        job_groups[*c.sub.job_id].push_back(g.get());
      else
        firehose_groups.push_back(g.get());
    }
    g->members.push_back(&c);
    c.grp = g.get();
    c.live = true;
  }

  void leave_group(client& c) {
    auto* g = c.grp;
    if (g == nullptr)
      return;
    c.grp = nullptr;
    auto& m = g->members;
    m.erase(std::remove(m.begin(), m.end(), &c), m.end());
    if (!m.empty())
      return;
    if (g->sub.job_id) {
      auto& v = job_groups[*g->sub.job_id];
      v.erase(std::remove(v.begin(), v.end(), g), v.end());
      if (v.empty())
        job_groups.erase(*g->sub.job_id);
    } else {
      firehose_groups.erase(
        std::remove(firehose_groups.begin(), firehose_groups.end(), g),
        firehose_groups.end());
    }
    groups.erase(group_key(g->sub));
  }

  void drop(client& c) {
    leave_group(c);
    ::epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    // Shutting the socket down also makes Pistache drop its descriptor.
    auto fd = c.fd;
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    --*n_clients;
    clients.erase(fd); // destroys c
  }

  void enqueue(client& c, chunk data) {
    bool idle = c.queue.empty() && !c.want_out;
    c.queued += data->size();
    c.queue.push_back(std::move(data));
    if (idle || c.queued > cfg.client_buffer_bytes)
      dirty.push_back(c.fd);
  }

  // Writes what the socket takes now. Returns false when the client is gone.
  bool flush(client& c) {
    while (!c.queue.empty()) {
      iovec iov[64];
      int n = 0;
      size_t off = c.offset;
      for (auto it = c.queue.begin(); it != c.queue.end() && n < 64; ++it) {
        iov[n].iov_base = const_cast<char*>((*it)->data()) + off;
        iov[n].iov_len = (*it)->size() - off;
        off = 0;
        ++n;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(n);
      auto sent = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        return false;
      }
      auto left = static_cast<size_t>(sent);
      c.queued -= left;
      while (left > 0) {
        auto avail = c.queue.front()->size() - c.offset;
        if (left >= avail) {
          left -= avail;
          c.queue.pop_front();
          c.offset = 0;
        } else {
          c.offset += left;
          left = 0;
        }
      }
    }
    bool want = !c.queue.empty();
    if (want != c.want_out) {
      epoll_event ev{};
      ev.events = EPOLLRDHUP | (want ? EPOLLOUT : 0u);
      ev.data.fd = c.fd;
      ::epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = want;
    }
    return true;
  }

  // -- events ----------------------------------------------------------------

  // Moves the cursor over the contiguous prefix of `ids` (sorted, all >
  // cursor), waiting up to hole_timeout for a missing id. Returns how many
  // of `ids` are now at or below the cursor.
  size_t advance(const std::vector<int64_t>& ids) {
    size_t n = 0;
    auto now = clock_type::now();
    for (auto id : ids) {
      if (id != cursor + 1) {
        if (!hole_since || hole_at != cursor + 1) {
          hole_since = now;
          hole_at = cursor + 1;
          break;
        }
        if (now - *hole_since < cfg.hole_timeout)
          break;
        spdlog::debug("SSE: skipping event ids {}..{} (rolled back or "
                      "dropped)",
                      cursor + 1, id - 1);
      }
      hole_since.reset();
      cursor = id;
      ++n;
    }
    return n;
  }

  // Reads past the cursor and fans out. Returns true when there may be more
  // to read right away.
  bool poll() {
    bool any_live = !groups.empty();
    std::vector<int64_t> ids;
    std::vector<stream_event> rows;
    if (any_live) {
      auto r = store->stream_events(cursor,
                                    std::numeric_limits<int64_t>::max(),
                                    std::nullopt, cfg.page);
      if (!r)
        return db_failed(r.error());
      rows = std::move(*r);
      ids.reserve(rows.size());
      for (auto& e : rows)
        ids.push_back(e.id);
    } else {
      auto r = store->stream_ids(cursor, cfg.page);
      if (!r)
        return db_failed(r.error());
      ids = std::move(*r);
    }
    db_recovered();
    auto fetched = ids.size();
    auto n = advance(ids);
    if (any_live && n > 0)
      fan_out(rows.data(), n);
    return fetched == cfg.page && n == fetched;
  }

  bool db_failed(const caf::error& err) {
    if (db_ok)
      spdlog::warn("SSE: cannot read events: {}", render(err));
    db_ok = false;
    return false;
  }

  void db_recovered() {
    if (!db_ok)
      spdlog::info("SSE: reading events again");
    db_ok = true;
  }

  void fan_out(const stream_event* rows, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      auto& e = rows[i];
      std::string text;
      auto emit = [&](group& g) {
        // The marker ends a job stream also when `types` leaves it out.
        if (g.sub.job_id && e.type == stream_event::kind::complete)
          g.saw_complete = true;
        if (!matches(g.sub, e))
          return;
        if (text.empty())
          text = format(e);
        g.pending += text;
      };
      if (auto it = job_groups.find(e.job_id); it != job_groups.end())
        for (auto* g : it->second)
          emit(*g);
      for (auto* g : firehose_groups)
        emit(*g);
    }
    // Copy the member lists: dropping a client may change a group.
    std::vector<group*> touched;
    for (auto& [key, g] : groups)
      if (!g->pending.empty() || g->saw_complete)
        touched.push_back(g.get());
    for (auto* g : touched) {
      chunk data;
      if (!g->pending.empty()) {
        data = std::make_shared<const std::string>(std::move(g->pending));
        g->pending.clear();
      }
      bool closes = g->saw_complete;
      auto members = g->members;
      for (auto* c : members) {
        if (data)
          enqueue(*c, data);
        if (closes && !c->closing) {
          // With nothing queued (the marker was filtered out), only
          // settle() would drop it.
          c->closing = true;
          dirty.push_back(c->fd);
        }
      }
    }
  }

  // Feeds replaying clients a page each while their buffers are low.
  // Returns whether a page was cut short (more to read right away).
  bool replay() {
    // A page may be far larger than client_buffer_bytes (1000 long log
    // lines): queued at once, it would disconnect even a fast client, which
    // would resume into the same page. So a page takes at most half the
    // buffer, and the next one waits until a quarter of it is left.
    auto low = std::min<size_t>(64 * 1024, cfg.client_buffer_bytes / 4);
    auto budget = cfg.client_buffer_bytes / 2;
    bool more = false;
    std::vector<client*> todo;
    for (auto& [fd, c] : clients)
      if (!c->live && !c->closing && c->queued < low
          && c->cursor <= cursor)
        todo.push_back(c.get());
    for (auto* c : todo) {
      auto r = store->stream_events(c->cursor, cursor, c->sub.job_id,
                                    cfg.page);
      if (!r) {
        db_failed(r.error());
        return false;
      }
      db_recovered();
      std::string text;
      bool complete = false;
      bool cut = false;
      for (auto& e : *r) {
        if (text.size() >= budget) {
          cut = true;
          break;
        }
        c->cursor = e.id;
        // The marker ends a job stream also when `types` leaves it out.
        if (c->sub.job_id && e.type == stream_event::kind::complete)
          complete = true;
        if (!matches(c->sub, e))
          continue;
        text += format(e);
      }
      if (!text.empty())
        enqueue(*c, std::make_shared<const std::string>(std::move(text)));
      if (complete) {
        // With nothing queued, only settle() would drop it.
        c->closing = true;
        dirty.push_back(c->fd);
      } else if (cut) {
        more = true;
      } else if (r->size() < cfg.page) {
        c->cursor = cursor;
        go_live(*c);
      }
    }
    return more;
  }

  void heartbeat() {
    static const auto beat = std::make_shared<const std::string>(
      ": heartbeat\n\n");
    for (auto& [fd, c] : clients)
      if (c->queue.empty() && !c->closing)
        enqueue(*c, beat);
  }

  // Writes what the client's socket takes; drops it when it is gone, too
  // slow, or finished.
  void settle(client& c) {
    if (c.queued > 0 && !flush(c)) {
      drop(c);
      return;
    }
    if (c.queued > cfg.client_buffer_bytes) {
      spdlog::info("SSE: disconnecting a client {} bytes behind; it may "
                   "resume with Last-Event-ID",
                   c.queued);
      drop(c);
      return;
    }
    if (c.closing && c.queued == 0)
      drop(c);
  }

  // Settles the clients with new data, a slice at a time: the writes of one
  // poll (and the loopback TCP work they cause) are spread over a few
  // milliseconds instead of one burst that would hold both cores of a small
  // machine while jobs wait to be dispatched. Returns whether clients are
  // left for the next slice.
  bool flush_some() {
    auto budget = std::max<size_t>(32, clients.size() / 8);
    while (!dirty.empty() && budget > 0) {
      auto fd = dirty.front();
      dirty.pop_front();
      auto it = clients.find(fd);
      if (it == clients.end())
        continue;
      settle(*it->second);
      --budget;
    }
    return !dirty.empty();
  }

  // -- the thread ------------------------------------------------------------

  void take_incoming() {
    std::vector<std::pair<int, sse_subscription>> xs;
    {
      std::lock_guard<std::mutex> guard{mtx};
      xs.swap(incoming);
    }
    for (auto& [fd, sub] : xs)
      add_client(fd, std::move(sub));
  }

  void run() {
    auto next_poll = clock_type::now();
    auto next_beat = clock_type::now() + cfg.heartbeat;
    std::vector<epoll_event> events(256);
    bool flushing = false;
    bool replaying = false;
    while (running) {
      auto now = clock_type::now();
      auto wait = std::min(next_poll, next_beat) - now;
      auto ms = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
      if (flushing || replaying)
        ms = std::min<int64_t>(ms, 1);
      auto n = ::epoll_wait(epfd, events.data(),
                            static_cast<int>(events.size()),
                            static_cast<int>(ms));
      for (int i = 0; i < n; ++i) {
        auto fd = events[i].data.fd;
        if (fd == wakefd) {
          uint64_t x;
          [[maybe_unused]] auto r = ::read(wakefd, &x, sizeof(x));
          continue;
        }
        auto it = clients.find(fd);
        if (it == clients.end())
          continue;
        auto& c = *it->second;
        if (events[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
          drop(c);
          continue;
        }
        if (events[i].events & EPOLLOUT)
          settle(c);
      }
      take_incoming();
      now = clock_type::now();
      replaying = false;
      if (now >= next_poll) {
        auto more = poll();
        replaying = replay();
        auto interval = clients.empty() ? cfg.idle_poll_interval
                                        : cfg.poll_interval;
        next_poll = more ? now : now + interval;
      } else if (std::any_of(clients.begin(), clients.end(), [](auto& kv) {
                   return !kv.second->live;
                 })) {
        replaying = replay();
      }
      if (now >= next_beat) {
        heartbeat();
        next_beat = now + cfg.heartbeat;
      }
      flushing = flush_some();
    }
    std::vector<client*> all;
    for (auto& [fd, c] : clients)
      all.push_back(c.get());
    for (auto* c : all)
      drop(*c);
  }
};

uint8_t sse_type_bit(stream_event::kind k) {
  switch (k) {
    case stream_event::kind::status: return sse_status;
    case stream_event::kind::log: return sse_log;
    case stream_event::kind::progress: return sse_progress;
    case stream_event::kind::complete: return sse_complete;
  }
  return 0;
}

sse_hub::sse_hub(sse_config cfg, std::string database_url)
  : impl_(std::make_unique<impl>(cfg, std::move(database_url))) {
  // nop
}

sse_hub::~sse_hub() {
  stop();
}

caf::error sse_hub::start() {
  auto& d = *impl_;
  d.store = std::make_unique<job_store>(d.database_url);
  auto head = d.store->stream_head();
  if (!head)
    return head.error();
  d.cursor = *head;
  d.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  d.wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (d.epfd < 0 || d.wakefd < 0)
    return make_error(ec::internal, std::string{"SSE hub: "}
                                      + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d.wakefd;
  ::epoll_ctl(d.epfd, EPOLL_CTL_ADD, d.wakefd, &ev);
  d.running = true;
  d.thread = std::thread{[&d] { d.run(); }};
  return caf::none;
}

void sse_hub::stop() {
  auto& d = *impl_;
  if (!d.running.exchange(false)) {
    // Never started, or stopped already.
  } else {
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(d.wakefd, &one, sizeof(one));
    if (d.thread.joinable())
      d.thread.join();
  }
  // Under the lock that attach() holds from its `running` check to its
  // write to wakefd: an attach that saw `running` before the exchange above
  // has queued its fd by now (closed here), and a later one sees it false;
  // none writes to a closed (and maybe reused) wakefd number.
  std::lock_guard<std::mutex> guard{d.mtx};
  for (auto& [fd, sub] : d.incoming) {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    --*d.n_clients;
  }
  d.incoming.clear();
  if (d.epfd >= 0)
    ::close(d.epfd);
  if (d.wakefd >= 0)
    ::close(d.wakefd);
  d.epfd = d.wakefd = -1;
}

caf::error sse_hub::attach(int fd, sse_subscription sub) {
  auto& d = *impl_;
  // Held until the wake-up is written: see stop().
  std::lock_guard<std::mutex> guard{d.mtx};
  if (!d.running)
    return make_error(ec::unavailable, "the event stream is shutting down");
  if (++*d.n_clients > static_cast<int64_t>(d.cfg.max_clients)) {
    --*d.n_clients;
    return make_error(ec::unavailable,
                      "too many event streams on this api-node (at most "
                        + std::to_string(d.cfg.max_clients) + ")");
  }
  d.incoming.emplace_back(fd, std::move(sub));
  uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(d.wakefd, &one, sizeof(one));
  return caf::none;
}

int64_t sse_hub::clients() const {
  return *impl_->n_clients;
}

void sse_hub::count_clients_in(std::atomic<int64_t>& counter) {
  impl_->n_clients = &counter;
}

} // namespace orch::api
