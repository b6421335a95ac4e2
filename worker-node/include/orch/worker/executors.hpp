#pragma once

#include "orch/worker/process.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orch::worker {

/// Lines kept by a `tail_buffer` by default.
inline constexpr size_t default_tail_lines = 20;
/// Longest `run_summary::error`, in bytes.
inline constexpr size_t max_error_bytes = 4096;
/// Most lines `summarize` attaches to `run_summary::extra_logs` (for a
/// Snakemake log the newest lines are kept, after a line saying how many
/// were omitted; for a Nextflow trace only the unsuccessful tasks are
/// listed when there are more tasks than this).
inline constexpr size_t max_extra_log_lines = 2000;

/// Steps done of a run.
struct progress_report {
  int64_t completed = 0;
  int64_t total = 0;
};

/// One attempt of a job, as an executor sees it.
struct executor_job {
  std::string job_id;
  int32_t attempt = 0;
  std::string pipeline_name;
  /// "command", "snakemake" or "nextflow".
  std::string executor;
  /// The executor settings from the pipeline catalog (an object).
  nlohmann::json settings;
  /// The resolved job parameters (an object).
  nlohmann::json parameters;
  /// WORK_ROOT/<job id>/attempt-<n>; created by `plan_launch` if missing.
  std::filesystem::path workdir;
};

/// The process to start for a job.
struct launch_plan {
  process_spec spec;
};

/// Builds the process for a job, creates its workdir and, for Nextflow,
/// writes `<workdir>/params.json`.
///
/// Settings per executor (keys not listed are ignored):
/// - command: `argv` (non-empty array of strings), `env` (object).
/// - snakemake: `snakefile` (string, required), `cores` (integer >= 1 or
///   "all", default 1), `keep_going`, `rerun_incomplete` (booleans, default
///   false), `extra_args` (array of strings), `env` (object). Runs
///   `snakemake --snakefile F --cores N --directory W --nocolor
///   [--keep-going] [--rerun-incomplete] [extra_args...] [--config k=v ...]`.
/// - nextflow: `pipeline` (string, required), `profile`, `revision`
///   (strings, optional), `extra_args`, `env`. Runs `nextflow run P
///   -params-file W/params.json -work-dir W/work -with-trace W/trace.txt
///   -ansi-log false [-profile p] [-r rev] [extra_args...]`.
///
/// `{name}` placeholders are substituted from the parameters in command
/// `argv` elements and in `env` values of every executor (`{{` and `}}` are
/// literal braces). A string parameter is inserted as is, a number as its
/// JSON text, a boolean as true/false; null, arrays and objects are errors.
/// `extra_args` are passed literally (Snakemake and Nextflow have their own
/// `{...}` syntax). No shell is ever involved. The working directory is
/// always the workdir. Returns `ec::validation_failed` (naming the setting)
/// for bad settings or parameters, `ec::invalid_configuration` for an
/// unknown executor, `ec::internal` when the workdir or params.json cannot
/// be written.
[[nodiscard]] caf::expected<launch_plan> plan_launch(const executor_job& job);

/// Substitutes `{name}` placeholders in `text` from `parameters` (see
/// `plan_launch`); `field` names the setting in error messages.
[[nodiscard]] caf::expected<std::string>
substitute_placeholders(const std::string& text,
                        const nlohmann::json& parameters,
                        const std::string& field);

/// Progress found in one output line, if any. Snakemake: "N of M steps
/// (X%) done". Other executors report no progress from their output.
std::optional<progress_report> parse_progress(const std::string& executor,
                                              const std::string& line);

/// The last lines of a process's output, to build error messages. Not
/// synchronized: feed it from `on_line` and read it in `on_exit` (both run
/// on the process's reader thread).
class tail_buffer {
public:
  explicit tail_buffer(size_t capacity = default_tail_lines);

  /// Appends one line, dropping the oldest when full.
  void add(std::string_view stream, std::string line);

  /// The kept lines as (stream, line), oldest first.
  const std::deque<std::pair<std::string, std::string>>& lines() const {
    return lines_;
  }

  /// The kept lines of one stream, oldest first, at most `n` of the newest.
  std::vector<std::string> last(std::string_view stream, size_t n) const;

  size_t capacity() const {
    return capacity_;
  }

private:
  size_t capacity_;
  std::deque<std::pair<std::string, std::string>> lines_;
};

/// What a finished run amounts to.
struct run_summary {
  bool ok = false;
  /// Empty when ok; at most `max_error_bytes`. Command: the last stderr
  /// lines and "exit code N" / "killed by signal S". Snakemake: the error
  /// blocks ("Error in rule X:" with what the failed job printed just before
  /// it, "MissingInputException ...", ...) from the output tail, else from
  /// the log file, else the last stderr lines.
  /// Nextflow: the "ERROR ~" block (or the output tail), the failed tasks of
  /// the trace and the end of the first failed task's .command.err.
  std::string error;
  /// (stream, line) to attach to the job's log: "snakemake-log" with the
  /// newest .snakemake/log/*.snakemake.log of the workdir, or
  /// "nextflow-trace" with one line per task and a count per status.
  /// Snakemake's log repeats what it wrote on stderr: the caller may choose
  /// to forward it only when the run failed.
  std::vector<std::pair<std::string, std::string>> extra_logs;
  /// Nextflow: tasks completed (or cached) / tasks seen in the trace.
  std::optional<progress_report> final_progress;
};

/// Judges a finished run. Reads files of the workdir (Snakemake log,
/// Nextflow trace): call it off the actor's thread, e.g. in `on_exit`.
run_summary summarize(const executor_job& job, const process_result& result,
                      const tail_buffer& tail);

/// One row of a Nextflow trace file.
struct nextflow_task {
  std::string name;   // e.g. "FASTQC (sample1)"
  std::string status; // COMPLETED, FAILED, ABORTED, CACHED, ...
  std::string exit;   // the exit status as written, "-" when none
  std::string hash;   // e.g. "3b/8f1c2a": work/3b/8f1c2a... is its directory
};

/// Parses a Nextflow trace file: tab-separated with a header row naming the
/// columns (task_id, hash, native_id, name, status, exit, ...). Columns are
/// found by name; rows too short or a header without `name` and `status`
/// yield nothing.
std::vector<nextflow_task> parse_nextflow_trace(const std::string& text);

/// The executors this machine can run: always "mock" and "command";
/// "snakemake" and "nextflow" when an executable of that name is on PATH.
std::vector<std::string> detect_executors();

} // namespace orch::worker
