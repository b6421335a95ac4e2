#pragma once

#include <caf/expected.hpp>

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace orch::worker {

/// Output lines longer than this are cut to this many bytes and marked with
/// `truncated_line_marker`; the rest of the line is dropped.
inline constexpr size_t max_line_bytes = 64 * 1024;
inline constexpr const char* truncated_line_marker = " [line truncated]";

/// What to run. No shell is involved: each argv element is one argument.
struct process_spec {
  /// argv[0] is looked up on PATH unless it contains a '/'. The PATH used
  /// is the child's (the inherited one, or `env["PATH"]` when given).
  std::vector<std::string> argv;
  /// Added to, or overriding, the inherited environment.
  std::map<std::string, std::string> env;
  /// Working directory of the child; must exist (else `exec_failed`).
  /// Empty: the worker's own working directory.
  std::string cwd;
};

/// How a process ended.
struct process_result {
  /// The exit status when the process exited normally, else -1.
  int exit_code = -1;
  /// The signal number when the process was killed by a signal, else 0.
  int signal = 0;
  /// The child could not chdir or exec (not found, not executable, ...);
  /// `exit_code` is then 127 and `exec_error` says why.
  bool exec_failed = false;
  std::string exec_error;
};

/// Renders a result for logs: "exit code 3", "killed by signal 9 (SIGKILL)"
/// or "exec failed: ...".
std::string to_string(const process_result& x);

/// Called on the reader thread for every complete output line (without the
/// '\n'); `stream` is "stdout" or "stderr" (static strings). A partial last
/// line is delivered at EOF.
using line_handler = std::function<void(const char* stream, std::string line)>;

/// Called once, on the reader thread, after the process has been reaped.
using exit_handler = std::function<void(process_result)>;

/// A child process in its own process group, with its stdout and stderr
/// read line by line by one background thread.
///
/// Lifecycle of the reader thread: it waits for the exec to succeed or fail
/// (a CLOEXEC pipe from the child), reads both pipes until EOF, waits for the
/// group leader (the child) to exit, SIGKILLs whatever is left of the process
/// group, reaps the child and calls `on_exit`. The process group never
/// outlives the job: background processes left behind by the child are killed
/// once the child has exited, after at most `straggler_linger` of output
/// draining when they still hold the pipes.
///
/// Caveat: a descendant that calls setsid() or setpgid() leaves the group and
/// escapes both `signal_group` and the final SIGKILL; if it keeps the pipes
/// open, the reader stops reading after the linger period anyway.
///
/// All signalling goes through the pid of the unreaped leader, so a recycled
/// pid is never signalled: after reaping, `signal_group` does nothing.
class process {
public:
  /// Starts `spec.argv` in a new process group (pgid == pid) with stdin from
  /// /dev/null, the signal mask cleared, all signal dispositions at default
  /// and no inherited file descriptors besides 0, 1 and 2.
  /// Returns `ec::validation_failed` for an unusable spec (empty argv, NUL
  /// bytes, bad env names) and `ec::internal` when pipe, fork or the thread
  /// cannot be created. A missing or non-executable program is not an error
  /// here: it is reported through `on_exit` with `exec_failed` set.
  [[nodiscard]] static caf::expected<std::unique_ptr<process>>
  start(const process_spec& spec, line_handler on_line, exit_handler on_exit);

  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Stops a running process: SIGKILLs the group and joins the reader thread.
  /// Once the destructor has begun, no further `on_line` or `on_exit` calls
  /// are made (`on_exit` is suppressed unless it already ran or is running;
  /// a callback that is running completes before the destructor returns).
  /// Safe to call from inside a callback (the thread is then detached and
  /// ends on its own).
  ~process();

  /// The child's pid, which is also its process group id.
  pid_t pid() const;

  /// Sends `sig` to the whole process group (kill(-pgid, sig)). Does nothing
  /// once the process has been reaped. Thread-safe.
  void signal_group(int sig);

  /// True once `on_exit` has been called (or would have been, if suppressed).
  bool exited() const;

  /// How long the reader keeps draining output after the leader exited while
  /// other group members still hold the pipes, before it kills them.
  static constexpr int straggler_linger_ms = 1000;

private:
  struct state;

  explicit process(std::shared_ptr<state> st);

  std::shared_ptr<state> state_;
};

} // namespace orch::worker
