#include "orch/api/http_server.hpp"

#include "orch/api/http_screen.hpp"
#include "orch/api/metrics.hpp"
#include "orch/api/openapi.hpp"
#include "orch/api/outputs.hpp"
#include "orch/api/problem.hpp"
#include "orch/api/static_files.hpp"
#include "orch/catalog.hpp"
#include "orch/codec.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/messages.hpp"

#include <caf/send.hpp>
#include <nlohmann/json.hpp>
#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace orch::api {

namespace {

using namespace Pistache;
using nlohmann::json;
using writer_ptr = std::shared_ptr<Http::ResponseWriter>;

// -- responses ----------------------------------------------------------------

// A response header with a name chosen at run time. Pistache 0.0.5 does not
// write headers added with addRaw(), only Header objects.
class text_header : public Http::Header::Header {
public:
  text_header(std::string name, std::string value)
    : name_(std::move(name)), value_(std::move(value)) {
    // nop
  }

  const char* name() const override {
    return name_.c_str();
  }

  void write(std::ostream& os) const override {
    os << value_;
  }

#ifdef SAFE_HEADER_CAST
  uint64_t hash() const override {
    return Http::Header::detail::hash(name_.c_str());
  }
#endif

private:
  std::string name_;
  std::string value_;
};

std::string dump(const json& x) {
  return x.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send(Http::ResponseWriter& w, int status, const std::string& body,
          const char* content_type,
          std::initializer_list<std::pair<const char*, std::string>> headers
          = {}) {
  w.headers().add(std::make_shared<text_header>("Content-Type", content_type));
  for (auto& [name, value] : headers)
    w.headers().add(std::make_shared<text_header>(name, value));
  auto conn = w.headers().tryGet<Http::Header::Connection>();
  if (!conn || conn->control() != Http::ConnectionControl::Close) {
    w.send(static_cast<Http::Code>(status), body);
    return;
  }
  // Pistache 0.0.5 keeps the socket open after "Connection: close"; close
  // our side once the response is written (the peer sees EOF, and the
  // reactor drops the connection on its next read).
  std::weak_ptr<Tcp::Peer> peer = w.peer();
  w.send(static_cast<Http::Code>(status), body)
    .then(
      [peer](ssize_t) {
        if (auto p = peer.lock())
          ::shutdown(p->fd(), SHUT_RDWR);
      },
      [peer](std::exception_ptr) {
        if (auto p = peer.lock())
          ::shutdown(p->fd(), SHUT_RDWR);
      });
}

// -- answers written past Pistache's write path -------------------------------

// The socket of a keep-alive HTTP/1.1 request, duplicated on its reactor
// thread, so that the thread that has the answer (a submit's, a lookup's
// or a list page's) can write it itself: one sendmsg from the body, which
// a list page's group shares (ADR 0005). Through ResponseWriter, Pistache
// 0.0.5 copies an answer into a growing stream buffer, then into a
// RawBuffer, then twice more into its write queue, and wakes the reactor
// thread to send it; for 60 kB list pages that was a quarter of the
// api-node's CPU. The duplicate keeps the socket open: Pistache closes its
// own descriptor when the client goes, and the kernel may hand that number
// to the next connection at once.
class direct_socket {
public:
  // The duplicate, or none (the answer then goes through Pistache) when
  // the connection is not kept alive or not HTTP/1.1.
  static std::shared_ptr<const direct_socket> of(const Http::Request& req,
                                                 Http::ResponseWriter& w) {
    auto result = std::make_shared<direct_socket>();
    auto conn = w.headers().tryGet<Http::Header::Connection>();
    if (req.version() != Http::Version::Http11 || !conn
        || conn->control() != Http::ConnectionControl::KeepAlive)
      return result;
    if (auto peer = w.getPeer())
      result->fd_ = ::fcntl(peer->fd(), F_DUPFD_CLOEXEC, 0);
    struct stat st{};
    if (result->fd_ >= 0 && ::fstat(result->fd_, &st) == 0) {
      result->dev_ = st.st_dev;
      result->ino_ = st.st_ino;
    }
    return result;
  }

  direct_socket() = default;
  direct_socket(const direct_socket&) = delete;
  direct_socket& operator=(const direct_socket&) = delete;

  ~direct_socket() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  int fd() const {
    return fd_;
  }

  // Whether `fd` (Pistache's descriptor) is still this socket. When
  // Pistache has given the connection up (the client went, or its header
  // timeout answered 408), the number may already be another connection's.
  bool same_socket(int fd) const {
    struct stat st{};
    return ::fstat(fd, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
  }

  // The status `send_direct` wrote, 0 if none: the request's metrics take
  // it (the writer never saw the answer).
  int sent() const {
    return sent_.load(std::memory_order_acquire);
  }

  void mark_sent(int status) const {
    sent_.store(status, std::memory_order_release);
  }

private:
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  mutable std::atomic<int> sent_{0};
};

// Sends like `send`, written directly on `sock` when it has a socket. What
// the socket buffer does not take at once goes through Pistache's write
// queue, which its reactor thread drains as the client reads (nothing else
// is queued for the connection: its client waits for this answer). An
// answer for a connection Pistache has given up is dropped; closing the
// duplicate then ends the connection.
void send_direct(
  Http::ResponseWriter& w, const direct_socket& sock, int status,
  const std::string& body, const char* content_type,
  std::initializer_list<std::pair<const char*, std::string>> headers = {}) {
  auto peer = w.getPeer();
  if (sock.fd() < 0 || !peer) {
    send(w, status, body, content_type, headers);
    return;
  }
  if (!sock.same_socket(peer->fd()))
    return;
  auto code = static_cast<Http::Code>(status);
  std::ostringstream os;
  os << "HTTP/1.1 " << status << ' ' << Http::codeString(code) << "\r\n";
  for (const auto& h : w.headers().list()) {
    os << h->name() << ": ";
    h->write(os);
    os << "\r\n";
  }
  for (auto& [name, value] : headers)
    os << name << ": " << value << "\r\n";
  os << "Content-Type: " << content_type << "\r\nContent-Length: "
     << body.size() << "\r\n\r\n";
  auto head = os.str();
  sock.mark_sent(status);
  // As ResponseWriter::send does: the connection now waits for a request.
  peer->setIdle(true);
  iovec iov[2] = {{head.data(), head.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  auto sent = ::sendmsg(sock.fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    // The client has gone, or the answer cannot be sent: end the
    // connection rather than leave its client waiting.
    ::shutdown(sock.fd(), SHUT_RDWR);
    return;
  }
  auto done = static_cast<size_t>(std::max<ssize_t>(sent, 0));
  if (done == head.size() + body.size())
    return;
  std::string rest;
  if (done < head.size())
    rest.append(head, done, std::string::npos).append(body);
  else
    rest.append(body, done - head.size(), std::string::npos);
  auto size = rest.size();
  // Pistache writes the rest on its own descriptor: it must still be this
  // connection's (its write queue has the same window for every answer).
  if (!sock.same_socket(peer->fd())) {
    ::shutdown(sock.fd(), SHUT_RDWR);
    return;
  }
  peer->send(RawBuffer{std::move(rest), size});
}

void send_json(Http::ResponseWriter& w, int status, const json& body) {
  send(w, status, dump(body), "application/json");
}

void send_problem(Http::ResponseWriter& w, const caf::error& err) {
  auto p = to_problem(err);
  if (p.status >= 500)
    spdlog::warn("HTTP {}: {}", p.status, render(err));
  if (p.retry_after > 0)
    send(w, p.status, p.body, "application/problem+json",
         {{"Retry-After", std::to_string(p.retry_after)}});
  else
    send(w, p.status, p.body, "application/problem+json");
}

// GET of a static file (dashboard, docs): 304 on a matching If-None-Match.
void send_static(const Http::Request& req, Http::ResponseWriter& w,
                 const static_file& f) {
  if (auto inm = req.headers().tryGetRaw("If-None-Match");
      inm && inm->value().find(f.etag) != std::string::npos) {
    send(w, 304, "", f.content_type.c_str(),
         {{"ETag", f.etag}, {"Cache-Control", f.cache_control}});
    return;
  }
  send(w, 200, f.body, f.content_type.c_str(),
       {{"ETag", f.etag},
        {"Cache-Control", f.cache_control},
        {"Content-Security-Policy", f.content_security_policy},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"}});
}

// -- request helpers ----------------------------------------------------------

std::string url_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(in[i + 1])
        && std::isxdigit(in[i + 2])) {
      out += static_cast<char>(std::stoi(std::string{in.substr(i + 1, 2)},
                                         nullptr, 16));
      i += 2;
    } else if (in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

std::optional<std::string> query_param(const Http::Request& req,
                                       const std::string& name) {
  auto val = req.query().get(name);
  if (!val)
    return std::nullopt;
  return url_decode(*val);
}

// Accepts application/json and any +json type, with parameters. A request
// without a Content-Type is read as JSON, as most JSON APIs do.
bool is_json_content(const Http::Request& req) {
  auto ct = req.headers().tryGet<Http::Header::ContentType>();
  if (!ct)
    return true;
  auto str = ct->mime().toString();
  for (auto& c : str)
    c = static_cast<char>(std::tolower(c));
  if (auto semi = str.find(';'); semi != std::string::npos)
    str.resize(semi);
  while (!str.empty() && str.back() == ' ')
    str.pop_back();
  return str == "application/json"
         || (str.size() > 5 && str.compare(0, 12, "application/") == 0
             && str.compare(str.size() - 5, 5, "+json") == 0);
}

// Marks a connection whose socket was handed to the SSE hub (peer data
// under this key). From then on Pistache must neither read requests from it
// nor time it out; see `hold_for_hub`.
constexpr const char* sse_mark_key = "orch.sse";
struct sse_mark {
  bool held = false;
};

// Pistache 0.0.5 answers 408 on, and closes, a connection whose parser has
// waited for a request line longer than the header timeout; after a
// request it resets the parser to that state. For a connection the hub
// streams on, we park the parser in the body step of a request that never
// completes: Pistache never times that step out, and the screening handler
// drops all further input of the connection, so it never completes.
void hold_for_hub(const std::shared_ptr<Tcp::Peer>& peer) {
  static constexpr char head[]
    = "GET /.orch-sse-hold HTTP/1.1\r\nContent-Length: 1\r\n\r\n";
  auto parser = Http::Handler::getParser(peer);
  if (parser && parser->feed(head, sizeof(head) - 1))
    parser->parse();
}

// Splits a comma-separated query parameter; an empty or missing one gives
// no items.
std::vector<std::string> comma_list(const Http::Request& req,
                                    const std::string& name) {
  std::vector<std::string> out;
  auto val = query_param(req, name);
  if (!val || val->empty())
    return out;
  size_t pos = 0;
  while (pos <= val->size()) {
    auto end = val->find(',', pos);
    if (end == std::string::npos)
      end = val->size();
    out.push_back(val->substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// The `status` filter of GET /jobs and GET /events.
std::vector<job_status> status_filter(const Http::Request& req,
                                      std::vector<field_error>& errors) {
  std::vector<job_status> out;
  for (auto& name : comma_list(req, "status")) {
    if (auto s = parse_job_status(name))
      out.push_back(*s);
    else
      errors.push_back({"status", "'" + name
                                    + "' is not one of pending, running, "
                                      "completed, failed, cancelled"});
  }
  return out;
}

// -- routing ------------------------------------------------------------------

using params = std::vector<std::string>;
using handler_fn = std::function<void(const Http::Request&,
                                      Http::ResponseWriter&, const params&)>;

struct route {
  /// Segments; "{}" matches any one segment.
  std::vector<std::string> pattern;
  std::map<Http::Method, handler_fn> methods;
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    auto end = path.find('/', pos);
    if (end == std::string::npos)
      end = path.size();
    out.push_back(path.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// -- metrics ------------------------------------------------------------------

// Status codes whose counters a route reaches without a lock.
constexpr int min_code = 100;
constexpr int max_code = 599;
constexpr size_t max_methods = 16;

// The metric children of one route and method, resolved on first use and
// then reached without a lock or a map lookup.
struct method_stats {
  metrics::histogram* duration = nullptr;
  std::array<std::atomic<metrics::counter*>, max_code - min_code + 1> codes{};
};

// The metrics of one route pattern, by method.
struct route_stats {
  explicit route_stats(std::string x) : label(std::move(x)) {
    // nop
  }

  ~route_stats() {
    for (auto& m : methods)
      delete m.load();
  }

  route_stats(const route_stats&) = delete;
  route_stats& operator=(const route_stats&) = delete;

  std::string label;
  std::array<std::atomic<method_stats*>, max_methods> methods{};
};

// The request a reactor thread serves: `handler` starts it, `dispatch`
// names its route, and `detach` takes it along when the answer comes later.
struct request_clock {
  route_stats* route = nullptr;
  Http::Method method = Http::Method::Get;
  std::chrono::steady_clock::time_point start;
  bool detached = false;
};

thread_local request_clock* current_clock = nullptr;

// What a writer sent. ResponseWriter::send records its code and size; a
// writer that sent nothing through it served a file (serveFile) or handed
// its connection to the event hub, which both begin with 200.
int sent_status(const Http::ResponseWriter& w) {
  return w.getResponseSize() > 0 ? static_cast<int>(w.getResponseCode())
                                 : 200;
}

// Every route's metrics. Detached writers hold a reference: they may be
// answered after the server is gone.
struct http_stats {
  std::shared_ptr<api_metrics> metrics;
  /// Parallel to impl::routes.
  std::vector<std::unique_ptr<route_stats>> routes;
  route_stats unmatched{"unmatched"};

  method_stats& of(route_stats& r, Http::Method method) {
    auto& slot = r.methods[static_cast<size_t>(method) % max_methods];
    if (auto* m = slot.load(std::memory_order_acquire))
      return *m;
    auto fresh = std::make_unique<method_stats>();
    fresh->duration = &metrics->http_duration.with(
      {r.label, Http::methodString(method)});
    method_stats* expected = nullptr;
    if (slot.compare_exchange_strong(expected, fresh.get(),
                                     std::memory_order_acq_rel))
      return *fresh.release();
    return *expected; // another thread was first
  }

  // Counts the answer to `clock`'s request and observes its latency.
  // `direct` is the status written past the writer, if one was.
  void finish(const request_clock& clock, const Http::ResponseWriter& w,
              int direct = 0) {
    auto& r = clock.route != nullptr ? *clock.route : unmatched;
    auto& m = of(r, clock.method);
    m.duration->observe(std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - clock.start)
                          .count());
    auto code = direct != 0 ? direct : sent_status(w);
    if (code < min_code || code > max_code) {
      metrics->http_requests
        .with({r.label, Http::methodString(clock.method),
               std::to_string(code)})
        .inc();
      return;
    }
    auto& slot = m.codes[static_cast<size_t>(code - min_code)];
    auto* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      // Idempotent: every thread resolves the same child.
      c = &metrics->http_requests.with(
        {r.label, Http::methodString(clock.method), std::to_string(code)});
      slot.store(c, std::memory_order_release);
    }
    c->inc();
  }
};

// The route's pattern as the OpenAPI document writes it (/jobs/{id}), else
// the router's own form (/jobs/{}).
std::string route_label(const std::vector<std::string>& pattern,
                        const std::vector<std::vector<std::string>>& paths) {
  auto is_param = [](const std::string& seg) {
    return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
  };
  auto join = [](const std::vector<std::string>& segs) {
    std::string out;
    for (auto& seg : segs)
      out += "/" + (seg == "{**}" ? std::string{"{}"} : seg);
    return out.empty() ? std::string{"/"} : out;
  };
  for (auto& doc : paths) {
    if (doc.size() != pattern.size())
      continue;
    bool same = true;
    for (size_t i = 0; i < doc.size() && same; ++i)
      same = is_param(pattern[i]) ? is_param(doc[i]) : doc[i] == pattern[i];
    if (same)
      return join(doc);
  }
  return join(pattern);
}

} // namespace

struct http_server::impl {
  http_context ctx;
  docs_site docs{ctx.cfg.docs_dir};
  std::vector<route> routes;
  std::unique_ptr<Http::Endpoint> endpoint;
  /// Per-route request metrics (null without ctx.metrics).
  std::shared_ptr<http_stats> stats;

  explicit impl(http_context c) : ctx(std::move(c)) {
    add("/", Http::Method::Get, [this](auto&, auto& w, auto&) {
      send_json(w, 200,
                {{"name", "orch"},
                 {"version", ctx.cfg.version},
                 {"message", ctx.cfg.echo_message}});
    });
    add("/health", Http::Method::Get, [](auto&, auto& w, auto&) {
      send_json(w, 200, {{"status", "ok"}});
    });
    add("/version", Http::Method::Get, [this](auto&, auto& w, auto&) {
      send_json(w, 200, {{"version", ctx.cfg.version},
                         {"image_tag", ctx.cfg.image_tag}});
    });
    add("/ready", Http::Method::Get,
        [this](auto&, auto& w, auto&) { ready(w); });
    add("/workers", Http::Method::Get,
        [this](auto&, auto& w, auto&) { list_workers(w); });
    add("/jobs", Http::Method::Post,
        [this](auto& req, auto& w, auto&) { submit_job(req, w); });
    add("/jobs", Http::Method::Get,
        [this](auto& req, auto& w, auto&) { list_jobs(req, w); });
    add("/jobs/{}", Http::Method::Get,
        [this](auto& req, auto& w, auto& ps) { get_job(req, w, ps[0]); });
    add("/jobs/{}", Http::Method::Delete,
        [this](auto&, auto& w, auto& ps) { cancel_job(w, ps[0]); });
    add("/jobs/{}/cancel", Http::Method::Post,
        [this](auto&, auto& w, auto& ps) { cancel_job(w, ps[0]); });
    add("/jobs/{}/logs", Http::Method::Get,
        [this](auto& req, auto& w, auto& ps) { get_logs(req, w, ps[0]); });
    add("/jobs/{}/outputs", Http::Method::Get,
        [this](auto&, auto& w, auto& ps) { list_outputs(w, ps[0]); });
    add("/jobs/{}/outputs/{**}", Http::Method::Get,
        [this](auto& req, auto& w, auto& ps) {
          get_output(req, w, ps[0], ps[1]);
        });
    add("/events", Http::Method::Get, [this](auto& req, auto& w, auto&) {
      stream_events(req, w, std::nullopt);
    });
    add("/jobs/{}/events", Http::Method::Get,
        [this](auto& req, auto& w, auto& ps) {
          stream_events(req, w, ps[0]);
        });
    add("/pipelines", Http::Method::Get,
        [this](auto&, auto& w, auto&) { list_pipelines(w); });
    add("/pipelines/{}", Http::Method::Get,
        [this](auto&, auto& w, auto& ps) { get_pipeline(w, ps[0]); });
    add("/openapi.json", Http::Method::Get, [](auto&, auto& w, auto&) {
      send(w, 200, openapi_document(), "application/json");
    });
    add("/metrics", Http::Method::Get,
        [this](auto&, auto& w, auto&) { serve_metrics(w); });
    add("/ui", Http::Method::Get, [this](auto& req, auto& w, auto&) {
      serve_ui(req, w, "index.html");
    });
    add("/ui/{}", Http::Method::Get, [this](auto& req, auto& w, auto& ps) {
      serve_ui(req, w, ps[0]);
    });
    add("/docs", Http::Method::Get, [this](auto& req, auto& w, auto&) {
      serve_docs(req, w, "index.html");
    });
    add("/docs/{}", Http::Method::Get, [this](auto& req, auto& w, auto& ps) {
      serve_docs(req, w, ps[0]);
    });
  }

  void add(const std::string& path, Http::Method method, handler_fn fn) {
    auto pattern = split_path(path);
    for (auto& r : routes)
      if (r.pattern == pattern) {
        r.methods[method] = std::move(fn);
        return;
      }
    routes.push_back(route{pattern, {{method, std::move(fn)}}});
  }

  void dispatch(const Http::Request& req, Http::ResponseWriter& w) {
    if (auto verdict = req.headers().tryGetRaw(reject_header)) {
      if (verdict->value() == "413")
        send_problem(w, make_error(ec::payload_too_large,
                                   "the body must be at most "
                                     + std::to_string(defaults::max_body_bytes)
                                     + " bytes"));
      else if (verdict->value() == "431")
        send_problem(w, make_error(ec::headers_too_large,
                                   "request headers must be at most "
                                     + std::to_string(
                                       defaults::max_header_bytes)
                                     + " bytes"));
      else
        send_problem(w, make_error(ec::malformed_request,
                                   "malformed request: the request line or "
                                   "Content-Length is not valid HTTP/1.1"));
      return;
    }
    auto target_length = req.resource().size() + req.query().as_str().size();
    if (target_length > defaults::max_url_length) {
      send_problem(w, make_error(ec::uri_too_long,
                                 "the request target must be at most "
                                   + std::to_string(defaults::max_url_length)
                                   + " bytes"));
      return;
    }
    if (req.query().parameters().size() > defaults::max_query_params) {
      send_problem(w, make_error(ec::malformed_request,
                                 "at most "
                                   + std::to_string(defaults::max_query_params)
                                   + " query parameters are allowed"));
      return;
    }
    auto segments = split_path(req.resource());
    for (auto& r : routes) {
      // "{**}" (last) matches one or more segments: a relative file path.
      bool rest = !r.pattern.empty() && r.pattern.back() == "{**}";
      if (rest ? segments.size() < r.pattern.size()
               : r.pattern.size() != segments.size())
        continue;
      params ps;
      bool match = true;
      for (size_t i = 0; i < r.pattern.size() && match; ++i) {
        if (r.pattern[i] == "{**}") {
          std::string path;
          for (size_t j = i; j < segments.size(); ++j) {
            if (j > i)
              path += '/';
            path += url_decode(segments[j]);
          }
          ps.push_back(std::move(path));
        } else if (r.pattern[i] == "{}") {
          ps.push_back(url_decode(segments[i]));
        } else {
          match = r.pattern[i] == segments[i];
        }
      }
      if (!match)
        continue;
      if (current_clock != nullptr && stats
          && static_cast<size_t>(&r - routes.data()) < stats->routes.size())
        current_clock->route = stats->routes[&r - routes.data()].get();
      auto m = r.methods.find(req.method());
      if (m == r.methods.end()) {
        std::string allow;
        for (auto& [method, fn] : r.methods) {
          if (!allow.empty())
            allow += ", ";
          allow += Http::methodString(method);
        }
        auto p = to_problem(make_error(
          ec::method_not_allowed, std::string{Http::methodString(req.method())}
                                    + " is not allowed on " + req.resource()
                                    + "; allowed: " + allow));
        send(w, p.status, p.body, "application/problem+json",
             {{"Allow", allow}});
        return;
      }
      m->second(req, w, ps);
      return;
    }
    send_problem(w, make_error(ec::not_found,
                               "no route for " + req.resource()));
  }

  // GET /ui and /ui/{asset}: the dashboard, embedded in the binary.
  void serve_ui(const Http::Request& req, Http::ResponseWriter& w,
                const std::string& name) {
    if (auto f = ui_file(name))
      send_static(req, w, *f);
    else
      send_problem(w, make_error(ec::not_found, "no dashboard file " + name));
  }

  // GET /docs and /docs/{asset}: Swagger UI, or the list of routes.
  void serve_docs(const Http::Request& req, Http::ResponseWriter& w,
                  const std::string& name) {
    if (auto f = docs.get(name))
      send_static(req, w, *f);
    else
      send_problem(w, make_error(ec::not_found, "no docs file " + name));
  }

  // This reactor thread's own connection, for reads it runs itself.
  job_store& reactor_store() {
    thread_local std::unique_ptr<job_store> store;
    if (!store)
      store = std::make_unique<job_store>(ctx.database_url);
    return *store;
  }

  // Moves the writer out so that a pool actor can answer later. Counts the
  // request as in flight until the answer is sent (the last reference
  // goes), so that a draining api-node can wait for it.
  // The request's metrics go along and are taken when the answer is sent;
  // `sock`, when the answer may be sent past the writer, tells its status.
  writer_ptr detach(Http::ResponseWriter& w,
                    std::shared_ptr<const direct_socket> sock = nullptr) {
    auto probe = ctx.probe;
    if (probe)
      ++probe->requests_in_flight;
    std::shared_ptr<http_stats> timed;
    request_clock clock;
    if (current_clock != nullptr && stats) {
      clock = *current_clock;
      current_clock->detached = true;
      timed = stats;
    }
    return writer_ptr{new Http::ResponseWriter(std::move(w)),
                      [probe, timed, clock,
                       sock = std::move(sock)](Http::ResponseWriter* ptr) {
                        if (timed)
                          timed->finish(clock, *ptr, sock ? sock->sent() : 0);
                        delete ptr;
                        if (probe)
                          --probe->requests_in_flight;
                      }};
  }

  // Resolves each route's metric label; run once the routes are complete.
  void init_metrics() {
    if (!ctx.metrics || stats)
      return;
    std::vector<std::vector<std::string>> paths;
    try {
      auto doc = json::parse(openapi_document());
      for (auto& [path, ops] : doc.at("paths").items())
        paths.push_back(split_path(path));
    } catch (const json::exception&) {
      // No document: the labels keep the router's form.
    }
    auto s = std::make_shared<http_stats>();
    s->metrics = ctx.metrics;
    for (auto& r : routes)
      s->routes.push_back(
        std::make_unique<route_stats>(route_label(r.pattern, paths)));
    stats = std::move(s);
  }

  // Counts a request answered on the reactor thread (not detached).
  void finish(const request_clock& clock, const Http::ResponseWriter& w) {
    if (stats && !clock.detached)
      stats->finish(clock, w);
  }

  // GET /metrics: the Prometheus text format. Jobs by status and the
  // workers are read through this reactor thread's connection at most
  // once per defaults::metrics_cache_ttl.
  void serve_metrics(Http::ResponseWriter& w) {
    if (!ctx.metrics) {
      send(w, 200, "", metrics::content_type);
      return;
    }
    ctx.metrics->refresh(reactor_store(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                           defaults::metrics_cache_ttl));
    send(w, 200, ctx.metrics->render(), metrics::content_type);
  }

  void ready(Http::ResponseWriter& w) {
    if (ctx.probe && ctx.probe->draining) {
      send_json(w, 503, {{"status", "draining"},
                         {"database", "unknown"},
                         {"scheduler", "draining"}});
      return;
    }
    if (!ctx.probe || !ctx.probe->running) {
      send_json(w, 503, {{"status", "unavailable"},
                         {"database", "unknown"},
                         {"scheduler", "stopped"}});
      return;
    }
    ctx.pool->run([out = detach(w)](job_store& store) {
      auto err = store.ping();
      send_json(*out, err ? 503 : 200,
                {{"status", err ? "unavailable" : "ok"},
                 {"database", err ? "unreachable" : "ok"},
                 {"scheduler", "running"}});
    });
  }

  void list_workers(Http::ResponseWriter& w) {
    ctx.pool->run([out = detach(w)](job_store& store) {
      auto rows = store.list_workers(
        std::chrono::duration_cast<std::chrono::milliseconds>(
          defaults::worker_stale_after));
      if (!rows) {
        send_problem(*out, rows.error());
        return;
      }
      auto list = json::array();
      for (auto& r : *rows)
        list.push_back({{"id", r.id},
                        {"host", r.host},
                        {"slots", r.slots},
                        {"running", r.running},
                        {"executors", r.executors},
                        {"connected_at", format_rfc3339(r.connected_at)},
                        {"last_seen", format_rfc3339(r.last_seen)}});
      send_json(*out, 200, {{"workers", std::move(list)}});
    });
  }

  void submit_job(const Http::Request& req, Http::ResponseWriter& w) {
    if (req.body().size() > defaults::max_body_bytes) {
      send_problem(w, make_error(ec::payload_too_large,
                                 "the body must be at most "
                                   + std::to_string(defaults::max_body_bytes)
                                   + " bytes"));
      return;
    }
    if (!is_json_content(req)) {
      send_problem(w, make_error(ec::unsupported_media_type,
                                 "send the job as application/json"));
      return;
    }
    auto sub = codec::parse_submission(req.body());
    if (!sub) {
      send_problem(w, sub.error());
      return;
    }
    if (auto err = apply_catalog(*sub)) {
      send_problem(w, err);
      return;
    }
    if (auto key = req.headers().tryGetRaw("Idempotency-Key")) {
      auto value = key->value();
      if (value.empty() || value.size() > defaults::max_idempotency_key) {
        send_problem(w, make_validation_error(
                          {{"Idempotency-Key",
                            "must be 1 to "
                              + std::to_string(defaults::max_idempotency_key)
                              + " characters long"}}));
        return;
      }
      sub->idempotency_key = value;
    }
    auto sock = direct_socket::of(req, w);
    ctx.pool->submit(
      std::move(*sub), [sock, out = detach(w, sock), metrics = ctx.metrics](
                         caf::expected<submit_result> result) {
        if (!result) {
          send_problem(*out, result.error());
          return;
        }
        auto& x = result->value;
        std::string body;
        codec::append_json(body, x);
        if (result->replayed)
          send_direct(*out, *sock, 200, body, "application/json",
                      {{"Location", "/jobs/" + x.id},
                       {"Idempotent-Replayed", "true"}});
        else
          send_direct(*out, *sock, 201, body, "application/json",
                      {{"Location", "/jobs/" + x.id}});
        if (!result->replayed && metrics)
          metrics->job_submitted(x.pipeline_name);
      });
  }

  // Validates a job id path segment; answers 422 and returns nothing when
  // it is not a UUID.
  static std::optional<std::string> job_id(Http::ResponseWriter& w,
                                           const std::string& id) {
    if (!is_uuid(id)) {
      send_problem(w, make_validation_error({{"id", "must be a UUID"}}));
      return std::nullopt;
    }
    std::string lower = id;
    for (auto& c : lower)
      c = static_cast<char>(std::tolower(c));
    return lower;
  }

  void cancel_job(Http::ResponseWriter& w, const std::string& raw_id) {
    auto id = job_id(w, raw_id);
    if (!id)
      return;
    ctx.pool->run([out = detach(w), id = *id,
                   metrics = ctx.metrics](job_store& store) {
      auto x = store.cancel_job(id);
      if (!x) {
        if (code_of(x.error()) == ec::conflict) {
          // 409 names the job's status in the problem body.
          auto p = to_problem(x.error());
          auto body = json::parse(p.body);
          auto status = detail_of(x.error());
          body["job_status"] = status.substr(status.rfind(' ') + 1);
          body["job_id"] = id;
          send(*out, p.status, dump(body), "application/problem+json");
          return;
        }
        send_problem(*out, x.error());
        return;
      }
      spdlog::info("job {}: cancel accepted ({})", id,
                   x->was_running ? "running: worker notified" : "pending");
      // Cancelled here means this call committed the pending -> cancelled
      // transition (a cancel of an ended job is a 409).
      if (metrics && x->value.status == job_status::cancelled)
        metrics->job_ended({x->value.id, x->value.pipeline_name,
                            x->value.status, x->value.attempt,
                            x->value.created_at, x->value.started_at,
                            x->value.completed_at});
      send_json(*out, 200, codec::to_json(x->value));
    });
  }

  void get_job(const Http::Request& req, Http::ResponseWriter& w,
               const std::string& raw_id) {
    auto id = job_id(w, raw_id);
    if (!id)
      return;
    // Batched on the pool's lookup actor: the lookups that arrive together
    // share one statement, and its responder answers them.
    auto sock = direct_socket::of(req, w);
    ctx.pool->lookup(*id, [sock, out = detach(w, sock)](caf::expected<job> x) {
      if (!x) {
        send_problem(*out, x.error());
        return;
      }
      std::string body;
      codec::append_json(body, *x);
      send_direct(*out, *sock, 200, body, "application/json");
    });
  }

  // Checks a submission against the pipeline catalog: the pipeline must
  // exist, the parameters must pass its schema, and the stored parameters
  // are the resolved ones (defaults filled in).
  caf::error apply_catalog(job_submission& sub) {
    if (!ctx.pipelines || !ctx.pipelines->configured())
      return caf::none;
    auto p = ctx.pipelines->find(sub.pipeline_name);
    if (p == nullptr)
      return make_validation_error(
        {{"pipeline_name",
          "unknown pipeline '" + sub.pipeline_name
            + "'; GET /pipelines lists the pipelines",
          "catalog"}});
    json params;
    try {
      params = json::parse(sub.parameters_json);
    } catch (const json::exception&) {
      return make_error(ec::malformed_json, "parameters are not JSON");
    }
    auto resolved = catalog::resolve(*p, params);
    if (!resolved)
      return resolved.error();
    sub.parameters_json = dump(*resolved);
    if (sub.parameters_json.size() > defaults::max_parameters_bytes)
      return make_validation_error(
        {{"parameters",
          "must be at most "
            + std::to_string(defaults::max_parameters_bytes)
            + " bytes serialized, defaults included",
          "max_bytes"}});
    sub.executor = p->executor;
    return caf::none;
  }

  void list_pipelines(Http::ResponseWriter& w) {
    auto list = json::array();
    if (ctx.pipelines)
      for (auto& p : ctx.pipelines->pipelines())
        list.push_back(p.to_json());
    send_json(w, 200,
              {{"pipelines", std::move(list)},
               {"catalog", ctx.pipelines && ctx.pipelines->configured()}});
  }

  void get_pipeline(Http::ResponseWriter& w, const std::string& name) {
    const pipeline_spec* p = ctx.pipelines ? ctx.pipelines->find(name)
                                           : nullptr;
    if (p == nullptr) {
      send_problem(w, make_error(ec::not_found, "no pipeline named " + name));
      return;
    }
    send_json(w, 200, p->to_json());
  }

  // GET /jobs/{id}/logs?tail=N&stream=S: text/plain, or JSON lines (one
  // object per line, with timestamps) when the client accepts JSON.
  void get_logs(const Http::Request& req, Http::ResponseWriter& w,
                const std::string& raw_id) {
    auto id = job_id(w, raw_id);
    if (!id)
      return;
    std::vector<field_error> errors;
    int64_t tail = defaults::max_log_tail;
    if (auto t = query_param(req, "tail")) {
      char* end = nullptr;
      errno = 0;
      auto v = std::strtoll(t->c_str(), &end, 10);
      if (t->empty() || *end != '\0' || errno != 0 || v < 1
          || v > defaults::max_log_tail)
        errors.push_back({"tail", "must be an integer from 1 to "
                                    + std::to_string(defaults::max_log_tail)});
      else
        tail = v;
    }
    std::optional<std::string> stream;
    if (auto s = query_param(req, "stream"); s && !s->empty()) {
      auto ok = s->size() <= 32
                && std::all_of(s->begin(), s->end(), [](char c) {
                     return std::islower(static_cast<unsigned char>(c))
                            || std::isdigit(static_cast<unsigned char>(c))
                            || c == '-' || c == '_';
                   });
      if (ok)
        stream = *s;
      else
        errors.push_back({"stream", "must be stdout, stderr or another "
                                    "stream name of the job's log"});
    }
    if (!errors.empty()) {
      send_problem(w, make_validation_error(std::move(errors)));
      return;
    }
    bool as_json = false;
    if (auto accept = req.headers().tryGetRaw("Accept"))
      as_json = accept->value().find("application/json") != std::string::npos
                || accept->value().find("ndjson") != std::string::npos;
    ctx.pool->run([out = detach(w), id = *id, tail, stream,
                   as_json](job_store& store) {
      auto page = store.get_logs(id, tail, stream);
      if (!page) {
        send_problem(*out, page.error());
        return;
      }
      std::string body;
      if (as_json) {
        if (page->dropped_lines > 0)
          body += dump(json{{"truncated", true},
                            {"dropped_lines", page->dropped_lines},
                            {"dropped_bytes", page->dropped_bytes}})
                  + "\n";
        for (auto& l : page->lines)
          body += dump(json{{"id", l.id},
                            {"at", format_rfc3339(l.at)},
                            {"attempt", l.attempt},
                            {"stream", l.stream},
                            {"line", l.line}})
                  + "\n";
        send(*out, 200, body, "application/json");
        return;
      }
      if (page->dropped_lines > 0)
        body += "[orch: " + std::to_string(page->dropped_lines)
                + " earlier lines (" + std::to_string(page->dropped_bytes)
                + " bytes) were dropped by the per-job log cap]\n";
      for (auto& l : page->lines) {
        body += l.line;
        body += '\n';
      }
      send(*out, 200, body, "text/plain; charset=utf-8");
    });
  }

  // Runs `fn(job, dir)` with the work directory of a finished job, or
  // answers 404 (unknown job) / 409 (not finished).
  template <class F>
  void with_finished_job(Http::ResponseWriter& w, const std::string& raw_id,
                         F fn) {
    auto id = job_id(w, raw_id);
    if (!id)
      return;
    ctx.pool->run([this, out = detach(w), id = *id,
                   fn = std::move(fn)](job_store& store) mutable {
      auto x = store.get_job(id);
      if (!x) {
        send_problem(*out, x.error());
        return;
      }
      if (!is_terminal(x->status) || x->attempt == 0) {
        auto err = make_error(ec::conflict,
                              "job " + id + " has not finished; it is "
                                + to_string(x->status));
        auto p = to_problem(err);
        auto body = json::parse(p.body);
        body["job_status"] = to_string(x->status);
        body["job_id"] = id;
        send(*out, p.status, dump(body), "application/problem+json");
        return;
      }
      fn(*out, *x, work_dir(ctx.work_root, x->id, x->attempt));
    });
  }

  void list_outputs(Http::ResponseWriter& w, const std::string& raw_id) {
    with_finished_job(w, raw_id, [](Http::ResponseWriter& out, const job& x,
                                    const std::filesystem::path& dir) {
      auto files = api::list_outputs(dir, x.executor,
                                     defaults::max_output_files);
      auto list = json::array();
      if (files)
        for (auto& f : *files)
          list.push_back({{"path", f.path},
                          {"size", f.size},
                          {"sha256", f.sha256},
                          {"url", "/jobs/" + x.id + "/outputs/" + f.path}});
      send_json(out, 200,
                {{"job_id", x.id},
                 {"attempt", x.attempt},
                 {"files", std::move(list)},
                 {"truncated", files && files->size()
                                          >= defaults::max_output_files}});
    });
  }

  void get_output(const Http::Request&, Http::ResponseWriter& w,
                  const std::string& raw_id, const std::string& rel) {
    with_finished_job(w, raw_id, [rel](Http::ResponseWriter& out,
                                       const job& x,
                                       const std::filesystem::path& dir) {
      auto file = resolve_output(dir, rel);
      if (!file) {
        send_problem(out, file.error());
        return;
      }
      // A job's files are user data served on the dashboard's origin: an
      // HTML output must not run script with the page's access.
      out.headers().add(std::make_shared<text_header>(
        "Content-Security-Policy", "sandbox; default-src 'none'"));
      out.headers().add(
        std::make_shared<text_header>("X-Content-Type-Options", "nosniff"));
      try {
        Http::serveFile(out, file->string(),
                        Http::Mime::MediaType::fromString(
                          output_media_type(*file)));
      } catch (const std::exception& e) {
        send_problem(out, make_error(ec::not_found,
                                     "no output named " + rel));
      }
    });
  }

  // GET /events and GET /jobs/{id}/events: validates the request, then
  // hands the connection to the event hub, which answers from then on (see
  // sse_hub.hpp). Nothing is sent through Pistache on success.
  void stream_events(const Http::Request& req, Http::ResponseWriter& w,
                     const std::optional<std::string>& raw_id) {
    sse_subscription sub;
    std::vector<field_error> errors;
    if (raw_id) {
      auto id = job_id(w, *raw_id);
      if (!id)
        return;
      sub.job_id = *id;
    } else {
      for (auto s : status_filter(req, errors))
        sub.statuses.push_back(to_string(s));
      if (auto name = query_param(req, "pipeline_name"); name && !name->empty())
        sub.pipeline_name = *name;
    }
    auto types = comma_list(req, "types");
    if (!types.empty()) {
      sub.types = 0;
      for (auto& t : types) {
        if (t == "status")
          sub.types |= sse_status;
        else if (t == "progress")
          sub.types |= sse_progress;
        else if (t == "log")
          sub.types |= sse_log;
        else if (t == "complete")
          sub.types |= sse_complete;
        else
          errors.push_back({"types", "'" + t
                                       + "' is not one of status, progress, "
                                         "log, complete"});
      }
    }
    std::optional<std::string> last;
    if (auto h = req.headers().tryGetRaw("Last-Event-ID"))
      last = h->value();
    else if (auto q = query_param(req, "last_event_id"))
      last = *q;
    if (last && !last->empty()) {
      char* end = nullptr;
      errno = 0;
      auto v = std::strtoll(last->c_str(), &end, 10);
      if (*end != '\0' || errno != 0 || v < 0)
        errors.push_back({"Last-Event-ID",
                          "must be an event id: a non-negative integer"});
      else
        sub.last_event_id = v;
    }
    if (!errors.empty()) {
      send_problem(w, make_validation_error(std::move(errors)));
      return;
    }
    if (ctx.events == nullptr || (ctx.probe && ctx.probe->draining)) {
      send_problem(w, make_error(ec::unavailable,
                                 "this api-node serves no event streams now"));
      return;
    }
    if (sub.job_id) {
      auto& store = reactor_store();
      auto x = store.get_job(*sub.job_id);
      if (!x) {
        send_problem(w, x.error());
        return;
      }
      // A job that ended before Last-Event-ID has nothing more to say: 204
      // tells an EventSource to stop reconnecting. The hub ends a job
      // stream at the job's complete marker, so only what `types` lets
      // through up to the marker counts: log lines stored after it, or a
      // filtered-out marker, would otherwise get a 200 and a stream that
      // never ends (or closes at once, and the client reconnects forever).
      if (is_terminal(x->status) && sub.last_event_id) {
        constexpr size_t scan = 1000;
        auto rest = store.stream_events(*sub.last_event_id,
                                        std::numeric_limits<int64_t>::max(),
                                        sub.job_id, scan);
        if (!rest) {
          send_problem(w, rest.error());
          return;
        }
        bool wanted = false;
        bool marker = false;
        for (auto& e : *rest) {
          wanted = wanted || (sub.types & sse_type_bit(e.type)) != 0;
          if (e.type == stream_event::kind::complete) {
            marker = true;
            break;
          }
        }
        // No marker among fewer than `scan` rows: it is at or before
        // Last-Event-ID.
        if (marker ? !wanted : rest->size() < scan) {
          w.send(Http::Code::No_Content);
          return;
        }
      }
    }
    auto peer = w.peer();
    int fd = peer ? ::fcntl(peer->fd(), F_DUPFD_CLOEXEC, 0) : -1;
    if (fd < 0) {
      send_problem(w, make_error(ec::internal,
                                 "cannot take over the connection"));
      return;
    }
    if (auto err = ctx.events->attach(fd, std::move(sub))) {
      ::close(fd);
      send_problem(w, err);
      return;
    }
    peer->putData(sse_mark_key, std::make_shared<sse_mark>());
  }

  void list_jobs(const Http::Request& req, Http::ResponseWriter& w) {
    job_filter filter;
    std::vector<field_error> errors;
    filter.statuses = status_filter(req, errors);
    if (auto name = query_param(req, "pipeline_name"); name && !name->empty())
      filter.pipeline_name = *name;
    if (auto limit = query_param(req, "limit")) {
      char* end = nullptr;
      errno = 0;
      auto v = std::strtol(limit->c_str(), &end, 10);
      if (limit->empty() || *end != '\0' || errno != 0 || v < 1
          || v > defaults::max_page_size)
        errors.push_back({"limit", "must be an integer from 1 to "
                                     + std::to_string(defaults::max_page_size)});
      else
        filter.limit = static_cast<int32_t>(v);
    }
    if (auto cursor = query_param(req, "cursor"); cursor && !cursor->empty()) {
      auto seq = codec::decode_cursor(*cursor);
      if (seq)
        filter.before_seq = *seq;
      else
        for (auto& fe : field_errors_of(seq.error()))
          errors.push_back(fe);
    }
    if (!errors.empty()) {
      send_problem(w, make_validation_error(std::move(errors)));
      return;
    }
    // Requests for the same page that arrive together share its statement
    // and its body (db_pool::list).
    auto sock = direct_socket::of(req, w);
    ctx.pool->list(std::move(filter), format_page,
                   [sock, out = detach(w, sock)](
                     caf::expected<std::shared_ptr<const std::string>> body) {
                     if (!body) {
                       send_problem(*out, body.error());
                       return;
                     }
                     send_direct(*out, *sock, 200, **body,
                                 "application/json");
                   });
  }

  // The body of `GET /jobs`, written directly: the stored parameters are
  // embedded as they are.
  static std::string format_page(const job_page& page) {
    std::string body = "{\"jobs\":[";
    body.reserve(1024 * (page.jobs.size() + 1));
    for (size_t i = 0; i < page.jobs.size(); ++i) {
      if (i > 0)
        body += ',';
      codec::append_json(body, page.jobs[i]);
    }
    body += "],\"total\":";
    body += std::to_string(page.total);
    body += ",\"next_cursor\":";
    if (page.next_seq)
      codec::append_json_string(body, codec::encode_cursor(*page.next_seq));
    else
      body += "null";
    body += '}';
    return body;
  }
};

namespace {

// HTTP/1.1 connections persist unless the client says otherwise; Pistache
// 0.0.5 closes them unless the request carried "Connection: keep-alive", so
// we state our choice on every response.
void keep_alive(const Http::Request& req, Http::ResponseWriter& w) {
  auto conn = req.headers().tryGet<Http::Header::Connection>();
  bool keep = conn ? conn->control() == Http::ConnectionControl::KeepAlive
                   : req.version() == Http::Version::Http11;
  // Pistache has set its own Connection header already; replace it.
  w.headers().remove<Http::Header::Connection>();
  w.headers().add<Http::Header::Connection>(
    keep ? Http::ConnectionControl::KeepAlive
         : Http::ConnectionControl::Close);
}

// Serves requests: keep-alive policy, then routing. Never sees a request
// that `screen_content_length` rejected, except as its marker.
class handler : public Http::Handler {
public:
  HTTP_PROTOTYPE(handler)

  explicit handler(http_server::impl* impl = nullptr) : impl_(impl) {
    // nop
  }

  void onRequest(const Http::Request& req, Http::ResponseWriter w) override {
    request_clock clock{nullptr, req.method(),
                        std::chrono::steady_clock::now(), false};
    current_clock = &clock;
    try {
      keep_alive(req, w);
      impl_->dispatch(req, w);
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler failed on {}: {}", req.resource(),
                    e.what());
      try {
        send_problem(w, make_error(ec::internal, e.what()));
      } catch (...) {
        // The writer was moved out already; the client sees a closed
        // connection.
      }
    }
    current_clock = nullptr;
    impl_->finish(clock, w);
  }

  http_server::impl* impl() const {
    return impl_;
  }

private:
  http_server::impl* impl_;
};

// Tcp::Handler::associateTransport is private and Http::Handler::onInput
// cannot be called from a subclass. The explicit instantiation below is the
// standard-conforming way to name a private member function; it lets the
// screening handler give its inner handler the transport it runs on.
using associate_fn = void (Tcp::Handler::*)(Tcp::Transport*);
associate_fn associate_transport();
template <associate_fn F>
struct transport_key {
  friend associate_fn associate_transport() {
    return F;
  }
};
template struct transport_key<&Tcp::Handler::associateTransport>;

// What Pistache runs: screens each chunk of input for an unusable
// Content-Length, then feeds the (possibly replaced) bytes to `handler`
// through the public Tcp::Handler interface.
class screening_handler : public Http::Handler {
public:
  explicit screening_handler(http_server::impl* impl)
    : inner_(std::make_shared<handler>(impl)) {
    // nop
  }

  screening_handler(const screening_handler& other)
    : Http::Handler(other), // copies the endpoint's limits and timeouts
      inner_(std::make_shared<handler>(other.inner_->impl())) {
    // nop
  }

  std::shared_ptr<Tcp::Handler> clone() const override {
    return std::make_shared<screening_handler>(*this);
  }

  void onRequest(const Http::Request&, Http::ResponseWriter) override {
    // Never called: input goes to the inner handler.
  }

  void onConnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    bind();
    static_cast<Tcp::Handler&>(*inner_).onConnection(peer);
  }

  void onDisconnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    bind();
    static_cast<Tcp::Handler&>(*inner_).onDisconnection(peer);
  }

  void onInput(const char* buffer, size_t len,
               const std::shared_ptr<Tcp::Peer>& peer) override {
    bind();
    // A connection the SSE hub streams on reads nothing more.
    auto mark = std::static_pointer_cast<sse_mark>(
      peer->tryGetData(sse_mark_key));
    if (mark && mark->held)
      return;
    auto screen = std::static_pointer_cast<request_screen>(
      peer->tryGetData("orch.screen"));
    if (!screen) {
      screen = std::make_shared<request_screen>();
      peer->putData("orch.screen", screen);
    }
    auto bytes = screen->feed({buffer, len});
    if (!bytes.empty())
      static_cast<Tcp::Handler&>(*inner_).onInput(bytes.data(), bytes.size(),
                                                  peer);
    // The request just handled was handed to the SSE hub.
    mark = std::static_pointer_cast<sse_mark>(peer->tryGetData(sse_mark_key));
    if (mark && !mark->held) {
      hold_for_hub(peer);
      mark->held = true;
    }
  }

private:
  void bind() {
    if (!bound_) {
      (static_cast<Tcp::Handler&>(*inner_).*associate_transport())(
        transport());
      // The endpoint configured us; the inner handler does the parsing.
      inner_->setMaxRequestSize(getMaxRequestSize());
      inner_->setMaxResponseSize(getMaxResponseSize());
      inner_->setHeaderTimeout(getHeaderTimeout());
      inner_->setBodyTimeout(getBodyTimeout());
      bound_ = true;
    }
  }

  std::shared_ptr<handler> inner_;
  bool bound_ = false;
};

} // namespace

std::vector<std::string> http_server::routes() {
  impl table{http_context{}};
  std::vector<std::string> result;
  for (auto& r : table.routes)
    for (auto& [method, fn] : r.methods) {
      std::string path;
      for (auto& seg : r.pattern)
        path += "/" + (seg == "{**}" ? std::string{"{}"} : seg);
      result.push_back(std::string{Http::methodString(method)} + " "
                       + (path.empty() ? "/" : path));
    }
  std::sort(result.begin(), result.end());
  return result;
}

http_server::http_server(http_context ctx)
  : impl_(std::make_unique<impl>(std::move(ctx))) {
  // nop
}

http_server::~http_server() {
  stop();
}

caf::expected<uint16_t> http_server::start() {
  try {
    auto& cfg = impl_->ctx.cfg;
    Address addr{cfg.host, Port{cfg.port}};
    impl_->endpoint = std::make_unique<Http::Endpoint>(addr);
    auto opts = Http::Endpoint::options()
                  .threads(static_cast<int>(cfg.threads))
                  .flags(Tcp::Options::ReuseAddr)
                  .maxRequestSize(defaults::max_body_bytes
                                  + defaults::max_header_bytes)
                  .headerTimeout(defaults::http_header_timeout)
                  .bodyTimeout(defaults::http_body_timeout);
    impl_->endpoint->init(opts);
    impl_->endpoint->setHandler(
      std::make_shared<screening_handler>(impl_.get()));
    impl_->init_metrics();
    impl_->endpoint->serveThreaded();
    if (impl_->docs.dir().empty())
      spdlog::warn("GET /docs: no Swagger UI files found (DOCS_DIR); it "
                   "lists the routes instead");
    else
      spdlog::info("GET /docs: Swagger UI from {}", impl_->docs.dir());
    return static_cast<uint16_t>(impl_->endpoint->getPort());
  } catch (const std::exception& e) {
    return make_error(ec::invalid_configuration,
                      "cannot serve HTTP on " + impl_->ctx.cfg.host + ":"
                        + std::to_string(impl_->ctx.cfg.port) + ": "
                        + e.what());
  }
}

void http_server::stop() {
  if (impl_ && impl_->endpoint) {
    impl_->endpoint->shutdown();
    impl_->endpoint.reset();
  }
}

} // namespace orch::api
