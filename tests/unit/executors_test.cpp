#include "orch/worker/executors.hpp"

#include "orch/error.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

using namespace orch;
using namespace orch::worker;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path data_dir = ORCH_UNIT_DATA_DIR;

std::string read_text(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in{file};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "orch-exec-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code err;
    fs::remove_all(path, err);
  }
};

executor_job make_job(const std::string& executor, json settings,
                      json parameters, const fs::path& workdir) {
  executor_job job;
  job.job_id = "j1";
  job.attempt = 1;
  job.pipeline_name = "demo";
  job.executor = executor;
  job.settings = std::move(settings);
  job.parameters = std::move(parameters);
  job.workdir = workdir;
  return job;
}

/// The single field error of a validation error, as "field: message".
std::string field_error_text(const caf::error& err) {
  EXPECT_EQ(code_of(err), ec::validation_failed) << render(err);
  auto errors = field_errors_of(err);
  if (errors.size() != 1)
    return "<" + std::to_string(errors.size()) + " field errors>";
  return errors[0].field + ": " + errors[0].message;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Feeds a recorded stream into a tail buffer.
tail_buffer tail_of(const fs::path& file, const char* stream,
                    size_t capacity = default_tail_lines) {
  tail_buffer tail{capacity};
  for (auto& line : read_lines(file))
    tail.add(stream, line);
  return tail;
}

process_result exited_with(int code) {
  process_result r;
  r.exit_code = code;
  return r;
}

} // namespace

// -- plan_launch: command -----------------------------------------------------

TEST(executors, command_substitutes_placeholders_per_argv_element) {
  temp_dir dir;
  auto workdir = dir.path / "j1" / "attempt-1";
  auto job = make_job(
    "command",
    {{"argv", {"python3", "{script}", "--n", "{n}", "--ratio={ratio}",
               "--flag={flag}", "{{literal}} {n}}}", "x{a}{b}y"}},
     {"env", {{"MODE", "run-{n}"}, {"THREADS", 4}, {"PLAIN", "v"}}}},
    {{"script", "/opt/s.py"}, {"n", 5}, {"ratio", 0.5}, {"flag", true},
     {"a", "A"}, {"b", -2}},
    workdir);
  auto plan = plan_launch(job);
  ASSERT_TRUE(plan) << render(plan.error());
  EXPECT_EQ(plan->spec.argv,
            (std::vector<std::string>{"python3", "/opt/s.py", "--n", "5",
                                      "--ratio=0.5", "--flag=true",
                                      "{literal} 5}", "xA-2y"}));
  EXPECT_EQ(plan->spec.env,
            (std::map<std::string, std::string>{
              {"MODE", "run-5"}, {"PLAIN", "v"}, {"THREADS", "4"}}));
  EXPECT_EQ(plan->spec.cwd, workdir.string());
  EXPECT_TRUE(fs::is_directory(workdir));
}

TEST(executors, command_keeps_an_injection_attempt_in_one_argv_element) {
  temp_dir dir;
  const std::string evil = "x; rm -rf / #$(touch /tmp/pwned) `id` && echo";
  auto job = make_job("command", {{"argv", {"echo", "{msg}", "--", "{msg}"}}},
                      {{"msg", evil}}, dir.path);
  auto plan = plan_launch(job);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->spec.argv,
            (std::vector<std::string>{"echo", evil, "--", evil}));
}

