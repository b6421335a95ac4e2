#include "orch/worker/executors.hpp"

#include "orch/error.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace orch::worker {

namespace {

caf::error invalid(const std::string& field, const std::string& message) {
  return make_validation_error({field_error{field, message}});
}

bool valid_placeholder_name(const std::string& name) {
  if (name.empty())
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'
           || c == '.';
  });
}

/// The text of a scalar parameter, or an error naming `field`.
caf::expected<std::string> scalar_text(const json& value,
                                       const std::string& field) {
  switch (value.type()) {
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::boolean:
      return std::string{value.get<bool>() ? "true" : "false"};
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return value.dump();
    default:
      return invalid(field, std::string{"a "} + value.type_name()
                              + " cannot be inserted into a command line");
  }
}

/// Reads an optional array of strings.
caf::expected<std::vector<std::string>>
string_array(const json& settings, const std::string& key,
             const std::string& prefix) {
  std::vector<std::string> result;
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null())
    return result;
  if (!it->is_array())
    return invalid(prefix + key, "must be an array of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    auto& element = (*it)[i];
    if (!element.is_string())
      return invalid(prefix + key + "[" + std::to_string(i) + "]",
                     "must be a string");
    result.push_back(element.get<std::string>());
  }
  return result;
}

caf::expected<bool> optional_bool(const json& settings, const std::string& key,
                                  const std::string& prefix) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null())
    return false;
  if (!it->is_boolean())
    return invalid(prefix + key, "must be true or false");
  return it->get<bool>();
}

caf::expected<std::optional<std::string>>
optional_string(const json& settings, const std::string& key,
                const std::string& prefix, bool required) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) {
    if (required)
      return invalid(prefix + key, "is required");
    return std::optional<std::string>{};
  }
  if (!it->is_string() || it->get<std::string>().empty())
    return invalid(prefix + key, "must be a non-empty string");
  return std::optional<std::string>{it->get<std::string>()};
}

/// `env` of any executor: values are scalars, with placeholders substituted.
caf::error read_env(const json& settings, const json& parameters,
                    const std::string& prefix,
                    std::map<std::string, std::string>& out) {
  auto it = settings.find("env");
  if (it == settings.end() || it->is_null())
    return {};
  if (!it->is_object())
    return invalid(prefix + "env", "must be an object");
  for (auto& [key, value] : it->items()) {
    auto field = prefix + "env." + key;
    if (key.empty() || key.find('=') != std::string::npos
        || key.find('\0') != std::string::npos)
      return invalid(field, "is not a valid environment variable name");
    auto text = scalar_text(value, field);
    if (!text)
      return text.error();
    auto substituted = substitute_placeholders(*text, parameters, field);
    if (!substituted)
      return substituted.error();
    out[key] = std::move(*substituted);
  }
  return {};
}

caf::expected<launch_plan> plan_command(const executor_job& job,
                                        const json& parameters) {
  const auto& s = job.settings;
  const std::string prefix = "settings.";
  auto argv = string_array(s, "argv", prefix);
  if (!argv)
    return argv.error();
  if (argv->empty())
    return invalid(prefix + "argv", "must be a non-empty array of strings");
  launch_plan plan;
  for (size_t i = 0; i < argv->size(); ++i) {
    auto arg = substitute_placeholders((*argv)[i], parameters,
                                       prefix + "argv[" + std::to_string(i)
                                         + "]");
    if (!arg)
      return arg.error();
    plan.spec.argv.push_back(std::move(*arg));
  }
  if (plan.spec.argv[0].empty())
    return invalid(prefix + "argv[0]", "must name a program");
  if (auto err = read_env(s, parameters, prefix, plan.spec.env))
    return err;
  return plan;
}

bool valid_config_key(const std::string& key) {
  if (key.empty() || !(std::isalnum(static_cast<unsigned char>(key[0]))
                       || key[0] == '_'))
    return false;
  return valid_placeholder_name(key);
}

