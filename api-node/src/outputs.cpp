#include "orch/api/outputs.hpp"

#include "orch/error.hpp"
#include "orch/sha256.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

namespace orch::api {

namespace fs = std::filesystem;

namespace {

// Whether `p` (canonical) lies inside `dir` (canonical).
bool inside(const fs::path& dir, const fs::path& p) {
  auto d = dir.begin();
  auto i = p.begin();
  for (; d != dir.end(); ++d, ++i)
    if (i == p.end() || *i != *d)
      return false;
  return i != p.end();
}

// Digests are remembered by (path, size, mtime): listing a finished job's
// outputs again does not read every file again.
std::string cached_sha256(const fs::path& file, uint64_t size) {
  using key = std::tuple<std::string, uint64_t, int64_t>;
  static std::mutex mtx;
  static std::map<key, std::string> cache;
  std::error_code ec;
  auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
  key k{file.string(), size, static_cast<int64_t>(mtime)};
  {
    std::lock_guard<std::mutex> guard{mtx};
    if (auto i = cache.find(k); i != cache.end())
      return i->second;
  }
  auto digest = sha256_file(file);
  if (!digest)
    return {};
  std::lock_guard<std::mutex> guard{mtx};
  if (cache.size() > 100000)
    cache.clear();
  cache.emplace(std::move(k), *digest);
  return *digest;
}

} // namespace

fs::path work_dir(const std::string& root, const std::string& job_id,
                  int32_t attempt) {
  return fs::path{root} / job_id / ("attempt-" + std::to_string(attempt));
}

caf::expected<std::vector<output_file>>
list_outputs(const fs::path& dir, const std::string& executor, size_t limit) {
  std::error_code ec;
  auto root = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(root, ec))
    return make_error(ec::not_found, "no work directory");
  std::vector<output_file> result;
  fs::recursive_directory_iterator it{
    root, fs::directory_options::skip_permission_denied, ec};
  if (ec)
    return make_error(ec::not_found, "cannot read the work directory");
  for (; it != fs::recursive_directory_iterator{}; it.increment(ec)) {
    if (ec)
      break;
    auto rel = it->path().lexically_relative(root);
    auto name = it->path().filename().string();
    bool hidden = !name.empty() && name[0] == '.';
    bool nf_work = executor == "nextflow" && it.depth() == 0 && name == "work";
    if (hidden || nf_work) {
      if (it->is_directory(ec))
        it.disable_recursion_pending();
      continue;
    }
    // Symlinks count only when they resolve to a file inside the folder.
    auto real = fs::canonical(it->path(), ec);
    if (ec || !inside(root, real) || !fs::is_regular_file(real, ec)) {
      if (it->is_symlink(ec))
        it.disable_recursion_pending();
      continue;
    }
    auto size = fs::file_size(real, ec);
    if (ec)
      continue;
    result.push_back({rel.generic_string(), size, cached_sha256(real, size)});
    if (result.size() >= limit)
      break;
  }
  std::sort(result.begin(), result.end(),
            [](auto& a, auto& b) { return a.path < b.path; });
  return result;
}

caf::expected<fs::path> resolve_output(const fs::path& dir,
                                       std::string_view rel) {
  auto missing = [&] {
    return make_error(ec::not_found, "no output named " + std::string{rel});
  };
  if (rel.empty() || rel.front() == '/' || rel.find('\0') != rel.npos
      || rel.find('\\') != rel.npos)
    return missing();
  fs::path p{std::string{rel}};
  for (auto& part : p)
    if (part == ".." || part == ".")
      return missing();
  std::error_code ec;
  auto root = fs::canonical(dir, ec);
  if (ec)
    return missing();
  auto real = fs::canonical(root / p, ec);
  if (ec || !inside(root, real) || !fs::is_regular_file(real, ec))
    return missing();
  return real;
}

std::string output_media_type(const fs::path& file) {
  auto ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (ext == ".json")
    return "application/json";
  if (ext == ".csv")
    return "text/csv";
  if (ext == ".tsv")
    return "text/tab-separated-values";
  if (ext == ".txt" || ext == ".log" || ext == ".md")
    return "text/plain";
  if (ext == ".html" || ext == ".htm")
    return "text/html";
  if (ext == ".png")
    return "image/png";
  if (ext == ".svg")
    return "image/svg+xml";
  return "application/octet-stream";
}

} // namespace orch::api