TEST(executors, command_rejects_bad_placeholders_and_settings) {
  temp_dir dir;
  auto plan_error = [&](json settings, json params) {
    auto plan = plan_launch(make_job("command", settings, params, dir.path));
    EXPECT_FALSE(plan);
    return plan ? std::string{"<no error>"} : field_error_text(plan.error());
  };
  EXPECT_EQ(plan_error({{"argv", {"run", "{missing}"}}}, json::object()),
            "settings.argv[1]: placeholder '{missing}' names no parameter");
  EXPECT_TRUE(contains(plan_error({{"argv", {"run", "{open"}}}, json::object()),
                       "settings.argv[1]: unclosed '{'"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"a}b"}}}, json::object()),
                       "settings.argv[0]: single '}'"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"{}"}}}, json::object()),
                       "invalid placeholder"));
  EXPECT_EQ(plan_error({{"argv", {"run", "{list}"}}}, {{"list", {1, 2}}}),
            "parameters.list: a array cannot be inserted into a command line");
  EXPECT_TRUE(contains(plan_error({{"argv", {"{obj}"}}}, {{"obj", {{"k", 1}}}}),
                       "parameters.obj: a object"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"{none}"}}}, {{"none", nullptr}}),
                       "parameters.none: a null"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"x"}}, {"env", {{"K", "{nope}"}}}},
                                  json::object()),
                       "settings.env.K: placeholder '{nope}'"));
  EXPECT_TRUE(contains(plan_error(json::object(), json::object()),
                       "settings.argv: must be a non-empty array"));
  EXPECT_TRUE(contains(plan_error({{"argv", json::array()}}, json::object()),
                       "settings.argv: must be a non-empty array"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"x", 3}}}, json::object()),
                       "settings.argv[1]: must be a string"));
  EXPECT_TRUE(contains(plan_error({{"argv", "echo hi"}}, json::object()),
                       "settings.argv: must be an array"));
  EXPECT_TRUE(contains(plan_error({{"argv", {"x"}}}, json::array()),
                       "parameters: must be an object"));
}

TEST(executors, rejects_an_unknown_executor) {
  temp_dir dir;
  auto plan = plan_launch(make_job("bash", json::object(), json::object(),
                                   dir.path));
  ASSERT_FALSE(plan);
  EXPECT_EQ(code_of(plan.error()), ec::invalid_configuration);
}

// -- plan_launch: snakemake ---------------------------------------------------

TEST(executors, snakemake_builds_its_command_line) {
  temp_dir dir;
  auto job = make_job(
    "snakemake",
    {{"snakefile", "/pipelines/rna/Snakefile"},
     {"cores", 2},
     {"keep_going", true},
     {"rerun_incomplete", true},
     {"extra_args", {"--printshellcmds", "--set-threads", "align={threads}"}},
     {"env", {{"TMPDIR", "/scratch/{sample}"}}}},
    {{"sample", "s1; rm -rf /"}, {"n", 3}, {"ratio", 0.25}, {"dry", false}},
    dir.path);
  auto plan = plan_launch(job);
  ASSERT_TRUE(plan) << render(plan.error());
  EXPECT_EQ(plan->spec.argv,
            (std::vector<std::string>{
              "snakemake", "--snakefile", "/pipelines/rna/Snakefile", "--cores",
              "2", "--directory", dir.path.string(), "--nocolor",
              "--keep-going", "--rerun-incomplete", "--printshellcmds",
              "--set-threads", "align={threads}", "--config", "dry=false",
              "n=3", "ratio=0.25", "sample=s1; rm -rf /"}));
  EXPECT_EQ(plan->spec.env.at("TMPDIR"), "/scratch/s1; rm -rf /");
  EXPECT_EQ(plan->spec.cwd, dir.path.string());
}

TEST(executors, snakemake_defaults_and_no_config_without_parameters) {
  temp_dir dir;
  auto plan = plan_launch(make_job(
    "snakemake", {{"snakefile", "Snakefile"}, {"cores", "all"}}, nullptr,
    dir.path));
  ASSERT_TRUE(plan) << render(plan.error());
  EXPECT_EQ(plan->spec.argv,
            (std::vector<std::string>{"snakemake", "--snakefile", "Snakefile",
                                      "--cores", "all", "--directory",
                                      dir.path.string(), "--nocolor"}));
  plan = plan_launch(make_job("snakemake", {{"snakefile", "S"}},
                              json::object(), dir.path));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->spec.argv.at(4), "1");
}

