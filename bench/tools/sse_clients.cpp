// sse-clients: many Server-Sent Events clients in one thread (bench/run's
// `sse` measure). Standard library and POSIX only; bench/run compiles it.
//
//   sse-clients --port P [--host 127.0.0.1]
//               [--firehose N] [--firehose-path PATH]
//               [--jobs FILE]            one per-job stream per id in FILE
//               [--count-pipeline PREFIX] completions counted: of the
//                                        pipelines named PREFIX...
//               --ready FILE --out FILE
//
// It opens the streams (at most 64 connects in flight), writes FILE given to
// --ready once every stream has its response head, and reads until SIGTERM
// or SIGINT. Then it writes a JSON report to --out and exits.
//
// Each stream is parsed as an EventSource would: the HTTP head (status 200,
// text/event-stream), then lines; `id:`, `event:`, `data:` fields, comment
// lines, and a blank line that dispatches the event. Of each dispatched
// event it checks that the data is one JSON object and that ids increase,
// and of `complete` events it reads job_id, pipeline_name and status. Per
// firehose stream it counts the completions of --count-pipeline and a digest
// of their job ids (XOR of FNV-1a 64), which the harness compares with the
// jobs PostgreSQL completed: equal count and digest mean that the stream saw
// every completion exactly once. A stream that ends while we are not
// stopping is counted as disconnected (the hub drops a client too slow to
// keep up; a per-job stream also ends after its `complete`).
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace {

volatile std::sig_atomic_t stopping = 0;

void on_signal(int) {
  stopping = 1;
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// The string value of "key":"..." in a flat scan of JSON text (no escapes
// in the values we read: uuids, pipeline and status names).
std::string_view field(std::string_view json, const char* key) {
  std::string pat = std::string{"\""} + key + "\":\"";
  auto p = json.find(pat);
  if (p == std::string_view::npos)
    return {};
  p += pat.size();
  auto e = json.find('"', p);
  return e == std::string_view::npos ? std::string_view{}
                                     : json.substr(p, e - p);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

struct stream {
  int fd = -1;
  bool firehose = true;
  std::string path;
  std::string job_id;
  bool connected = false; // TCP connected, request sent
  bool head = false;      // response head received
  bool open = false;
  bool ended = false;     // closed by the server or failed
  bool bad_head = false;
  std::string buf; // received bytes not parsed yet (a partial line)
  // The event being assembled. `ev_data` points into the bytes being
  // parsed, or into `ev_data_own` once it spans lines or receives.
  std::string ev_type, ev_id, ev_data_own;
  std::string_view ev_data;
  bool ev_has_data = false;
  int64_t last_id = 0;
  // Counters.
  uint64_t bytes = 0, events = 0, comments = 0, status = 0, progress = 0,
           logs = 0, completes = 0, counted_completes = 0, bad_data = 0,
           id_regressions = 0;
  uint64_t digest = 0;
  bool saw_own_complete = false;
};

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  int firehose = 0;
  std::string firehose_path = "/events?types=status,progress,complete";
  std::string jobs_file;
  std::string count_pipeline;
  std::string ready_file;
  std::string out_file;
};

void dispatch(stream& s, const options& opt) {
  if (!s.ev_has_data) {
    s.ev_type.clear();
    return;
  }
  ++s.events;
  auto d = s.ev_data;
  if (d.size() < 2 || d.front() != '{' || d.back() != '}')
    ++s.bad_data;
  if (!s.ev_id.empty()) {
    auto id = std::strtoll(s.ev_id.c_str(), nullptr, 10);

    if (id <= s.last_id)
      ++s.id_regressions;
    s.last_id = id;
  }
  if (s.ev_type == "status")
    ++s.status;
  else if (s.ev_type == "progress")
    ++s.progress;
  else if (s.ev_type == "log")
    ++s.logs;
  else if (s.ev_type == "complete") {
    ++s.completes;
    auto job = field(d, "job_id");
    if (!s.firehose && job == s.job_id)
      s.saw_own_complete = true;
    if (s.firehose && !opt.count_pipeline.empty()
        && field(d, "pipeline_name").rfind(opt.count_pipeline, 0) == 0
        && field(d, "status") == "completed") {
      ++s.counted_completes;
      s.digest ^= fnv1a(job);
    }
  }
  s.ev_type.clear();
  s.ev_data = {};
  s.ev_id.clear();
  s.ev_has_data = false;
}

constexpr size_t parse_error = static_cast<size_t>(-1);

// Parses buf[0, n) in place: the response head, then whole lines. Returns
// how many bytes it consumed (a partial line stays for the next receive),
// or parse_error on a protocol error.
size_t parse(stream& s, const options& opt, const char* buf, size_t n) {
  size_t pos = 0;
  if (!s.head) {
    std::string_view all{buf, n};
    auto end = all.find("\r\n\r\n");
    if (end == std::string_view::npos)
      return n < 8192 ? 0 : parse_error;
    auto head = all.substr(0, end);
    if (head.rfind("HTTP/1.1 200", 0) != 0
        || head.find("text/event-stream") == std::string_view::npos) {
      s.bad_head = true;
      return parse_error;
    }
    s.head = true;
    pos = end + 4;
  }
  for (;;) {
    auto nl = static_cast<const char*>(std::memchr(buf + pos, '\n', n - pos));
    if (nl == nullptr)
      break;
    size_t len = static_cast<size_t>(nl - (buf + pos));
    const char* line = buf + pos;
    if (len > 0 && line[len - 1] == '\r')
      --len;
    if (len == 0) {
      dispatch(s, opt);
    } else if (line[0] == ':') {
      ++s.comments;
    } else {
      const char* colon = static_cast<const char*>(std::memchr(line, ':', len));
      size_t flen = colon ? static_cast<size_t>(colon - line) : len;
      size_t voff = colon ? flen + 1 : len;
      if (voff < len && line[voff] == ' ')
        ++voff;
      std::string_view name{line, flen};
      std::string_view value{line + voff, len - voff};
      if (name == "data") {
        if (s.ev_has_data) {
          std::string joined{s.ev_data};
          joined += '\n';
          joined.append(value);
          s.ev_data_own = std::move(joined);
          s.ev_data = s.ev_data_own;
        } else {
          s.ev_data = value;
        }
        s.ev_has_data = true;
      } else if (name == "event") {
        s.ev_type.assign(value);
      } else if (name == "id") {
        s.ev_id.assign(value);
      }
      // retry: and unknown fields are ignored, as an EventSource does.
    }
    pos = static_cast<size_t>(nl - buf) + 1;
  }
  // An event still being assembled keeps its data past this buffer.
  if (s.ev_has_data && s.ev_data.data() != s.ev_data_own.data()) {
    s.ev_data_own.assign(s.ev_data);
    s.ev_data = s.ev_data_own;
  }
  return pos;
}

bool start_connect(stream& s, const options& opt, int ep) {
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    std::perror("sse-clients: socket");
    return false;
  }
  int one = 1;
  ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(opt.port));
  ::inet_pton(AF_INET, opt.host.c_str(), &a.sin_addr);
  auto r = ::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  if (r != 0 && errno != EINPROGRESS) {
    std::perror("sse-clients: connect");
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  ev.data.ptr = &s;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
  s.open = true;
  return true;
}

void close_stream(stream& s, int ep) {
  if (!s.open)
    return;
  ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
  ::close(s.fd);
  s.open = false;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sse-clients: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host")
      opt.host = next();
    else if (a == "--port")
      opt.port = std::atoi(next().c_str());
    else if (a == "--firehose")
      opt.firehose = std::atoi(next().c_str());
    else if (a == "--firehose-path")
      opt.firehose_path = next();
    else if (a == "--jobs")
      opt.jobs_file = next();
    else if (a == "--count-pipeline")
      opt.count_pipeline = next();
    else if (a == "--ready")
      opt.ready_file = next();
    else if (a == "--out")
      opt.out_file = next();
    else {
      std::fprintf(stderr, "sse-clients: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (opt.port <= 0 || opt.out_file.empty() || opt.ready_file.empty()) {
    std::fprintf(stderr, "sse-clients: --port, --ready and --out are "
                         "required\n");
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<stream> streams(static_cast<size_t>(opt.firehose));
  for (auto& s : streams)
    s.path = opt.firehose_path;
  if (!opt.jobs_file.empty()) {
    std::ifstream in{opt.jobs_file};
    std::string id;
    while (in >> id) {
      stream s;
      s.firehose = false;
      s.job_id = id;
      s.path = "/jobs/" + id + "/events";
      streams.push_back(std::move(s));
    }
  }
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  const size_t max_inflight = 64;
  size_t next_connect = 0, inflight = 0, heads = 0;
  bool ready_written = false;
  double t_start = now_s(), t_ready = 0;
  std::vector<char> rbuf(256 * 1024);
  std::vector<epoll_event> evs(512);
  int failures = 0;

  while (!stopping) {
    while (next_connect < streams.size() && inflight < max_inflight) {
      if (!start_connect(streams[next_connect], opt, ep))
        return 1;
      ++next_connect;
      ++inflight;
    }
    if (!ready_written && heads == streams.size()) {
      t_ready = now_s();
      std::ofstream{opt.ready_file} << "ready\n";
      ready_written = true;
    }
    int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 200);
    if (n < 0 && errno == EINTR)
      continue;
    for (int i = 0; i < n; ++i) {
      auto& s = *static_cast<stream*>(evs[i].data.ptr);
      if (!s.open)
        continue;
      auto e = evs[i].events;
      if (!s.connected && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          std::fprintf(stderr, "sse-clients: connect: %s\n",
                       std::strerror(err));
          ++failures;
          s.ended = true;
          close_stream(s, ep);
          --inflight;
          continue;
        }
        std::string req = "GET " + s.path + " HTTP/1.1\r\nHost: " + opt.host
                          + "\r\nAccept: text/event-stream\r\n\r\n";
        // A fresh socket's buffer takes the few bytes at once.
        if (::send(s.fd, req.data(), req.size(), MSG_NOSIGNAL)
            != static_cast<ssize_t>(req.size())) {
          ++failures;
          s.ended = true;
          close_stream(s, ep);
          --inflight;
          continue;
        }
        s.connected = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = &s;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
        continue;
      }
      bool gone = false;
      bool had_head = s.head;
      for (;;) {
        auto r = ::recv(s.fd, rbuf.data(), rbuf.size(), 0);
        if (r > 0) {
          auto got = static_cast<size_t>(r);
          s.bytes += got;
          // Usually nothing is left over: parse the received bytes where
          // they are, and keep only a partial line.
          size_t used;
          if (s.buf.empty()) {
            used = parse(s, opt, rbuf.data(), got);
            if (used != parse_error)
              s.buf.assign(rbuf.data() + used, got - used);
            else // for the error message below
              s.buf.assign(rbuf.data(), std::min<size_t>(got, 200));
          } else {
            s.buf.append(rbuf.data(), got);
            used = parse(s, opt, s.buf.data(), s.buf.size());
            if (used != parse_error)
              s.buf.erase(0, used);
          }
          if (used == parse_error) {
            gone = true;
            break;
          }
          if (got < rbuf.size())
            break;
          continue;
        }
        if (r == 0)
          gone = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          gone = true;
        break;
      }
      if (!had_head && s.head) {
        ++heads;
        --inflight;
      }
      if (gone) {
        if (!s.head) {
          --inflight;
          ++failures;
          std::fprintf(stderr, "sse-clients: %s: no 200 head: %.200s\n",
                       s.path.c_str(), s.buf.c_str());
        }
        s.ended = true;
        close_stream(s, ep);
      }
    }
    if (failures > 0 && !ready_written) {
      std::fprintf(stderr, "sse-clients: %d streams failed to open\n",
                   failures);
      break;
    }
  }
  double t_end = now_s();
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
               + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

  // The report.
  uint64_t fh = 0, jobs = 0, bytes = 0, events = 0, comments = 0, status = 0,
           progress = 0, logs = 0, completes = 0, bad = 0, regress = 0,
           fh_ended = 0, job_ended_early = 0, own_complete = 0;
  uint64_t min_counted = UINT64_MAX, max_counted = 0;
  std::vector<std::pair<uint64_t, uint64_t>> sets; // (count, digest)
  for (auto& s : streams) {
    bytes += s.bytes;
    events += s.events;
    comments += s.comments;
    status += s.status;
    progress += s.progress;
    logs += s.logs;
    completes += s.completes;
    bad += s.bad_data + (s.bad_head ? 1 : 0);
    regress += s.id_regressions;
    if (s.firehose) {
      ++fh;
      fh_ended += s.ended ? 1 : 0;
      min_counted = std::min(min_counted, s.counted_completes);
      max_counted = std::max(max_counted, s.counted_completes);
      sets.emplace_back(s.counted_completes, s.digest);
    } else {
      ++jobs;
      own_complete += s.saw_own_complete ? 1 : 0;
      if (s.ended && !s.saw_own_complete)
        ++job_ended_early;
    }
  }
  // Distinct (count, digest) pairs with how many firehose streams had each.
  std::sort(sets.begin(), sets.end());
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, uint64_t>> groups;
  for (auto& x : sets) {
    if (groups.empty() || groups.back().first != x)
      groups.push_back({x, 0});
    ++groups.back().second;
  }
  FILE* f = std::fopen(opt.out_file.c_str(), "w");
  if (f == nullptr) {
    std::perror("sse-clients: --out");
    return 1;
  }
  std::fprintf(f, "{\"streams\": %zu, \"firehose\": %llu, \"job_streams\": %llu,"
                  " \"opened\": %zu, \"open_failures\": %d,"
                  " \"connect_s\": %.3f, \"wall_s\": %.3f, \"cpu_s\": %.3f,"
                  " \"max_rss_kb\": %ld, \"bytes\": %llu, \"events\": %llu,"
                  " \"comments\": %llu, \"status\": %llu, \"progress\": %llu,"
                  " \"log\": %llu, \"complete\": %llu, \"bad_data\": %llu,"
                  " \"id_regressions\": %llu,"
                  " \"firehose_disconnected\": %llu,"
                  " \"job_streams_ended_before_complete\": %llu,"
                  " \"job_streams_saw_complete\": %llu,"
                  " \"counted_min\": %llu, \"counted_max\": %llu,"
                  " \"count_digest_sets\": [",
               streams.size(), (unsigned long long)fh,
               (unsigned long long)jobs, heads, failures,
               ready_written ? t_ready - t_start : -1.0, t_end - t_start, cpu,
               ru.ru_maxrss, (unsigned long long)bytes,
               (unsigned long long)events, (unsigned long long)comments,
               (unsigned long long)status, (unsigned long long)progress,
               (unsigned long long)logs, (unsigned long long)completes,
               (unsigned long long)bad, (unsigned long long)regress,
               (unsigned long long)fh_ended,
               (unsigned long long)job_ended_early,
               (unsigned long long)own_complete,
               (unsigned long long)(fh ? min_counted : 0),
               (unsigned long long)max_counted);
  for (size_t i = 0; i < groups.size(); ++i)
    std::fprintf(f, "%s[%llu, \"%016llx\", %llu]", i ? ", " : "",
                 (unsigned long long)groups[i].first.first,
                 (unsigned long long)groups[i].first.second,
                 (unsigned long long)groups[i].second);
  std::fprintf(f, "]}\n");
  std::fclose(f);
  for (auto& s : streams)
    close_stream(s, ep);
  return ready_written ? 0 : 1;
}
