#include "orch/metrics_server.hpp"

#include "orch/error.hpp"
#include "orch/metrics.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace orch::metrics {

namespace {

std::string response(int status, const char* reason, const char* type,
                     const std::string& body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason
                    + "\r\nContent-Type: " + type
                    + "\r\nContent-Length: " + std::to_string(body.size())
                    + "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

void send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; // peer gone or send timeout: nothing more to do
    off += static_cast<size_t>(n);
  }
}

} // namespace

metrics_server::metrics_server(std::function<std::string()> render)
  : render_(std::move(render)) {
  // nop
}

metrics_server::~metrics_server() {
  stop();
}

caf::expected<uint16_t> metrics_server::start(const std::string& host,
                                              uint16_t port) {
  auto fail = [&](const std::string& why) {
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
    listen_fd_ = -1;
    return make_error(ec::invalid_configuration,
                      "cannot serve metrics on " + host + ":"
                        + std::to_string(port) + ": " + why);
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (auto rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                              service.c_str(), &hints, &found);
      rc != 0)
    return fail(gai_strerror(rc));
  std::string last_error = "no address";
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0)
    return fail(last_error);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return fail(std::strerror(errno));
  uint16_t bound = addr.ss_family == AF_INET6
                     ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                     : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  stop_ = false;
  thread_ = std::thread{[this] { loop(); }};
  return bound;
}

void metrics_server::stop() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void metrics_server::loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    // A short timeout: stop() is noticed within it.
    auto rc = ::poll(&p, 1, 200);
    if (rc <= 0)
      continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    try {
      serve(fd);
    } catch (const std::exception& e) {
      spdlog::warn("metrics: request failed: {}", e.what());
    }
    ::close(fd);
  }
}

void metrics_server::serve(int fd) {
  timeval tv{};
  tv.tv_sec = io_timeout.count() / 1000;
  tv.tv_usec = (io_timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto deadline = std::chrono::steady_clock::now() + io_timeout;
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos
         && head.find("\n\n") == std::string::npos) {
    if (head.size() > max_head_bytes) {
      send_all(fd, response(431, "Request Header Fields Too Large",
                            "text/plain; charset=utf-8",
                            "request head too large\n"));
      return;
    }
    if (std::chrono::steady_clock::now() > deadline || stop_)
      return; // too slow: close without an answer
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    head.append(buf, static_cast<size_t>(n));
  }
  // Request line: METHOD SP TARGET SP VERSION.
  auto line = head.substr(0, head.find_first_of("\r\n"));
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  auto method = line.substr(0, sp1);
  auto target = sp1 == std::string::npos
                  ? std::string{}
                  : line.substr(sp1 + 1, sp2 == std::string::npos
                                           ? std::string::npos
                                           : sp2 - sp1 - 1);
  auto path = target.substr(0, target.find('?'));
  if (method == "GET" && path == "/metrics")
    send_all(fd, response(200, "OK", content_type, render_()));
  else
    send_all(fd, response(404, "Not Found", "text/plain; charset=utf-8",
                          "not found; try GET /metrics\n"));
}

} // namespace orch::metrics