TEST(executors, snakemake_rejects_bad_settings_and_parameters) {
  temp_dir dir;
  auto plan_error = [&](json settings, json params) {
    auto plan = plan_launch(make_job("snakemake", settings, params, dir.path));
    EXPECT_FALSE(plan);
    return plan ? std::string{"<no error>"} : field_error_text(plan.error());
  };
  EXPECT_EQ(plan_error(json::object(), json::object()),
            "settings.snakefile: is required");
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}, {"cores", 0}},
                                  json::object()),
                       "settings.cores"));
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}, {"keep_going", "yes"}},
                                  json::object()),
                       "settings.keep_going"));
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}, {"extra_args", "-p"}},
                                  json::object()),
                       "settings.extra_args"));
  // A key that would turn into an option, or break k=v parsing.
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}},
                                  {{"--delete-all-output", "x"}}),
                       "parameters.--delete-all-output"));
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}}, {{"a=b", "x"}}),
                       "parameters.a=b"));
  EXPECT_TRUE(contains(plan_error({{"snakefile", "S"}}, {{"l", {1}}}),
                       "parameters.l: a array"));
}

// -- plan_launch: nextflow ----------------------------------------------------

TEST(executors, nextflow_writes_params_and_builds_its_command_line) {
  temp_dir dir;
  auto workdir = dir.path / "attempt-2";
  json params = {{"input", "samples.csv"},
                 {"genome", "GRCh38"},
                 {"skip", {"fastqc"}},
                 {"max_cpus", 4}};
  auto job = make_job("nextflow",
                      {{"pipeline", "nf-core/rnaseq"},
                       {"profile", "docker"},
                       {"revision", "3.14.0"},
                       {"extra_args", {"-resume"}},
                       {"env", {{"NXF_OPTS", "-Xms1g"}}}},
                      params, workdir);
  auto plan = plan_launch(job);
  ASSERT_TRUE(plan) << render(plan.error());
  auto w = workdir.string();
  EXPECT_EQ(plan->spec.argv,
            (std::vector<std::string>{
              "nextflow", "run", "nf-core/rnaseq", "-params-file",
              w + "/params.json", "-work-dir", w + "/work", "-with-trace",
              w + "/trace.txt", "-ansi-log", "false", "-profile", "docker",
              "-r", "3.14.0", "-resume"}));
  EXPECT_EQ(plan->spec.cwd, w);
  EXPECT_EQ(plan->spec.env.at("NXF_OPTS"), "-Xms1g");
  // Parameters go through the file, structured values included.
  EXPECT_EQ(json::parse(read_text(workdir / "params.json")), params);
  plan = plan_launch(make_job("nextflow", {{"pipeline", "/p/main.nf"}},
                              json::object(), workdir));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->spec.argv.size(), 11u);
  auto missing = plan_launch(make_job("nextflow", json::object(),
                                      json::object(), workdir));
  ASSERT_FALSE(missing);
  EXPECT_EQ(field_error_text(missing.error()), "settings.pipeline: is required");
}

// -- progress -----------------------------------------------------------------

TEST(executors, parses_snakemake_progress_from_a_recorded_run) {
  std::vector<std::pair<int64_t, int64_t>> seen;
  auto lines = read_lines(data_dir / "snakemake_success.stderr");
  ASSERT_GT(lines.size(), 30u);
  for (auto& line : lines)
    if (auto p = parse_progress("snakemake", line))
      seen.emplace_back(p->completed, p->total);
  EXPECT_EQ(seen, (std::vector<std::pair<int64_t, int64_t>>{
                    {1, 4}, {2, 4}, {3, 4}, {4, 4}}));
}

TEST(executors, ignores_lines_without_progress) {
  EXPECT_FALSE(parse_progress("snakemake", "Select jobs to execute..."));
  EXPECT_FALSE(parse_progress("snakemake", "x1 of 4 steps (25%) done"));
  EXPECT_FALSE(parse_progress("snakemake", "5 of 4 steps (125%) done"));
  EXPECT_FALSE(parse_progress("snakemake", "1 of 4 steps"));
  EXPECT_FALSE(parse_progress("snakemake", ""));
  EXPECT_FALSE(parse_progress("command", "1 of 4 steps (25%) done"));
  EXPECT_FALSE(parse_progress("nextflow", "1 of 4 steps (25%) done"));
  auto p = parse_progress("snakemake", "120 of 1000 steps (12%) done");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->completed, 120);
  EXPECT_EQ(p->total, 1000);
}

// -- tail_buffer --------------------------------------------------------------

