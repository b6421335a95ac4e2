// submit-floor: the least a durable HTTP submit can cost on this machine
// (bench/run's submit measure). Not orch: one thread, one epoll loop, one
// libpq connection in pipeline mode, no CAF, no Pistache, no thread
// hand-offs. It does what any server that answers `POST /jobs` only after
// the job is committed must do, and nothing more:
//
//   - reads HTTP/1.1 keep-alive requests, and parses and checks each body
//     as JSON (pipeline_name a string, parameters an object);
//   - group-commits every submission that arrived while the previous
//     commit ran, with the api-node's own submit statement (read from
//     job_store.cpp by the harness; it queues the NOTIFY too), in autocommit
//     as the api-node runs it;
//   - sends the next batch as soon as the statement's rows came, and
//     answers each request 201 with the job as JSON once it committed.
//
//   submit-floor --port P --db URL [--connections N] --insert FILE
//                --ready FILE
//
// With N connections (1 unless told), a batch goes out on every connection
// that has none in flight, so that one commit's flush overlaps the next
// batch's insert.
//
// It writes FILE given to --ready once it listens, serves until SIGTERM or
// SIGINT, then prints one line, `BENCH_JSON {...}`, with its request,
// commit and error counts. Standard library, POSIX, libpq and
// nlohmann-json only; bench/run compiles it.
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

volatile std::sig_atomic_t stopping = 0;

void on_signal(int) {
  stopping = 1;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "submit-floor: %s\n", what.c_str());
  std::exit(1);
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    die("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ';'))
    s.pop_back();
  return s;
}

struct conn {
  int fd = -1;
  uint64_t gen = 0;
  std::string in;
  std::string out;
  size_t out_sent = 0;
};

struct submission {
  int fd;
  uint64_t gen;
  std::string id;
  std::string name;
  std::string params;
};

// One group commit on its way: the statement, then a sync. `step` is 1 once
// the statement's rows came.
struct flight {
  int step = 0;
  std::vector<submission> batch;
  std::unordered_map<std::string, int64_t> created;
};

// One database connection. Its next batch goes out as soon as the last
// one's statement returned its rows, before that one committed (pipeline
// mode queues it behind the commit).
struct writer {
  PGconn* pg = nullptr;
  std::deque<flight> flights;
  bool ready() const {
    return flights.empty() || flights.back().step >= 1;
  }
};

std::mt19937_64 rng{std::random_device{}()};

std::string make_uuid() { // version 7: milliseconds, then random bits
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch())
              .count();
  uint64_t hi = (static_cast<uint64_t>(ms) << 16) | 0x7000 | (rng() & 0xfff);
  uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

void append_quoted(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

std::string rfc3339(int64_t micros) {
  time_t secs = micros / 1000000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros % 1000000));
  return buf;
}

class server {
public:
  server(int port, const std::string& url, int connections,
         const std::string& insert) {
    ep_ = epoll_create1(0);
    writers_.resize(static_cast<size_t>(connections));
    for (auto& w : writers_) {
      w.pg = PQconnectdb(url.c_str());
      if (PQstatus(w.pg) != CONNECTION_OK)
        die(std::string{"cannot connect: "} + PQerrorMessage(w.pg));
      prepare(w.pg, "ins", insert);
      if (PQsetnonblocking(w.pg, 1) != 0 || PQenterPipelineMode(w.pg) != 1)
        die("cannot enter pipeline mode");
      watch(PQsocket(w.pg), EPOLLIN);
    }
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
        || listen(lfd_, 1024) != 0)
      die(std::string{"cannot listen: "} + std::strerror(errno));
    watch(lfd_, EPOLLIN);
  }

  void run() {
    epoll_event evs[256];
    while (!stopping) {
      int n = epoll_wait(ep_, evs, 256, 100);
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == lfd_) {
          accept_all();
          continue;
        }
        auto w = std::find_if(writers_.begin(), writers_.end(),
                              [fd](auto& x) { return PQsocket(x.pg) == fd; });
        if (w != writers_.end())
          read_pg(*w);
        else
          on_conn(fd, evs[i].events);
      }
      // Every idle connection takes what queued meanwhile.
      for (auto& w : writers_)
        if (w.ready() && !queued_.empty())
          send_batch(w);
    }
  }

  void report() const {
    std::printf("BENCH_JSON {\"requests\":%llu,\"committed\":%llu,"
                "\"commits\":%llu,\"bad_requests\":%llu,\"db_errors\":%llu}\n",
                static_cast<unsigned long long>(requests_),
                static_cast<unsigned long long>(committed_),
                static_cast<unsigned long long>(commits_),
                static_cast<unsigned long long>(bad_),
                static_cast<unsigned long long>(db_errors_));
  }

