#include "orch/worker/process.hpp"

#include "orch/error.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

using namespace orch;
using namespace orch::worker;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr auto deadline = 10s;

/// Collects the callbacks of one process.
struct collector {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::string>> lines;
  std::optional<process_result> result;
  int exit_calls = 0;

  line_handler on_line() {
    return [this](const char* stream, std::string line) {
      std::lock_guard<std::mutex> guard{mtx};
      lines.emplace_back(stream, std::move(line));
      cv.notify_all();
    };
  }

  exit_handler on_exit() {
    return [this](process_result r) {
      std::lock_guard<std::mutex> guard{mtx};
      result = std::move(r);
      ++exit_calls;
      cv.notify_all();
    };
  }

  /// Waits until the process exited; returns its result.
  process_result wait_exit() {
    std::unique_lock<std::mutex> guard{mtx};
    if (!cv.wait_for(guard, deadline, [&] { return result.has_value(); })) {
      ADD_FAILURE() << "process did not exit within the deadline";
      return {};
    }
    return *result;
  }

  /// Waits for at least `n` lines; returns them.
  std::vector<std::pair<std::string, std::string>> wait_lines(size_t n) {
    std::unique_lock<std::mutex> guard{mtx};
    if (!cv.wait_for(guard, deadline, [&] { return lines.size() >= n; }))
      ADD_FAILURE() << "got " << lines.size() << " lines, expected " << n;
    return lines;
  }

  std::vector<std::string> of(const std::string& stream) {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<std::string> result;
    for (auto& [s, l] : lines)
      if (s == stream)
        result.push_back(l);
    return result;
  }
};

std::unique_ptr<process> start_or_fail(process_spec spec, collector& c) {
  auto p = process::start(spec, c.on_line(), c.on_exit());
  if (!p) {
    ADD_FAILURE() << "start failed: " << render(p.error());
    return nullptr;
  }
  return std::move(*p);
}

process_spec sh(std::string script) {
  process_spec spec;
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  return spec;
}

/// True while any non-zombie process is in process group `pgid` (zombies
/// may linger when this container's init does not reap orphans).
bool group_alive(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH)
    return false;
  for (auto& entry : fs::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream in{entry.path() / "stat"};
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    // After "(comm)": state ppid pgrp ...
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %ld %ld", &state, &ppid,
                    &pgrp) == 3
        && pgrp == pgid && state != 'Z' && state != 'X')
      return true;
  }
  return false;
}

bool process_alive(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat;
  if (!std::getline(in, stat))
    return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size()
         && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

/// Polls `pred` until it holds or the deadline passes.
template <class Pred>
bool eventually(Pred pred) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (pred())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "orch-process-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code err;
    fs::remove_all(path, err);
  }
};

} // namespace

TEST(process, delivers_lines_of_both_streams) {
  collector c;
  auto p = start_or_fail(
    sh("echo out1; echo err1 >&2; echo out2; echo; printf partial"), c);
  ASSERT_NE(p, nullptr);
  EXPECT_GT(p->pid(), 0);
  auto r = c.wait_exit();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(r.exec_failed);
  EXPECT_EQ(c.of("stdout"),
            (std::vector<std::string>{"out1", "out2", "", "partial"}));
  EXPECT_EQ(c.of("stderr"), (std::vector<std::string>{"err1"}));
  EXPECT_TRUE(p->exited());
  p.reset();
  EXPECT_EQ(c.exit_calls, 1);
}

TEST(process, keeps_line_order_across_reads) {
  collector c;
  auto p = start_or_fail(sh("seq 1 20000"), c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.wait_exit().exit_code, 0);
  auto out = c.of("stdout");
  ASSERT_EQ(out.size(), 20000u);
  for (size_t i = 0; i < out.size(); ++i)
    ASSERT_EQ(out[i], std::to_string(i + 1));
}

TEST(process, cuts_overlong_lines) {
  collector c;
  auto p = start_or_fail(
    sh("head -c 70000 /dev/zero | tr '\\000' a; echo; echo next"), c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.wait_exit().exit_code, 0);
  auto out = c.of("stdout");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], std::string(max_line_bytes, 'a') + truncated_line_marker);
  EXPECT_EQ(out[1], "next");
}