TEST(executors, tail_buffer_keeps_the_newest_lines) {
  tail_buffer tail{3};
  tail.add("stdout", "o1");
  tail.add("stderr", "e1");
  tail.add("stdout", "o2");
  tail.add("stderr", "e2");
  ASSERT_EQ(tail.lines().size(), 3u);
  EXPECT_EQ(tail.lines().front().second, "e1");
  EXPECT_EQ(tail.last("stderr", 5), (std::vector<std::string>{"e1", "e2"}));
  EXPECT_EQ(tail.last("stderr", 1), (std::vector<std::string>{"e2"}));
  EXPECT_EQ(tail.last("stdout", 5), (std::vector<std::string>{"o2"}));
  EXPECT_EQ(tail_buffer{}.capacity(), default_tail_lines);
}

// -- summarize: command -------------------------------------------------------

TEST(executors, command_summary_names_the_exit_and_the_last_stderr_lines) {
  temp_dir dir;
  auto job = make_job("command", {{"argv", {"x"}}}, json::object(), dir.path);
  tail_buffer tail;
  for (int i = 1; i <= 8; ++i)
    tail.add("stderr", "err" + std::to_string(i));
  tail.add("stdout", "out");
  auto s = summarize(job, exited_with(3), tail);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "exit code 3\nerr4\nerr5\nerr6\nerr7\nerr8");
  process_result killed;
  killed.signal = SIGKILL;
  s = summarize(job, killed, tail_buffer{});
  EXPECT_EQ(s.error, "killed by signal 9 (SIGKILL)");
  // Only stdout: its lines stand in.
  tail_buffer out_only;
  out_only.add("stdout", "Traceback: boom");
  s = summarize(job, exited_with(1), out_only);
  EXPECT_EQ(s.error, "exit code 1\nTraceback: boom");
  s = summarize(job, exited_with(0), tail);
  EXPECT_TRUE(s.ok);
  EXPECT_TRUE(s.error.empty());
  EXPECT_TRUE(s.extra_logs.empty());
}

TEST(executors, summary_errors_are_capped) {
  temp_dir dir;
  auto job = make_job("command", {{"argv", {"x"}}}, json::object(), dir.path);
  tail_buffer tail;
  for (int i = 0; i < 5; ++i)
    tail.add("stderr", std::string(3000, 'a' + i));
  auto s = summarize(job, exited_with(2), tail);
  EXPECT_LE(s.error.size(), max_error_bytes);
  EXPECT_TRUE(contains(s.error, "exit code 2"));
  EXPECT_TRUE(contains(s.error, std::string(100, 'e'))); // the newest line
  tail_buffer one_huge;
  one_huge.add("stderr", std::string(10000, 'z'));
  s = summarize(job, exited_with(2), one_huge);
  EXPECT_LE(s.error.size(), max_error_bytes);
  EXPECT_TRUE(contains(s.error, "exit code 2\nzzz"));
}

TEST(executors, summary_of_an_exec_failure) {
  temp_dir dir;
  auto job = make_job("snakemake", {{"snakefile", "S"}}, json::object(),
                      dir.path);
  process_result r;
  r.exit_code = 127;
  r.exec_failed = true;
  r.exec_error = "'snakemake' not found on PATH";
  auto s = summarize(job, r, tail_buffer{});
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "cannot start snakemake: 'snakemake' not found on PATH");
}

// -- summarize: snakemake -----------------------------------------------------

