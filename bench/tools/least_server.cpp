// least-server: the least a durable HTTP submit, or a lookup of one job,
// can cost on this machine (bench/run's submit and reads measures). Not
// orch: one thread, one epoll loop, libpq connections in pipeline mode, no
// CAF, no Pistache, no thread hand-offs. It does what any server that
// answers these requests from PostgreSQL must do, and nothing more:
//
//   - reads HTTP/1.1 keep-alive requests;
//   - `POST /jobs` (with --insert): parses and checks each body as JSON
//     (pipeline_name a string, parameters an object), group-commits every
//     submission that arrived while the previous commit ran, with the
//     api-node's own submit statement (read from job_store.cpp by the
//     harness; it queues the NOTIFY too), in autocommit as the api-node runs
//     it, sends the next batch as soon as the statement's rows came, and
//     answers each request 201 with the job as JSON once it committed;
//   - `GET /jobs/{id}` (with --get): batches every lookup that queued
//     meanwhile into one statement, the api-node's own (`WHERE id =
//     ANY($1::uuid[])`, its columns read from job_store.cpp), pipelined,
//     and answers 200 with the job as the api-node formats it, or 404.
//
//   least-server --port P --db URL [--connections N] [--insert FILE]
//                [--get FILE] --ready FILE
//
// With N connections (1 unless told), a batch goes out on every connection
// that has none in flight, so that one commit's flush overlaps the next
// batch's insert, and a batch of lookups goes to an idle connection, so
// that N backends serve them at once.
//
// It writes FILE given to --ready once it listens, serves until SIGTERM or
// SIGINT, then prints one line, `BENCH_JSON {...}`, with its request,
// commit, lookup and error counts. Standard library, POSIX, libpq and
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
#include <cctype>
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
  std::fprintf(stderr, "least-server: %s\n", what.c_str());
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

struct lookup {
  int fd;
  uint64_t gen;
  std::string id;
};

// One batch on its way, then a sync: a group commit (one statement; `step`
// is 1 once its rows came), or lookups (one statement for all, answered
// when its rows come; `step` is 1 at once, nothing waits on them).
struct flight {
  int step = 0;
  std::vector<submission> batch;
  std::unordered_map<std::string, int64_t> created;
  std::vector<lookup> lookups;
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
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string rfc3339(int64_t micros) {
  time_t secs = micros / 1000000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros % 1000000 / 1000));
  return buf;
}