caf::expected<launch_plan> plan_snakemake(const executor_job& job,
                                          const json& parameters) {
  const auto& s = job.settings;
  const std::string prefix = "settings.";
  auto snakefile = optional_string(s, "snakefile", prefix, true);
  if (!snakefile)
    return snakefile.error();
  std::string cores = "1";
  if (auto it = s.find("cores"); it != s.end() && !it->is_null()) {
    if (it->is_number_integer() && it->get<int64_t>() >= 1)
      cores = std::to_string(it->get<int64_t>());
    else if (it->is_string() && it->get<std::string>() == "all")
      cores = "all";
    else
      return invalid(prefix + "cores", "must be an integer >= 1 or \"all\"");
  }
  auto keep_going = optional_bool(s, "keep_going", prefix);
  if (!keep_going)
    return keep_going.error();
  auto rerun_incomplete = optional_bool(s, "rerun_incomplete", prefix);
  if (!rerun_incomplete)
    return rerun_incomplete.error();
  auto extra = string_array(s, "extra_args", prefix);
  if (!extra)
    return extra.error();
  launch_plan plan;
  auto& argv = plan.spec.argv;
  argv = {"snakemake",   "--snakefile", **snakefile,
          "--cores",     cores,         "--directory",
          job.workdir.string(), "--nocolor"};
  if (*keep_going)
    argv.emplace_back("--keep-going");
  if (*rerun_incomplete)
    argv.emplace_back("--rerun-incomplete");
  argv.insert(argv.end(), extra->begin(), extra->end());
  // --config takes any number of values: it must come last.
  std::vector<std::string> config;
  for (auto& [key, value] : parameters.items()) {
    auto field = "parameters." + key;
    if (!valid_config_key(key))
      return invalid(field, "is not usable as a Snakemake config key "
                            "(letters, digits, '_', '-', '.')");
    auto text = scalar_text(value, field);
    if (!text)
      return text.error();
    config.push_back(key + "=" + *text);
  }
  if (!config.empty()) {
    argv.emplace_back("--config");
    argv.insert(argv.end(), config.begin(), config.end());
  }
  if (auto err = read_env(s, parameters, prefix, plan.spec.env))
    return err;
  return plan;
}

caf::expected<launch_plan> plan_nextflow(const executor_job& job,
                                         const json& parameters) {
  const auto& s = job.settings;
  const std::string prefix = "settings.";
  auto pipeline = optional_string(s, "pipeline", prefix, true);
  if (!pipeline)
    return pipeline.error();
  auto profile = optional_string(s, "profile", prefix, false);
  if (!profile)
    return profile.error();
  auto revision = optional_string(s, "revision", prefix, false);
  if (!revision)
    return revision.error();
  auto extra = string_array(s, "extra_args", prefix);
  if (!extra)
    return extra.error();
  launch_plan plan;
  if (auto err = read_env(s, parameters, prefix, plan.spec.env))
    return err;
  auto params_file = job.workdir / "params.json";
  {
    std::ofstream out{params_file, std::ios::trunc};
    out << parameters.dump(2) << '\n';
    out.close();
    if (!out)
      return make_error(ec::internal,
                        "cannot write " + params_file.string());
  }
  auto& argv = plan.spec.argv;
  argv = {"nextflow",
          "run",
          **pipeline,
          "-params-file",
          params_file.string(),
          "-work-dir",
          (job.workdir / "work").string(),
          "-with-trace",
          (job.workdir / "trace.txt").string(),
          "-ansi-log",
          "false"};
  if (*profile) {
    argv.emplace_back("-profile");
    argv.push_back(**profile);
  }
  if (*revision) {
    argv.emplace_back("-r");
    argv.push_back(**revision);
  }
  argv.insert(argv.end(), extra->begin(), extra->end());
  return plan;
}

// -- text helpers -------------------------------------------------------------

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

/// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string text, size_t max) {
  if (text.size() <= max)
    return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  text.resize(end);
  return text;
}