TEST(executors, snakemake_summary_picks_the_error_block_of_a_recorded_run) {
  temp_dir dir;
  auto log_dir = dir.path / ".snakemake" / "log";
  fs::create_directories(log_dir);
  fs::copy_file(data_dir / "snakemake_failure.snakemake.log",
                log_dir / "2026-12-02T033226.460159.snakemake.log");
  auto job = make_job("snakemake", {{"snakefile", "S"}}, json::object(),
                      dir.path);
  auto tail = tail_of(data_dir / "snakemake_failure.stderr", "stderr");
  auto s = summarize(job, exited_with(1), tail);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "snakemake failed: exit code 1\n"
                     "b: reference genome missing\n"
                     "Error in rule b:\n"
                     "    jobid: 2\n"
                     "    input: a.txt\n"
                     "    output: b.txt\n"
                     "    shell:\n"
                     "        echo 'b: reference genome missing' >&2; exit 3\n"
                     "        (one of the commands exited with non-zero exit "
                     "code; note that snakemake uses bash strict mode!)");
  // The whole log file is attached.
  auto log_lines = read_lines(data_dir / "snakemake_failure.snakemake.log");
  ASSERT_EQ(s.extra_logs.size(), log_lines.size());
  for (size_t i = 0; i < log_lines.size(); ++i) {
    EXPECT_EQ(s.extra_logs[i].first, "snakemake-log");
    EXPECT_EQ(s.extra_logs[i].second, log_lines[i]);
  }
  // The block scrolled out of the tail: the log file still has it.
  auto short_tail = tail_of(data_dir / "snakemake_failure.stderr", "stderr", 3);
  s = summarize(job, exited_with(1), short_tail);
  EXPECT_TRUE(contains(s.error, "snakemake failed: exit code 1\n"
                                "Error in rule b:\n    jobid: 2"))
    << s.error;
}

TEST(executors, snakemake_summary_of_a_dag_error_and_of_a_success) {
  temp_dir dir;
  auto job = make_job("snakemake", {{"snakefile", "S"}}, json::object(),
                      dir.path);
  auto s = summarize(job, exited_with(1),
                     tail_of(data_dir / "snakemake_missing_input.stderr",
                             "stderr"));
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "snakemake failed: exit code 1\n"
                     "MissingInputException in rule all in file "
                     "/tmp/smk-missing/Snakefile, line 1:\n"
                     "Missing input files for rule all:\n"
                     "    affected files:\n"
                     "        reference.fa");
  EXPECT_TRUE(s.extra_logs.empty()); // no log file in the workdir
  s = summarize(job, exited_with(0),
                tail_of(data_dir / "snakemake_success.stderr", "stderr"));
  EXPECT_TRUE(s.ok);
  EXPECT_TRUE(s.error.empty());
  // Unrecognised failure: the last stderr lines.
  tail_buffer odd;
  odd.add("stderr", "something odd happened");
  s = summarize(job, exited_with(2), odd);
  EXPECT_EQ(s.error, "snakemake failed: exit code 2\nsomething odd happened");
}

// -- nextflow -----------------------------------------------------------------

TEST(executors, parses_a_nextflow_trace_file) {
  auto tasks = parse_nextflow_trace(
    read_text(data_dir / "nextflow_failure.trace.txt"));
  ASSERT_EQ(tasks.size(), 7u);
  EXPECT_EQ(tasks[0].name, "FASTQC (sample1)");
  EXPECT_EQ(tasks[0].status, "COMPLETED");
  EXPECT_EQ(tasks[0].exit, "0");
  EXPECT_EQ(tasks[0].hash, "3b/8f1c2a");
  EXPECT_EQ(tasks[4].name, "COUNT (sample1)");
  EXPECT_EQ(tasks[4].status, "FAILED");
  EXPECT_EQ(tasks[4].exit, "1");
  EXPECT_EQ(tasks[6].status, "ABORTED");
  EXPECT_EQ(tasks[6].exit, "-");
  // Columns are found by name, CRLF and blank lines are tolerated.
  tasks = parse_nextflow_trace("status\tname\r\nCACHED\tA (1)\r\n\r\n");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].name, "A (1)");
  EXPECT_EQ(tasks[0].status, "CACHED");
  EXPECT_EQ(tasks[0].exit, "-");
  EXPECT_TRUE(parse_nextflow_trace("").empty());
  EXPECT_TRUE(parse_nextflow_trace("task_id\thash\n1\tab/cd\n").empty());
  EXPECT_TRUE(parse_nextflow_trace("name\tstatus\nonly-one-cell\n").empty());
}