class server {
public:
  server(int port, const std::string& url, int connections,
         const std::string& insert, const std::string& get) {
    ep_ = epoll_create1(0);
    writers_.resize(static_cast<size_t>(connections));
    for (auto& w : writers_) {
      w.pg = PQconnectdb(url.c_str());
      if (PQstatus(w.pg) != CONNECTION_OK)
        die(std::string{"cannot connect: "} + PQerrorMessage(w.pg));
      if (!insert.empty())
        prepare(w.pg, "ins", insert);
      if (!get.empty())
        prepare(w.pg, "get", get);
      if (PQsetnonblocking(w.pg, 1) != 0 || PQenterPipelineMode(w.pg) != 1)
        die("cannot enter pipeline mode");
      watch(PQsocket(w.pg), EPOLLIN);
    }
    lookups_enabled_ = !get.empty();
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
      // Lookups go to an idle connection, in turn: those that queue while
      // every connection has a statement out make the next batch.
      for (size_t k = 0; k < writers_.size() && !lookups_.empty(); ++k) {
        auto& w = writers_[next_writer_];
        next_writer_ = (next_writer_ + 1) % writers_.size();
        if (w.flights.empty())
          send_lookups(w);
      }
    }
  }

  void report() const {
    std::printf("BENCH_JSON {\"requests\":%llu,\"committed\":%llu,"
                "\"commits\":%llu,\"lookups\":%llu,\"lookup_batches\":%llu,"
                "\"bad_requests\":%llu,\"db_errors\":%llu}\n",
                static_cast<unsigned long long>(requests_),
                static_cast<unsigned long long>(committed_),
                static_cast<unsigned long long>(commits_),
                static_cast<unsigned long long>(found_),
                static_cast<unsigned long long>(lookup_batches_),
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
      // GET /jobs/ + 36 characters of a UUID + a space.
      bool get = c.in.compare(0, 10, "GET /jobs/") == 0 && c.in.size() > 47
                 && c.in[46] == ' ';
      std::string body = c.in.substr(end + 4, length);
      ++requests_;
      if (get) {
        auto id = path_id(c.in);
        if (!lookups_enabled_)
          answer(c, "404 Not Found", "{\"status\":404}");
        else if (id.empty())
          answer(c, "400 Bad Request", "{\"status\":400}");
        else
          lookups_.push_back({c.fd, c.gen, std::move(id)});
        c.in.erase(0, end + 4 + length);
        continue;
      }
      c.in.erase(0, end + 4 + length);
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

  // The UUID of `GET /jobs/{id} `, lower case, or "" if it is not one.
  static std::string path_id(const std::string& in) {
    std::string id = in.substr(10, 36);
    for (size_t i = 0; i < id.size(); ++i) {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i])))
        return {};
      id[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(id[i])));
    }
    return id;
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

  void send_lookups(writer& w) {
    auto& f = w.flights.emplace_back();
    f.lookups.swap(lookups_);
    f.step = 1;
    std::string ids = "{";
    for (auto& l : f.lookups) {
      if (ids.size() > 1)
        ids += ',';
      ids += l.id;
    }
    ids += '}';
    const char* values[1] = {ids.c_str()};
    if (PQsendQueryPrepared(w.pg, "get", 1, values, nullptr, nullptr, 0) != 1
        || PQpipelineSync(w.pg) != 1)
      die(std::string{"cannot sync: "} + PQerrorMessage(w.pg));
    while (PQflush(w.pg) == 1) {
    }
    ++lookup_batches_;
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
      if (!f.lookups.empty() && st != PGRES_PIPELINE_SYNC) {
        answer_lookups(f.lookups, r);
        PQclear(r);
        continue;
      }
      if (st == PGRES_PIPELINE_SYNC) { // committed
        PQclear(r);
        answer_batch(f);
        w.flights.pop_front();
        continue;
      }
      if (st != PGRES_TUPLES_OK) {
        ++db_errors_;
        std::fprintf(stderr, "least-server: %s", PQresultErrorMessage(r));
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

  // Answers a batch of lookups from the rows of its statement.
  void answer_lookups(const std::vector<lookup>& ls, PGresult* r) {
    auto st = PQresultStatus(r);
    bool ok = st == PGRES_TUPLES_OK && PQnfields(r) >= 23;
    if (!ok) {
      ++db_errors_;
      std::fprintf(stderr, "least-server: %s", PQresultErrorMessage(r));
    }
    std::unordered_map<std::string, int> rows;
    for (int i = 0; ok && i < PQntuples(r); ++i)
      rows.emplace(PQgetvalue(r, i, 0), i);
    for (auto& l : ls) {
      auto it = conns_.find(l.fd);
      if (it == conns_.end() || it->second.gen != l.gen)
        continue;
      auto row = rows.find(l.id);
      if (!ok)
        answer(it->second, "503 Service Unavailable", "{\"status\":503}");
      else if (row == rows.end())
        answer(it->second, "404 Not Found", "{\"status\":404}");
      else
        answer_job(it->second, l, r, row->second);
    }
  }

  // The row as the api-node formats a job (codec::append_json): the
  // columns of job_store.cpp's job_columns, in their order.
  void answer_job(conn& c, const lookup& l, PGresult* r, int row) {
    ++found_;
    auto v = [&](int i) -> const char* { return PQgetvalue(r, row, i); };
    auto null = [&](int i) { return PQgetisnull(r, row, i) == 1; };
    std::string out = "{";
    auto key = [&](const char* k) {
      out += '"';
      out += k;
      out += "\":";
    };
    auto str = [&](const char* k, int i) {
      key(k);
      if (null(i))
        out += "null";
      else
        append_quoted(out, v(i));
      out += ',';
    };
    auto raw = [&](const char* k, int i) {
      key(k);
      out += null(i) ? "null" : v(i);
      out += ',';
    };
    auto time = [&](const char* k, int i) {
      key(k);
      if (null(i)) {
        out += "null";
      } else {
        out += '"';
        out += rfc3339(std::atoll(v(i)));
        out += '"';
      }
      out += ',';
    };
    str("id", 0);
    str("status", 1);
    str("pipeline_name", 2);
    raw("parameters", 3);
    str("description", 4);
    raw("priority", 5);
    raw("attempt", 6);
    str("worker_id", 7);
    time("created_at", 8);
    time("updated_at", 9);
    time("started_at", 10);
    time("completed_at", 11);
    str("error_message", 12);
    raw("max_attempts", 14);
    raw("retry_backoff_seconds", 15);
    raw("timeout_seconds", 16);
    time("next_attempt_at", 17);
    key("cancel_requested");
    out += v(18)[0] == 't' ? "true," : "false,";
    str("executor", 19);
    key("progress");
    if (null(20) || null(21)) {
      out += "null,";
    } else {
      auto done = std::atoll(v(20)), total = std::atoll(v(21));
      out += "{\"completed\":" + std::to_string(done) + ",\"total\":"
             + std::to_string(total) + ",\"percent\":"
             + nlohmann::json(total > 0 ? 100.0 * done / total : 0.0).dump()
             + "},";
    }
    str("waiting_reason", 22);
    key("outputs_url");
    out += "\"/jobs/" + l.id + "/outputs\"}";
    answer(c, "200 OK", out);
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
                "\"worker_id\":null,\"created_at\":\""
              + ts + "\",\"updated_at\":\"" + ts
              + "\",\"started_at\":null,\"completed_at\":null,"
                "\"error_message\":null,\"max_attempts\":1,"
                "\"retry_backoff_seconds\":1.0,\"timeout_seconds\":3600,"
                "\"next_attempt_at\":null,\"cancel_requested\":false,"
                "\"executor\":\"mock\",\"progress\":null,"
                "\"waiting_reason\":null,\"outputs_url\":\"/jobs/"
              + s.id + "/outputs\"}";
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
  std::vector<lookup> lookups_;
  bool lookups_enabled_ = false;
  size_t next_writer_ = 0;
  unsigned long long found_ = 0;
  unsigned long long lookup_batches_ = 0;
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
  std::string url, insert, get, ready;
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
    else if (k == "--get")
      get = slurp(v);
    else if (k == "--ready")
      ready = v;
    else
      die("unknown argument " + k);
  }
  if (port <= 0 || connections < 1 || url.empty()
      || (insert.empty() && get.empty()) || ready.empty())
    die("usage: least-server --port P --db URL [--connections N] "
        "[--insert FILE] [--get FILE] --ready FILE");
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  server srv{port, url, connections, insert, get};
  std::ofstream{ready} << "ready\n";
  srv.run();
  srv.report();
  return 0;
}
