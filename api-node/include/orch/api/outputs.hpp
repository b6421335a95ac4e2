#pragma once

// Job outputs: the files an executor left in the job's work directory,
// WORK_ROOT/<job id>/attempt-<n> (shared by workers and api-nodes).
// Requests name files by their path relative to that directory; anything
// that would leave it (`..`, absolute paths, symlinks pointing outside) is
// answered as if it did not exist.

#include <caf/expected.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace orch::api {

struct output_file {
  /// Relative to the work directory, '/'-separated.
  std::string path;
  uint64_t size = 0;
  std::string sha256;
};

/// WORK_ROOT/<job id>/attempt-<attempt>.
std::filesystem::path work_dir(const std::string& root,
                               const std::string& job_id, int32_t attempt);

/// Lists the regular files under `dir`, sorted by path. Skips hidden
/// entries (such as `.snakemake/`), and for Nextflow its `work/` folder.
/// At most `limit` files. `not_found` when `dir` does not exist.
caf::expected<std::vector<output_file>>
list_outputs(const std::filesystem::path& dir, const std::string& executor,
             size_t limit);

/// Resolves `rel` inside `dir` to a regular file; `not_found` for paths
/// that are absolute, contain `..` or NUL, lead out of `dir` (symlinks
/// included), or name no regular file.
caf::expected<std::filesystem::path>
resolve_output(const std::filesystem::path& dir, std::string_view rel);

/// A Content-Type for a file name: JSON, CSV, text, HTML, else binary.
std::string output_media_type(const std::filesystem::path& file);

} // namespace orch::api