TEST(process, reports_exit_codes_and_signals) {
  {
    collector c;
    auto p = start_or_fail(sh("exit 7"), c);
    ASSERT_NE(p, nullptr);
    auto r = c.wait_exit();
    EXPECT_EQ(r.exit_code, 7);
    EXPECT_EQ(r.signal, 0);
    EXPECT_EQ(to_string(r), "exit code 7");
  }
  {
    collector c;
    auto p = start_or_fail(sh("kill -KILL $$"), c);
    ASSERT_NE(p, nullptr);
    auto r = c.wait_exit();
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_EQ(r.signal, SIGKILL);
    EXPECT_EQ(to_string(r), "killed by signal 9 (SIGKILL)");
  }
}

TEST(process, reports_exec_failure_of_a_missing_program) {
  collector c;
  process_spec spec;
  spec.argv = {"orch-no-such-program-4711", "--help"};
  auto p = start_or_fail(spec, c);
  ASSERT_NE(p, nullptr);
  auto r = c.wait_exit();
  EXPECT_TRUE(r.exec_failed);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_EQ(r.exec_error, "'orch-no-such-program-4711' not found on PATH");
  EXPECT_TRUE(c.of("stdout").empty());
  EXPECT_TRUE(c.of("stderr").empty());
}

TEST(process, reports_exec_failure_of_a_path_and_of_a_non_executable) {
  temp_dir dir;
  {
    collector c;
    process_spec spec;
    spec.argv = {(dir.path / "missing").string()};
    auto p = start_or_fail(spec, c);
    ASSERT_NE(p, nullptr);
    auto r = c.wait_exit();
    EXPECT_TRUE(r.exec_failed);
    EXPECT_NE(r.exec_error.find("No such file or directory"), std::string::npos)
      << r.exec_error;
  }
  {
    auto file = dir.path / "not-executable";
    std::ofstream{file} << "#!/bin/sh\necho hi\n";
    ::chmod(file.c_str(), 0644);
    collector c;
    process_spec spec;
    spec.argv = {file.string()};
    auto p = start_or_fail(spec, c);
    ASSERT_NE(p, nullptr);
    auto r = c.wait_exit();
    EXPECT_TRUE(r.exec_failed);
    EXPECT_NE(r.exec_error.find("Permission denied"), std::string::npos)
      << r.exec_error;
  }
}

TEST(process, reports_a_missing_working_directory_as_exec_failure) {
  collector c;
  auto spec = sh("echo never");
  spec.cwd = "/nonexistent/orch-test-dir";
  auto p = start_or_fail(spec, c);
  ASSERT_NE(p, nullptr);
  auto r = c.wait_exit();
  EXPECT_TRUE(r.exec_failed);
  EXPECT_NE(r.exec_error.find("/nonexistent/orch-test-dir"), std::string::npos);
  EXPECT_TRUE(c.of("stdout").empty());
}

TEST(process, rejects_unusable_specs) {
  collector c;
  process_spec empty;
  auto p = process::start(empty, c.on_line(), c.on_exit());
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), ec::validation_failed);
  auto bad_env = sh("true");
  bad_env.env["A=B"] = "x";
  p = process::start(bad_env, c.on_line(), c.on_exit());
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), ec::validation_failed);
  EXPECT_EQ(c.exit_calls, 0);
}

TEST(process, applies_environment_working_directory_and_null_stdin) {
  temp_dir dir;
  collector c;
  auto spec = sh("echo \"$ORCH_TEST_VALUE\"; echo \"$HOME\"; pwd; cat; echo eof");
  spec.env["ORCH_TEST_VALUE"] = "a b; $(c)";
  spec.env["HOME"] = "/overridden";
  spec.cwd = dir.path.string();
  auto p = start_or_fail(spec, c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.wait_exit().exit_code, 0);
  EXPECT_EQ(c.of("stdout"),
            (std::vector<std::string>{"a b; $(c)", "/overridden",
                                      fs::canonical(dir.path).string(), "eof"}));
}

TEST(process, looks_up_the_program_on_the_childs_path) {
  temp_dir dir;
  auto tool = dir.path / "orch-test-tool";
  std::ofstream{tool} << "#!/bin/sh\necho tool ran \"$@\"\n";
  ::chmod(tool.c_str(), 0755);
  collector c;
  process_spec spec;
  spec.argv = {"orch-test-tool", "x y"};
  spec.env["PATH"] = dir.path.string() + ":/usr/bin:/bin";
  auto p = start_or_fail(spec, c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.wait_exit().exit_code, 0);
  EXPECT_EQ(c.of("stdout"), (std::vector<std::string>{"tool ran x y"}));
}