TEST(executors, nextflow_summary_uses_the_trace_and_the_error_block) {
  temp_dir dir;
  fs::copy_file(data_dir / "nextflow_failure.trace.txt", dir.path / "trace.txt");
  auto task_dir = dir.path / "work" / "9a" / "41be07c2d1e5f4a3b2c1d0e9f8a7b6";
  fs::create_directories(task_dir);
  std::ofstream{task_dir / ".command.err"}
    << "featureCounts v2.0.3\nERROR: annotation file genes.gtf not found\n";
  auto job = make_job("nextflow", {{"pipeline", "main.nf"}}, json::object(),
                      dir.path);
  // Written by hand after Nextflow 23.10's console output with
  // -ansi-log false (Nextflow is not installed here).
  tail_buffer tail;
  for (auto* line : {
         "[9a/41be07] Submitted process > COUNT (sample1)",
         "ERROR ~ Error executing process > 'COUNT (sample1)'",
         "",
         "Caused by:",
         "  Process `COUNT (sample1)` terminated with an error exit status (1)",
         "",
         "Command exit status:",
         "  1",
         "",
         "Work dir:",
         "  /work/j1/attempt-1/work/9a/41be07c2d1e5f4a3b2c1d0e9f8a7b6",
         "",
         " -- Check '.nextflow.log' file for details"})
    tail.add("stdout", line);
  auto s = summarize(job, exited_with(1), tail);
  EXPECT_FALSE(s.ok);
  ASSERT_TRUE(s.final_progress);
  EXPECT_EQ(s.final_progress->completed, 4); // FASTQC x2, ALIGN x2 (retried)
  EXPECT_EQ(s.final_progress->total, 6);
  EXPECT_TRUE(contains(s.error, "nextflow failed: exit code 1\n"
                                "failed tasks: COUNT (sample1) (exit 1)\n"
                                "COUNT (sample1) .command.err:\n"
                                "featureCounts v2.0.3\n"
                                "ERROR: annotation file genes.gtf not found\n"
                                "ERROR ~ Error executing process > "
                                "'COUNT (sample1)'\n"))
    << s.error;
  EXPECT_TRUE(contains(s.error, "terminated with an error exit status (1)"));
  EXPECT_FALSE(contains(s.error, "Submitted process"));
  EXPECT_FALSE(contains(s.error, "ALIGN")); // its retry completed
  ASSERT_EQ(s.extra_logs.size(), 8u);
  EXPECT_EQ(s.extra_logs[0],
            (std::pair<std::string, std::string>{
              "nextflow-trace", "FASTQC (sample1): COMPLETED (exit 0)"}));
  EXPECT_EQ(s.extra_logs[6].second, "COUNT (sample2): ABORTED (exit -)");
  EXPECT_EQ(s.extra_logs[7].second,
            "tasks: 1 ABORTED 1 CACHED 3 COMPLETED 2 FAILED");
}

TEST(executors, nextflow_summary_of_a_success_and_without_trace) {
  temp_dir dir;
  fs::copy_file(data_dir / "nextflow_success.trace.txt", dir.path / "trace.txt");
  auto job = make_job("nextflow", {{"pipeline", "main.nf"}}, json::object(),
                      dir.path);
  auto s = summarize(job, exited_with(0), tail_buffer{});
  EXPECT_TRUE(s.ok);
  EXPECT_TRUE(s.error.empty());
  ASSERT_TRUE(s.final_progress);
  EXPECT_EQ(s.final_progress->completed, 3);
  EXPECT_EQ(s.final_progress->total, 3);
  fs::remove(dir.path / "trace.txt");
  tail_buffer tail;
  tail.add("stderr", "ERROR ~ No such file: main.nf");
  s = summarize(job, exited_with(1), tail);
  EXPECT_FALSE(s.final_progress);
  EXPECT_EQ(s.error, "nextflow failed: exit code 1\nERROR ~ No such file: main.nf");
}

// -- detect_executors ---------------------------------------------------------

TEST(executors, detects_executors_on_path) {
  temp_dir dir;
  auto fake = dir.path / "nextflow";
  std::ofstream{fake} << "#!/bin/sh\n";
  ::chmod(fake.c_str(), 0755);
  std::ofstream{dir.path / "snakemake"} << "not executable\n";
  std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", dir.path.c_str(), 1);
  auto found = detect_executors();
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(found, (std::vector<std::string>{"mock", "command", "nextflow"}));
  ::setenv("PATH", "/nonexistent", 1);
  found = detect_executors();
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(found, (std::vector<std::string>{"mock", "command"}));
}