/// `header` followed by as many of the newest `lines` as fit in
/// `max_error_bytes` (older lines are dropped first, with a note).
std::string compose_error(const std::string& header,
                          const std::vector<std::string>& lines) {
  const std::string omitted = "...";
  std::string result = cut_utf8(header, max_error_bytes);
  size_t budget = max_error_bytes - result.size();
  size_t first = lines.size();
  size_t used = 0;
  while (first > 0) {
    auto need = lines[first - 1].size() + 1;
    if (used + need > budget)
      break;
    used += need;
    --first;
  }
  if (first == lines.size() && !lines.empty() && budget > omitted.size() + 2) {
    // Not even the newest line fits: cut it.
    result += '\n';
    result += cut_utf8(lines.back(), budget - omitted.size() - 2) + omitted;
    return result;
  }
  if (first > 0 && budget >= used + omitted.size() + 1 && first < lines.size()) {
    result += '\n';
    result += omitted;
  }
  for (size_t i = first; i < lines.size(); ++i) {
    result += '\n';
    result += lines[i];
  }
  return result;
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in{file};
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

std::optional<std::string> read_file(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// True for the first line of a Snakemake error report, e.g. "Error in rule
/// x:", "MissingInputException in rule all in file ...", "SyntaxError in
/// file ...", "WorkflowError:", "Error: ...".
bool is_snakemake_error_start(std::string_view line) {
  if (starts_with(line, "Error in rule ") || starts_with(line, "Error:")
      || starts_with(line, "Error "))
    return true;
  size_t i = 0;
  while (i < line.size()
         && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_'))
    ++i;
  auto word = line.substr(0, i);
  auto ends_with = [&](std::string_view suffix) {
    return word.size() > suffix.size()
           && word.substr(word.size() - suffix.size()) == suffix;
  };
  if (!ends_with("Error") && !ends_with("Exception"))
    return false;
  auto rest = line.substr(i);
  return starts_with(rest, ":") || starts_with(rest, " in ");
}

bool is_timestamp_line(std::string_view line) {
  return line.size() > 2 && line.front() == '[' && line.back() == ']';
}

/// The error blocks of Snakemake output: each starts at an error line and
/// ends at the next blank line (at most 25 lines per block). With
/// `with_context`, an "Error in rule" block is preceded by up to 5 lines the
/// failed job printed itself just before it (those reach stderr only, not
/// the log file).
std::vector<std::string>
snakemake_error_blocks(const std::vector<std::string>& lines,
                       bool with_context) {
  std::vector<std::string> result;
  size_t block_end = 0; // first line after the previous block
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!is_snakemake_error_start(lines[i]))
      continue;
    if (with_context && starts_with(lines[i], "Error in rule ")) {
      size_t j = i;
      if (j > block_end && is_timestamp_line(lines[j - 1]))
        --j;
      size_t first = j;
      while (first > block_end && j - first < 5
             && !trim(lines[first - 1]).empty()
             && !std::isspace(static_cast<unsigned char>(lines[first - 1][0]))
             && !is_timestamp_line(lines[first - 1]))
        --first;
      result.insert(result.end(), lines.begin() + static_cast<ptrdiff_t>(first),
                    lines.begin() + static_cast<ptrdiff_t>(j));
    }
    size_t taken = 0;
    while (i < lines.size() && !trim(lines[i]).empty() && taken < 25) {
      result.push_back(lines[i]);
      ++i;
      ++taken;
    }
    block_end = i;
  }
  return result;
}

std::optional<fs::path> newest_snakemake_log(const fs::path& workdir) {
  std::error_code err;
  auto dir = workdir / ".snakemake" / "log";
  std::optional<fs::path> best;
  fs::file_time_type best_time;
  for (auto it = fs::directory_iterator{dir, err};
       !err && it != fs::directory_iterator{}; it.increment(err)) {
    auto name = it->path().filename().string();
    if (name.size() < 14 || name.substr(name.size() - 14) != ".snakemake.log")
      continue;
    auto t = it->last_write_time(err);
    if (err)
      continue;
    if (!best || t > best_time || (t == best_time && it->path() > *best)) {
      best = it->path();
      best_time = t;
    }
  }
  return best;
}

std::vector<std::string> lines_of(const tail_buffer& tail,
                                  std::string_view stream = {}) {
  std::vector<std::string> result;
  for (auto& [s, line] : tail.lines())
    if (stream.empty() || s == stream)
      result.push_back(line);
  return result;
}

std::vector<std::string> last_n(std::vector<std::string> lines, size_t n) {
  if (lines.size() > n)
    lines.erase(lines.begin(), lines.end() - static_cast<ptrdiff_t>(n));
  return lines;
}

run_summary summarize_command(const process_result& result,
                              const tail_buffer& tail) {
  run_summary summary;
  auto lines = tail.last("stderr", 5);
  if (lines.empty())
    lines = tail.last("stdout", 5);
  summary.error = compose_error(to_string(result), lines);
  return summary;
}

run_summary summarize_snakemake(const executor_job& job,
                                const process_result& result,
                                const tail_buffer& tail) {
  run_summary summary;
  std::vector<std::string> log_lines;
  if (auto log = newest_snakemake_log(job.workdir)) {
    log_lines = read_lines(*log);
    size_t skipped = 0;
    if (log_lines.size() > max_extra_log_lines) {
      skipped = log_lines.size() - (max_extra_log_lines - 1);
      summary.extra_logs.emplace_back(
        "snakemake-log", "[" + std::to_string(skipped) + " earlier lines of "
                           + log->filename().string() + " omitted]");
    }
    for (size_t i = skipped; i < log_lines.size(); ++i)
      summary.extra_logs.emplace_back("snakemake-log", log_lines[i]);
  }
  if (result.exit_code == 0 && result.signal == 0)
    return summary;
  // The output tail first: it also holds what the failed job printed. The
  // log file has every block, for when they scrolled out of the tail.
  auto blocks = snakemake_error_blocks(lines_of(tail), true);
  if (blocks.empty())
    blocks = snakemake_error_blocks(log_lines, false);
  if (blocks.empty())
    blocks = last_n(lines_of(tail, "stderr"), 10);
  summary.error = compose_error("snakemake failed: " + to_string(result),
                                blocks);
  return summary;
}

/// The end of the first failed task's .command.err, found by its hash.
std::vector<std::string> failed_task_stderr(const fs::path& workdir,
                                            const nextflow_task& task) {
  auto slash = task.hash.find('/');
  if (slash == std::string::npos || task.hash.size() <= slash + 1)
    return {};
  auto prefix = task.hash.substr(slash + 1);
  std::error_code err;
  auto dir = workdir / "work" / task.hash.substr(0, slash);
  for (auto it = fs::directory_iterator{dir, err};
       !err && it != fs::directory_iterator{}; it.increment(err)) {
    if (it->path().filename().string().rfind(prefix, 0) == 0)
      return last_n(read_lines(it->path() / ".command.err"), 5);
  }
  return {};
}

run_summary summarize_nextflow(const executor_job& job,
                               const process_result& result,
                               const tail_buffer& tail) {
  run_summary summary;
  std::vector<nextflow_task> tasks;
  if (auto text = read_file(job.workdir / "trace.txt"))
    tasks = parse_nextflow_trace(*text);
  // Per task name the last row wins (retries add rows).
  std::vector<std::string> order;
  std::map<std::string, const nextflow_task*> last;
  std::map<std::string, int> counts;
  for (auto& task : tasks) {
    if (last.emplace(task.name, &task).second)
      order.push_back(task.name);
    else
      last[task.name] = &task;
    ++counts[task.status];
  }
  auto succeeded = [](const nextflow_task& t) {
    return t.status == "COMPLETED" || t.status == "CACHED";
  };
  if (!tasks.empty()) {
    progress_report progress;
    progress.total = static_cast<int64_t>(order.size());
    for (auto& name : order)
      if (succeeded(*last[name]))
        ++progress.completed;
    summary.final_progress = progress;
    bool all = tasks.size() < max_extra_log_lines;
    for (auto& task : tasks) {
      if (all || !succeeded(task))
        summary.extra_logs.emplace_back("nextflow-trace",
                                        task.name + ": " + task.status
                                          + " (exit " + task.exit + ")");
    }
    std::string count_line = "tasks:";
    for (auto& [status, n] : counts)
      count_line += " " + std::to_string(n) + " " + status;
    summary.extra_logs.emplace_back("nextflow-trace", count_line);
  }
  if (result.exit_code == 0 && result.signal == 0)
    return summary;
  // The "ERROR ~" block if the tail still holds it, else the tail's end.
  auto lines = lines_of(tail);
  std::vector<std::string> detail;
  for (size_t i = lines.size(); i > 0; --i) {
    if (starts_with(lines[i - 1], "ERROR ~")) {
      detail.assign(lines.begin() + static_cast<ptrdiff_t>(i - 1), lines.end());
      break;
    }
  }
  if (detail.empty())
    detail = last_n(lines, 10);
  std::vector<std::string> failed;
  const nextflow_task* first_failed = nullptr;
  for (auto& name : order) {
    auto& task = *last[name];
    if (task.status == "FAILED") {
      failed.push_back(task.name + " (exit " + task.exit + ")");
      if (first_failed == nullptr)
        first_failed = &task;
    }
  }
  std::vector<std::string> parts;
  if (!failed.empty()) {
    std::string line = "failed tasks: ";
    for (size_t i = 0; i < failed.size() && i < 10; ++i)
      line += (i > 0 ? ", " : "") + failed[i];
    if (failed.size() > 10)
      line += ", ... (" + std::to_string(failed.size()) + " in all)";
    parts.push_back(line);
    auto err = failed_task_stderr(job.workdir, *first_failed);
    if (!err.empty()) {
      parts.push_back(first_failed->name + " .command.err:");
      parts.insert(parts.end(), err.begin(), err.end());
    }
  }
  parts.insert(parts.end(), detail.begin(), detail.end());
  summary.error = compose_error("nextflow failed: " + to_string(result),
                                parts);
  return summary;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> result;
  size_t begin = 0;
  while (true) {
    auto end = text.find(sep, begin);
    result.push_back(text.substr(begin, end == std::string::npos
                                          ? std::string::npos
                                          : end - begin));
    if (end == std::string::npos)
      return result;
    begin = end + 1;
  }
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr)
    return false;
  for (auto& dir : split(path, ':')) {
    auto candidate = fs::path{dir.empty() ? "." : dir} / program;
    std::error_code err;
    if (fs::is_regular_file(candidate, err)
        && ::access(candidate.c_str(), X_OK) == 0)
      return true;
  }
  return false;
}

} // namespace