private:
  static void prepare(PGconn* pg, const char* name, const std::string& sql) {
    PGresult* r = PQprepare(pg, name, sql.c_str(), 0, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      die(std::string{"cannot prepare: "} + PQerrorMessage(pg));
    PQclear(r);
  }

  void watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd < 0)
        return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto& c = conns_[fd];
      c = conn{};
      c.fd = fd;
      c.gen = ++gen_;
      watch(fd, EPOLLIN | EPOLLRDHUP);
    }
  }

  void close_conn(int fd) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns_.erase(fd);
  }

  void on_conn(int fd, uint32_t events) {
    auto it = conns_.find(fd);
    if (it == conns_.end())
      return;
    auto& c = it->second;
    if (events & EPOLLOUT) {
      flush(c);
      return;
    }
    char buf[16384];
    for (;;) {
      ssize_t k = recv(fd, buf, sizeof buf, 0);
      if (k > 0) {
        c.in.append(buf, static_cast<size_t>(k));
        continue;
      }
      if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        close_conn(fd);
        return;
      }
      break;
    }
    parse(c);
  }

  void parse(conn& c) {
    for (;;) {
      auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos)
        return;
      size_t length = 0;
      for (size_t p = c.in.find("\r\n"); p < end;) {
        auto next = c.in.find("\r\n", p + 2);
        if (strncasecmp(c.in.data() + p + 2, "content-length:", 15) == 0)
          length = std::strtoul(c.in.data() + p + 17, nullptr, 10);
        p = next;
      }
      if (c.in.size() < end + 4 + length)
        return;
      bool post = c.in.compare(0, 11, "POST /jobs ") == 0;
      bool health = c.in.compare(0, 12, "GET /health ") == 0;
      std::string body = c.in.substr(end + 4, length);
      c.in.erase(0, end + 4 + length);
      ++requests_;
      if (!post) {
        if (health)
          answer(c, "200 OK", "{\"status\":\"ok\"}");
        else
          answer(c, "404 Not Found", "{\"status\":404}");
        continue;
      }
      auto doc = nlohmann::json::parse(body, nullptr, false);
      if (doc.is_discarded() || !doc.is_object()
          || !doc.contains("pipeline_name")
          || !doc["pipeline_name"].is_string()
          || (doc.contains("parameters") && !doc["parameters"].is_object())) {
        ++bad_;
        answer(c, "422 Unprocessable Entity", "{\"status\":422}");
        continue;
      }
      queued_.push_back({c.fd, c.gen, make_uuid(),
                         doc["pipeline_name"].get<std::string>(),
                         doc.contains("parameters") ? doc["parameters"].dump()
                                                    : "{}"});
    }
  }

  void answer(conn& c, const char* status, const std::string& body,
              const std::string& location = {}) {
    c.out += "HTTP/1.1 ";
    c.out += status;
    c.out += "\r\nContent-Type: application/json\r\n";
    if (!location.empty())
      c.out += "Location: " + location + "\r\n";
    c.out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    c.out += body;
    flush(c);
  }

  void flush(conn& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t k = send(c.fd, c.out.data() + c.out_sent,
                       c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
          ev.data.fd = c.fd;
          epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
          return;
        }
        close_conn(c.fd);
        return;
      }
      c.out_sent += static_cast<size_t>(k);
    }
    c.out.clear();
    c.out_sent = 0;
  }

  void send_batch(writer& w) {
    auto& f = w.flights.emplace_back();
    f.batch.swap(queued_);
    std::string ids = "{", names = "{", params = "{", nulls = "{",
                zeros = "{", ones = "{", hours = "{", hashes = "{",
                execs = "{";
    for (size_t i = 0; i < f.batch.size(); ++i) {
      const char* sep = i == 0 ? "" : ",";
      auto& s = f.batch[i];
      ids += sep + s.id;
      names += sep;
      append_quoted(names, s.name);
      params += sep;
      append_quoted(params, s.params);
      nulls += std::string{sep} + "NULL";
      zeros += std::string{sep} + "0";
      ones += std::string{sep} + "1";
      hours += std::string{sep} + "3600";
      hashes += std::string{sep} + "x";
      execs += std::string{sep} + "mock";
    }
    for (auto* a : {&ids, &names, &params, &nulls, &zeros, &ones, &hours,
                    &hashes, &execs})
      *a += '}';
    const char* values[11] = {ids.c_str(),   names.c_str(), params.c_str(),
                              nulls.c_str(), zeros.c_str(), ones.c_str(),
                              ones.c_str(),  hours.c_str(), nulls.c_str(),
                              hashes.c_str(), execs.c_str()};
    if (PQsendQueryPrepared(w.pg, "ins", 11, values, nullptr, nullptr, 0) != 1
        || PQpipelineSync(w.pg) != 1)
      die(std::string{"cannot send: "} + PQerrorMessage(w.pg));
    while (PQflush(w.pg) == 1) {
      // A batch is a few kB; the socket takes it at once on loopback.
    }
    ++commits_;
  }

  // Results arrive in order: the statement's, its sync, then those of the
  // next flight. The statement runs in an implicit transaction that commits
  // when the server reaches the sync, so the answers wait for the sync's
  // result; the next batch goes out as soon as the statement's rows came
  // (the server runs it after that commit).
  void read_pg(writer& w) {
    if (PQconsumeInput(w.pg) != 1)
      die(std::string{"connection lost: "} + PQerrorMessage(w.pg));
    while (!w.flights.empty() && !PQisBusy(w.pg)) {
      PGresult* r = PQgetResult(w.pg);
      if (r == nullptr)
        continue; // end of one query's results
      auto& f = w.flights.front();
      auto st = PQresultStatus(r);
      if (st == PGRES_PIPELINE_SYNC) { // committed
        PQclear(r);
        answer_batch(f);
        w.flights.pop_front();
        continue;
      }
      if (st != PGRES_TUPLES_OK) {
        ++db_errors_;
        std::fprintf(stderr, "submit-floor: %s", PQresultErrorMessage(r));
      } else {
        for (int i = 0; i < PQntuples(r); ++i)
          f.created[PQgetvalue(r, i, 0)] = std::atoll(PQgetvalue(r, i, 1));
      }
      f.step = 1;
      PQclear(r);
      if (!queued_.empty())
        send_batch(w); // deque: `f` stays valid
    }
  }

  void answer_batch(flight& f) {
    for (auto& s : f.batch) {
      auto it = conns_.find(s.fd);
      if (it == conns_.end() || it->second.gen != s.gen)
        continue;
      auto at = f.created.find(s.id);
      if (at == f.created.end()) {
        answer(it->second, "503 Service Unavailable", "{\"status\":503}");
        continue;
      }
      ++committed_;
      auto ts = rfc3339(at->second);
      std::string body = "{\"id\":\"" + s.id
                         + "\",\"status\":\"pending\",\"pipeline_name\":";
      append_quoted(body, s.name);
      body += ",\"parameters\":" + s.params
              + ",\"description\":null,\"priority\":0,\"attempt\":0,"
                "\"worker_id\":null,\"f.createdat\":\""
              + ts + "\",\"updated_at\":\"" + ts
              + "\",\"started_at\":null,\"completed_at\":null,"
                "\"error_message\":null,\"max_attempts\":1,"
                "\"retry_backoff_seconds\":1.0,\"timeout_seconds\":3600,"
                "\"next_attempt_at\":null,\"cancel_requested\":false,"
                "\"executor\":\"mock\"}";
      answer(it->second, "201 Created", body, "/jobs/" + s.id);
    }
    f.batch.clear();
  }

  std::vector<writer> writers_;
  int ep_ = -1;
  int lfd_ = -1;
  uint64_t gen_ = 0;
  std::unordered_map<int, conn> conns_;
  std::vector<submission> queued_;
  unsigned long long requests_ = 0;
  unsigned long long committed_ = 0;
  unsigned long long commits_ = 0;
  unsigned long long bad_ = 0;
  unsigned long long db_errors_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  int port = 0;
  int connections = 1;
  std::string url, insert, ready;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      port = std::atoi(v.c_str());
    else if (k == "--connections")
      connections = std::atoi(v.c_str());
    else if (k == "--db")
      url = v;
    else if (k == "--insert")
      insert = slurp(v);
    else if (k == "--ready")
      ready = v;
    else
      die("unknown argument " + k);
  }
  if (port <= 0 || connections < 1 || url.empty() || insert.empty()
      || ready.empty())
    die("usage: submit-floor --port P --db URL [--connections N] "
        "--insert FILE --ready FILE");
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  server srv{port, url, connections, insert};
  std::ofstream{ready} << "ready\n";
  srv.run();
  srv.report();
  return 0;
}