// -- plan, run and summarize together ------------------------------------------

namespace {

struct run_outcome {
  process_result result;
  run_summary summary;
  std::vector<progress_report> progress;
  std::vector<std::pair<std::string, std::string>> lines;
};

/// Plans, runs and summarizes `job` the way the worker does.
std::optional<run_outcome> run_job(const executor_job& job) {
  auto plan = plan_launch(job);
  if (!plan) {
    ADD_FAILURE() << render(plan.error());
    return std::nullopt;
  }
  std::mutex mtx;
  std::condition_variable cv;
  run_outcome out;
  bool done = false;
  tail_buffer tail;
  auto proc = process::start(
    plan->spec,
    [&](const char* stream, std::string line) {
      // The reader thread: feed the tail and parse progress.
      if (auto p = parse_progress(job.executor, line))
        out.progress.push_back(*p);
      out.lines.emplace_back(stream, line);
      tail.add(stream, std::move(line));
    },
    [&](process_result r) {
      auto summary = summarize(job, r, tail);
      std::lock_guard<std::mutex> guard{mtx};
      out.result = r;
      out.summary = std::move(summary);
      done = true;
      cv.notify_all();
    });
  if (!proc) {
    ADD_FAILURE() << render(proc.error());
    return std::nullopt;
  }
  std::unique_lock<std::mutex> guard{mtx};
  if (!cv.wait_for(guard, 60s, [&] { return done; })) {
    ADD_FAILURE() << "job did not finish";
    return std::nullopt;
  }
  return out;
}

bool snakemake_installed() {
  auto found = detect_executors();
  return std::find(found.begin(), found.end(), "snakemake") != found.end();
}

} // namespace

TEST(executors, runs_a_command_job_without_a_shell) {
  temp_dir dir;
  const std::string evil = "'; touch injected; echo '";
  auto job = make_job(
    "command",
    {{"argv", {"/bin/sh", "-c", "echo \"$1\" >&2; pwd; exit 4", "sh", "{msg}"}}},
    {{"msg", evil}}, dir.path / "w");
  auto out = run_job(job);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->result.exit_code, 4);
  EXPECT_FALSE(out->summary.ok);
  EXPECT_EQ(out->summary.error, "exit code 4\n" + evil);
  EXPECT_FALSE(fs::exists(dir.path / "w" / "injected"));
  EXPECT_TRUE(std::find(out->lines.begin(), out->lines.end(),
                        std::pair<std::string, std::string>{
                          "stdout", fs::canonical(dir.path / "w").string()})
              != out->lines.end());
}

TEST(executors, runs_real_snakemake_when_installed) {
  if (!snakemake_installed())
    GTEST_SKIP() << "snakemake not on PATH";
  temp_dir dir;
  fs::copy_file(data_dir / "snakemake_three_rules.smk", dir.path / "Snakefile");
  auto ok = run_job(make_job("snakemake",
                             {{"snakefile", (dir.path / "Snakefile").string()},
                              {"cores", 1}},
                             {{"sample", "s 1"}, {"n", 3}},
                             dir.path / "ok" / "attempt-1"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->result.exit_code, 0);
  EXPECT_TRUE(ok->summary.ok) << ok->summary.error;
  ASSERT_FALSE(ok->progress.empty());
  EXPECT_EQ(ok->progress.back().completed, 4);
  EXPECT_EQ(ok->progress.back().total, 4);
  EXPECT_FALSE(ok->summary.extra_logs.empty());
  EXPECT_TRUE(fs::exists(dir.path / "ok" / "attempt-1" / "c.txt"));
  fs::copy_file(data_dir / "snakemake_failing.smk", dir.path / "Failing");
  auto failed = run_job(make_job("snakemake",
                                 {{"snakefile", (dir.path / "Failing").string()},
                                  {"cores", 1}},
                                 json::object(), dir.path / "fail"));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->result.exit_code, 1);
  EXPECT_FALSE(failed->summary.ok);
  EXPECT_TRUE(contains(failed->summary.error,
                       "b: reference genome missing\nError in rule b:\n"))
    << failed->summary.error;
}
