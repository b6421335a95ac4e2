#include "orch/worker/process.hpp"

#include "orch/error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

extern char** environ;

namespace orch::worker {

namespace {

/// What the child reports through the status pipe when it cannot exec.
enum class child_stage : int { chdir = 1, exec = 2, setup = 3 };

struct child_report {
  int stage = 0;
  int error = 0;
};

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

/// Closes `fd` if open and marks it closed.
void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

/// Moves `fd` above the standard descriptors (keeping CLOEXEC), so that the
/// child's dup2 onto 0, 1 and 2 cannot clobber a pipe end.
bool raise_fd(int& fd) {
  if (fd > 2)
    return true;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0)
    return false;
  ::close(fd);
  fd = moved;
  return true;
}

/// A pipe whose both ends are CLOEXEC and above fd 2.
bool make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return false;
  if (!raise_fd(fds[0]) || !raise_fd(fds[1])) {
    close_fd(fds[0]);
    close_fd(fds[1]);
    return false;
  }
  return true;
}

/// Everything the child needs, prepared before fork: after fork the child
/// only calls async-signal-safe functions and touches no heap.
struct child_plan {
  std::vector<std::string> argv_storage;
  std::vector<char*> argv;
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  std::vector<std::string> candidates; // paths to try with execve, in order
  std::string cwd;
  int max_fd = 1024;
};

caf::expected<child_plan> make_plan(const process_spec& spec) {
  child_plan plan;
  if (spec.argv.empty() || spec.argv[0].empty())
    return make_error(ec::validation_failed, "process: argv is empty");
  for (auto& arg : spec.argv) {
    if (arg.find('\0') != std::string::npos)
      return make_error(ec::validation_failed,
                        "process: argv element contains a NUL byte");
  }
  plan.argv_storage = spec.argv;
  for (auto& arg : plan.argv_storage)
    plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  // Inherited environment, minus the names we override.
  for (auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos
        || key.find('\0') != std::string::npos
        || value.find('\0') != std::string::npos)
      return make_error(ec::validation_failed,
                        "process: invalid environment variable '" + key + "'");
  }
  // Without any PATH, use the confstr(_CS_PATH)-like default of glibc.
  std::string path_value = "/usr/local/bin:/usr/bin:/bin";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    auto name = entry.substr(0, eq);
    if (spec.env.count(name) > 0)
      continue;
    if (name == "PATH" && eq != std::string::npos)
      path_value = entry.substr(eq + 1);
    plan.env_storage.push_back(std::move(entry));
  }
  for (auto& [key, value] : spec.env) {
    plan.env_storage.push_back(key + "=" + value);
    if (key == "PATH")
      path_value = value;
  }
  for (auto& entry : plan.env_storage)
    plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  // PATH lookup (execvp semantics, without the /bin/sh fallback on ENOEXEC).
  auto& prog = spec.argv[0];
  if (prog.find('/') != std::string::npos) {
    plan.candidates.push_back(prog);
  } else {
    size_t begin = 0;
    while (true) {
      auto end = path_value.find(':', begin);
      auto dir = path_value.substr(begin, end == std::string::npos
                                            ? std::string::npos
                                            : end - begin);
      if (dir.empty())
        dir = ".";
      plan.candidates.push_back(dir + "/" + prog);
      if (end == std::string::npos)
        break;
      begin = end + 1;
    }
  }
  plan.cwd = spec.cwd;
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
    plan.max_fd = static_cast<int>(std::min<rlim_t>(lim.rlim_cur, 1 << 20));
  return plan;
}

[[noreturn]] void child_fail(int status_fd, child_stage stage, int err) {
  child_report rep{static_cast<int>(stage), err};
  [[maybe_unused]] auto n = ::write(status_fd, &rep, sizeof(rep));
  ::_exit(127);
}

/// Runs in the forked child. Async-signal-safe calls only.
[[noreturn]] void run_child(const child_plan& plan, int out_fd, int err_fd,
                            int status_fd) {
  ::setpgid(0, 0);
  // Dispositions first (ignored signals survive exec), then the mask (the
  // worker blocks SIGTERM/SIGINT in all threads, and masks survive exec).
  struct sigaction dfl;
  ::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    ::sigaction(sig, &dfl, nullptr); // fails harmlessly for KILL, STOP, ...
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0)
    child_fail(status_fd, child_stage::setup, errno);
  if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0)
    child_fail(status_fd, child_stage::setup, errno);
  // Nothing but 0, 1, 2 and the status pipe (CLOEXEC) survives: no
  // inherited sockets of the worker (they would keep connections alive).
  if (::close_range(3, status_fd - 1, 0) != 0
      || ::close_range(status_fd + 1, ~0U, 0) != 0) {
    for (int fd = 3; fd < plan.max_fd; ++fd)
      if (fd != status_fd)
        ::close(fd);
  }
  if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0)
    child_fail(status_fd, child_stage::chdir, errno);
  int err = ENOENT;
  bool saw_eacces = false;
  for (auto& candidate : plan.candidates) {
    ::execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
    err = errno;
    if (err == EACCES) {
      saw_eacces = true;
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV
        || err == ETIMEDOUT || err == ELOOP || err == ENAMETOOLONG)
      continue;
    break; // ENOEXEC, E2BIG, ENOMEM, ...: report this one
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR))
    err = EACCES;
  child_fail(status_fd, child_stage::exec, err);
}