caf::expected<std::string>
substitute_placeholders(const std::string& text, const json& parameters,
                        const std::string& field) {
  std::string result;
  result.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{') {
      if (i + 1 < text.size() && text[i + 1] == '{') {
        result += '{';
        ++i;
        continue;
      }
      auto close = text.find('}', i + 1);
      if (close == std::string::npos)
        return invalid(field, "unclosed '{' (write '{{' for a literal brace)");
      auto name = text.substr(i + 1, close - i - 1);
      if (!valid_placeholder_name(name))
        return invalid(field, "invalid placeholder '{" + name
                                + "}' (write '{{' for a literal brace)");
      auto it = parameters.is_object() ? parameters.find(name)
                                       : parameters.end();
      if (!parameters.is_object() || it == parameters.end())
        return invalid(field, "placeholder '{" + name
                                + "}' names no parameter");
      auto value = scalar_text(*it, "parameters." + name);
      if (!value)
        return value.error();
      result += *value;
      i = close;
    } else if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        result += '}';
        ++i;
        continue;
      }
      return invalid(field, "single '}' (write '}}' for a literal brace)");
    } else {
      result += c;
    }
  }
  return result;
}

caf::expected<launch_plan> plan_launch(const executor_job& job) {
  if (!job.settings.is_object() && !job.settings.is_null())
    return invalid("settings", "must be an object");
  json parameters = job.parameters.is_null() ? json::object() : job.parameters;
  if (!parameters.is_object())
    return invalid("parameters", "must be an object");
  if (job.workdir.empty())
    return make_error(ec::internal, "executor job without a workdir");
  if (job.executor != "command" && job.executor != "snakemake"
      && job.executor != "nextflow")
    return make_error(ec::invalid_configuration,
                      "unknown executor '" + job.executor + "'");
  std::error_code err;
  fs::create_directories(job.workdir, err);
  if (err)
    return make_error(ec::internal, "cannot create workdir "
                                      + job.workdir.string() + ": "
                                      + err.message());
  caf::expected<launch_plan> plan{caf::error{}};
  if (job.executor == "command")
    plan = plan_command(job, parameters);
  else if (job.executor == "snakemake")
    plan = plan_snakemake(job, parameters);
  else
    plan = plan_nextflow(job, parameters);
  if (plan)
    plan->spec.cwd = job.workdir.string();
  return plan;
}