TEST(process, inherits_no_descriptors_of_the_parent) {
  // A descriptor without CLOEXEC, like a socket some library opened.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  collector c;
  auto p = start_or_fail(sh("ls /proc/$$/fd"), c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.wait_exit().exit_code, 0);
  ::close(leaked);
  auto fds = c.of("stdout");
  EXPECT_EQ(std::count(fds.begin(), fds.end(), std::to_string(leaked)), 0);
  for (auto& fd : fds)
    EXPECT_LT(std::stoi(fd), 3) << "inherited fd " << fd;
}

TEST(process, unblocks_signals_the_worker_blocks) {
  // The worker-node blocks SIGTERM in every thread; the child must not.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  collector c;
  auto p = start_or_fail(
    sh("trap 'echo got-term; exit 5' TERM; sleep 300 & echo ready; wait"), c);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_NE(p, nullptr);
  auto lines = c.wait_lines(1);
  ASSERT_EQ(lines.at(0).second, "ready");
  p->signal_group(SIGTERM);
  auto r = c.wait_exit();
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(c.of("stdout"), (std::vector<std::string>{"ready", "got-term"}));
}

TEST(process, signal_group_kills_the_whole_group_including_grandchildren) {
  collector c;
  // The shell (the group leader) starts a grandchild and waits.
  auto p = start_or_fail(sh("sleep 300 & echo $!; sleep 300"), c);
  ASSERT_NE(p, nullptr);
  auto pgid = p->pid();
  auto lines = c.wait_lines(1);
  auto grandchild = static_cast<pid_t>(std::stol(lines.at(0).second));
  ASSERT_TRUE(process_alive(grandchild));
  EXPECT_EQ(::getpgid(grandchild), pgid);
  p->signal_group(SIGKILL);
  auto r = c.wait_exit();
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_TRUE(eventually([&] { return !group_alive(pgid); }));
  EXPECT_TRUE(eventually([&] { return !process_alive(grandchild); }));
  // Harmless once gone.
  p->signal_group(SIGKILL);
  EXPECT_EQ(c.exit_calls, 1);
}

TEST(process, kills_stragglers_that_hold_the_pipes_after_the_leader_exits) {
  collector c;
  // The shell exits at once; its background sleep keeps stdout open.
  auto p = start_or_fail(sh("sleep 300 & echo $!"), c);
  ASSERT_NE(p, nullptr);
  auto pgid = p->pid();
  auto r = c.wait_exit();
  EXPECT_EQ(r.exit_code, 0);
  auto out = c.of("stdout");
  ASSERT_EQ(out.size(), 1u);
  auto straggler = static_cast<pid_t>(std::stol(out[0]));
  EXPECT_TRUE(eventually([&] { return !process_alive(straggler); }));
  EXPECT_TRUE(eventually([&] { return !group_alive(pgid); }));
}

TEST(process, destructor_kills_a_running_group_and_suppresses_on_exit) {
  collector c;
  auto p = start_or_fail(sh("sleep 300 & echo $!; sleep 300"), c);
  ASSERT_NE(p, nullptr);
  auto pgid = p->pid();
  auto lines = c.wait_lines(1);
  auto grandchild = static_cast<pid_t>(std::stol(lines.at(0).second));
  auto before = std::chrono::steady_clock::now();
  p.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
  EXPECT_TRUE(eventually([&] { return !group_alive(pgid); }));
  EXPECT_TRUE(eventually([&] { return !process_alive(grandchild); }));
  std::lock_guard<std::mutex> guard{c.mtx};
  EXPECT_EQ(c.exit_calls, 0);
}

TEST(process, may_be_destroyed_from_its_exit_handler) {
  // Shared with the callback, which outlives this test on a detached thread.
  struct context {
    std::mutex mtx;
    std::unique_ptr<process> holder;
    std::promise<void> stored;
    std::promise<process_result> done;
  };
  auto ctx = std::make_shared<context>();
  auto stored = ctx->stored.get_future().share();
  auto done = ctx->done.get_future();
  auto p = process::start(
    sh("echo bye"), [](const char*, std::string) {},
    [ctx, stored](process_result r) {
      stored.wait(); // until `holder` is set
      std::lock_guard<std::mutex> guard{ctx->mtx};
      ctx->holder.reset(); // destroys the process on its own reader thread
      ctx->done.set_value(r);
    });
  ASSERT_TRUE(p);
  {
    std::lock_guard<std::mutex> guard{ctx->mtx};
    ctx->holder = std::move(*p);
  }
  ctx->stored.set_value();
  ASSERT_EQ(done.wait_for(deadline), std::future_status::ready);
  EXPECT_EQ(done.get().exit_code, 0);
  std::lock_guard<std::mutex> guard{ctx->mtx};
  EXPECT_EQ(ctx->holder, nullptr);
}