/// Splits one stream into lines, cutting over-long ones.
class line_splitter {
public:
  template <class Emit>
  void feed(const char* p, size_t n, Emit&& emit) {
    while (n > 0) {
      auto nl = static_cast<const char*>(::memchr(p, '\n', n));
      size_t len = nl != nullptr ? static_cast<size_t>(nl - p) : n;
      if (!skipping_) {
        size_t room = max_line_bytes - buf_.size();
        if (len > room) {
          buf_.append(p, room);
          buf_ += truncated_line_marker;
          emit(std::move(buf_));
          buf_.clear();
          skipping_ = true;
        } else {
          buf_.append(p, len);
        }
      }
      if (nl == nullptr)
        return;
      if (!skipping_) {
        emit(std::move(buf_));
        buf_.clear();
      }
      skipping_ = false;
      p = nl + 1;
      n -= len + 1;
    }
  }

  template <class Emit>
  void flush(Emit&& emit) {
    if (!skipping_ && !buf_.empty())
      emit(std::move(buf_));
    buf_.clear();
    skipping_ = false;
  }

private:
  std::string buf_;
  bool skipping_ = false;
};

} // namespace

struct process::state {
  pid_t pid = -1;
  std::string program;
  std::string cwd;
  int out_fd = -1;
  int err_fd = -1;
  int status_fd = -1;
  line_handler on_line;
  exit_handler on_exit;
  /// Guards `reaped`: signalling and reaping never race, so we never signal
  /// a recycled pid.
  std::mutex pid_mtx;
  bool reaped = false;
  /// Held while a callback runs; the destructor takes it to suppress.
  std::mutex callback_mtx;
  std::atomic<bool> suppressed{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> exited{false};
  std::thread thread;

  ~state() {
    close_fd(out_fd);
    close_fd(err_fd);
    close_fd(status_fd);
  }

  void kill_group(int sig) {
    std::lock_guard<std::mutex> guard{pid_mtx};
    if (!reaped && pid > 0)
      ::kill(-pid, sig);
  }

  void emit_line(const char* stream, std::string line) {
    std::lock_guard<std::mutex> guard{callback_mtx};
    if (!suppressed && on_line)
      on_line(stream, std::move(line));
  }

  void run();
};

void process::state::run() {
  using clock = std::chrono::steady_clock;
  // 1. Did the exec succeed? The status pipe closes on exec (CLOEXEC) or
  //    carries a report when chdir/exec failed.
  child_report rep;
  size_t got = 0;
  while (got < sizeof(rep)) {
    auto n = ::read(status_fd, reinterpret_cast<char*>(&rep) + got,
                    sizeof(rep) - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  close_fd(status_fd);
  process_result result;
  if (got == sizeof(rep)) {
    result.exec_failed = true;
    auto what = errno_text(rep.error);
    switch (static_cast<child_stage>(rep.stage)) {
      case child_stage::chdir:
        result.exec_error = "cannot change to directory '" + cwd + "': " + what;
        break;
      case child_stage::exec:
        if (rep.error == ENOENT && program.find('/') == std::string::npos)
          result.exec_error = "'" + program + "' not found on PATH";
        else
          result.exec_error = "cannot execute '" + program + "': " + what;
        break;
      default:
        result.exec_error = "cannot set up the child process: " + what;
    }
  }
  // 2. Read both pipes until EOF.
  line_splitter out_lines;
  line_splitter err_lines;
  bool leader_exited = false;
  bool stragglers_killed = false;
  auto linger_deadline = clock::time_point::max();
  auto linger = std::chrono::milliseconds{straggler_linger_ms};
  std::vector<char> chunk(64 * 1024);
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[2];
    nfds_t nfds = 0;
    int* owners[2];
    line_splitter* splitters[2];
    const char* names[2];
    if (out_fd >= 0) {
      fds[nfds] = pollfd{out_fd, POLLIN, 0};
      owners[nfds] = &out_fd;
      splitters[nfds] = &out_lines;
      names[nfds++] = "stdout";
    }
    if (err_fd >= 0) {
      fds[nfds] = pollfd{err_fd, POLLIN, 0};
      owners[nfds] = &err_fd;
      splitters[nfds] = &err_lines;
      names[nfds++] = "stderr";
    }
    // The timeout only matters when group members other than the leader
    // hold the pipes after the leader exited, or when we are stopping.
    int rc = ::poll(fds, nfds, 200);
    if (rc < 0 && errno != EINTR)
      break; // cannot happen with valid fds; do not spin
    for (nfds_t i = 0; rc > 0 && i < nfds; ++i) {
      if (fds[i].revents == 0)
        continue;
      auto n = ::read(fds[i].fd, chunk.data(), chunk.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      auto emit = [&](std::string line) { emit_line(names[i], std::move(line)); };
      if (n <= 0) {
        splitters[i]->flush(emit);
        close_fd(*owners[i]);
      } else {
        splitters[i]->feed(chunk.data(), static_cast<size_t>(n), emit);
      }
    }
    if (!leader_exited) {
      siginfo_t info;
      info.si_pid = 0;
      if (::waitid(P_PID, static_cast<id_t>(pid), &info,
                   WEXITED | WNOHANG | WNOWAIT) == 0
          && info.si_pid == pid) {
        leader_exited = true;
        linger_deadline = clock::now() + linger;
      }
    }
    if (leader_exited && (stopping || clock::now() >= linger_deadline)) {
      if (stragglers_killed)
        break; // members that left the group hold the pipes: give up
      kill_group(SIGKILL);
      stragglers_killed = true;
      linger_deadline = clock::now() + linger;
    }
  }
  auto flush_out = [&](std::string line) { emit_line("stdout", std::move(line)); };
  auto flush_err = [&](std::string line) { emit_line("stderr", std::move(line)); };
  out_lines.flush(flush_out);
  err_lines.flush(flush_err);
  close_fd(out_fd);
  close_fd(err_fd);
  // 3. Wait for the leader (it may have closed its output early), kill what
  //    is left of its group while the zombie still pins the pgid, then reap.
  if (!leader_exited) {
    siginfo_t info;
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0
           && errno == EINTR) {
    }
  }
  kill_group(SIGKILL);
  int status = 0;
  {
    std::lock_guard<std::mutex> guard{pid_mtx};
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    reaped = true;
  }
  if (result.exec_failed) {
    result.exit_code = 127;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  exited = true;
  std::lock_guard<std::mutex> guard{callback_mtx};
  if (!suppressed && on_exit)
    on_exit(std::move(result));
}

caf::expected<std::unique_ptr<process>>
process::start(const process_spec& spec, line_handler on_line,
               exit_handler on_exit) {
  auto plan = make_plan(spec);
  if (!plan)
    return plan.error();
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int status[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {out, err, status}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  if (!make_pipe(out) || !make_pipe(err) || !make_pipe(status)) {
    auto e = errno;
    close_all();
    return make_error(ec::internal, "process: pipe failed: " + errno_text(e));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    auto e = errno;
    close_all();
    return make_error(ec::internal, "process: fork failed: " + errno_text(e));
  }
  if (pid == 0)
    run_child(*plan, out[1], err[1], status[1]);
  // Also set the group from the parent, so signal_group works as soon as
  // start returns (fails harmlessly once the child has exec'd).
  ::setpgid(pid, pid);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(status[1]);
  auto st = std::make_shared<state>();
  st->pid = pid;
  st->program = spec.argv[0];
  st->cwd = spec.cwd;
  st->out_fd = out[0];
  st->err_fd = err[0];
  st->status_fd = status[0];
  st->on_line = std::move(on_line);
  st->on_exit = std::move(on_exit);
  try {
    st->thread = std::thread{[st] { st->run(); }};
  } catch (const std::system_error& e) {
    ::kill(pid, SIGKILL);
    ::kill(-pid, SIGKILL);
    int ignored = 0;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    st->reaped = true;
    return make_error(ec::internal,
                      std::string{"process: cannot start reader thread: "}
                        + e.what());
  }
  return std::unique_ptr<process>{new process{std::move(st)}};
}

process::process(std::shared_ptr<state> st) : state_(std::move(st)) {
  // nop
}

process::~process() {
  auto& st = *state_;
  st.stopping = true;
  st.kill_group(SIGKILL);
  if (st.thread.get_id() == std::this_thread::get_id()) {
    // Called from inside a callback: we already hold callback_mtx.
    st.suppressed = true;
    st.thread.detach(); // the thread keeps its own reference to the state
    return;
  }
  {
    std::lock_guard<std::mutex> guard{st.callback_mtx};
    st.suppressed = true;
  }
  if (st.thread.joinable())
    st.thread.join();
}

pid_t process::pid() const {
  return state_->pid;
}

void process::signal_group(int sig) {
  state_->kill_group(sig);
}

bool process::exited() const {
  return state_->exited;
}

std::string to_string(const process_result& x) {
  if (x.exec_failed)
    return "exec failed: " + x.exec_error;
  if (x.signal != 0) {
    std::string result = "killed by signal " + std::to_string(x.signal);
    if (auto abbrev = ::sigabbrev_np(x.signal))
      result += std::string{" (SIG"} + abbrev + ")";
    return result;
  }
  return "exit code " + std::to_string(x.exit_code);
}

} // namespace orch::worker