std::optional<progress_report> parse_progress(const std::string& executor,
                                              const std::string& line) {
  if (executor != "snakemake")
    return std::nullopt;
  // "12 of 40 steps (30%) done"
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t at = line.find(" of "); at != std::string::npos;
       at = line.find(" of ", at + 1)) {
    size_t begin = at;
    while (begin > 0 && is_digit(line[begin - 1]))
      --begin;
    if (begin == at || (begin > 0 && line[begin - 1] != ' '))
      continue;
    size_t pos = at + 4;
    size_t num_end = pos;
    while (num_end < line.size() && is_digit(line[num_end]))
      ++num_end;
    if (num_end == pos || num_end - pos > 15 || at - begin > 15)
      continue;
    std::string_view rest{line.data() + num_end, line.size() - num_end};
    if (!starts_with(rest, " steps (") && !starts_with(rest, " step ("))
      continue;
    if (rest.find("%) done") == std::string_view::npos)
      continue;
    progress_report p;
    p.completed = std::stoll(line.substr(begin, at - begin));
    p.total = std::stoll(line.substr(pos, num_end - pos));
    if (p.completed > p.total)
      continue;
    return p;
  }
  return std::nullopt;
}

tail_buffer::tail_buffer(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {
  // nop
}

void tail_buffer::add(std::string_view stream, std::string line) {
  if (lines_.size() == capacity_)
    lines_.pop_front();
  lines_.emplace_back(std::string{stream}, std::move(line));
}

std::vector<std::string> tail_buffer::last(std::string_view stream,
                                           size_t n) const {
  std::vector<std::string> result;
  for (auto i = lines_.rbegin(); i != lines_.rend() && result.size() < n; ++i)
    if (i->first == stream)
      result.push_back(i->second);
  std::reverse(result.begin(), result.end());
  return result;
}

run_summary summarize(const executor_job& job, const process_result& result,
                      const tail_buffer& tail) {
  if (result.exec_failed) {
    run_summary summary;
    summary.error = cut_utf8("cannot start " + job.executor + ": "
                               + result.exec_error,
                             max_error_bytes);
    return summary;
  }
  run_summary summary;
  if (job.executor == "snakemake")
    summary = summarize_snakemake(job, result, tail);
  else if (job.executor == "nextflow")
    summary = summarize_nextflow(job, result, tail);
  else if (result.exit_code != 0 || result.signal != 0)
    summary = summarize_command(result, tail);
  summary.ok = result.exit_code == 0 && result.signal == 0;
  if (summary.ok)
    summary.error.clear();
  return summary;
}

std::vector<nextflow_task> parse_nextflow_trace(const std::string& text) {
  std::vector<nextflow_task> result;
  auto rows = split(text, '\n');
  if (rows.empty())
    return result;
  auto strip_cr = [](std::string& s) {
    if (!s.empty() && s.back() == '\r')
      s.pop_back();
  };
  strip_cr(rows[0]);
  auto header = split(rows[0], '\t');
  auto column = [&](const std::string& name) -> std::optional<size_t> {
    for (size_t i = 0; i < header.size(); ++i)
      if (trim(header[i]) == name)
        return i;
    return std::nullopt;
  };
  auto name_col = column("name");
  auto status_col = column("status");
  auto exit_col = column("exit");
  auto hash_col = column("hash");
  if (!name_col || !status_col)
    return result;
  for (size_t r = 1; r < rows.size(); ++r) {
    strip_cr(rows[r]);
    if (trim(rows[r]).empty())
      continue;
    auto cells = split(rows[r], '\t');
    if (cells.size() <= std::max(*name_col, *status_col))
      continue;
    nextflow_task task;
    task.name = cells[*name_col];
    task.status = cells[*status_col];
    if (exit_col && *exit_col < cells.size())
      task.exit = cells[*exit_col];
    else
      task.exit = "-";
    if (hash_col && *hash_col < cells.size())
      task.hash = cells[*hash_col];
    result.push_back(std::move(task));
  }
  return result;
}

std::vector<std::string> detect_executors() {
  std::vector<std::string> result{"mock", "command"};
  for (const char* name : {"snakemake", "nextflow"})
    if (on_path(name))
      result.emplace_back(name);
  return result;
}

} // namespace orch::worker
