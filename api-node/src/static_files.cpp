#include "orch/api/static_files.hpp"

#include "orch/api/openapi.hpp"
#include "orch/sha256.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#ifndef ORCH_DOCS_BUILD_DIR
#  define ORCH_DOCS_BUILD_DIR ""
#endif
#ifndef ORCH_DOCS_INSTALL_DIR
#  define ORCH_DOCS_INSTALL_DIR "/usr/local/share/orch/docs"
#endif

namespace fs = std::filesystem;

namespace orch::api {

namespace {

/// Same-origin only; no inline script anywhere. Swagger UI sets inline
/// styles and uses data: images.
constexpr const char* ui_policy
  = "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";
constexpr const char* docs_policy
  = "default-src 'none'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";
constexpr const char* fallback_policy
  = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

/// Revalidate every time: ETags make that a 304 without a body.
constexpr const char* revalidate = "no-cache";

/// What must be in a folder for it to count as Swagger UI.
constexpr std::array<const char*, 2> swagger_files = {"swagger-ui-bundle.js",
                                                      "swagger-ui.css"};

/// The largest file /docs/{asset} reads from the folder.
constexpr uintmax_t max_docs_file = 16u << 20;

std::shared_ptr<static_file> make_file(std::string body,
                                       std::string_view name,
                                       const char* policy) {
  auto f = std::make_shared<static_file>();
  sha256 h;
  h.update(body);
  f->etag = "\"" + h.hex_digest().substr(0, 32) + "\"";
  f->body = std::move(body);
  f->content_type = static_media_type(name);
  f->cache_control = revalidate;
  f->content_security_policy = policy;
  return f;
}

std::string_view embedded(std::string_view name) {
  for (size_t i = 0; i < detail::embedded_file_count; ++i)
    if (name == detail::embedded_files[i].name)
      return detail::embedded_files[i].body;
  return {};
}

bool has_swagger(const fs::path& dir) {
  std::error_code err;
  return std::all_of(swagger_files.begin(), swagger_files.end(),
                     [&](const char* f) {
                       return fs::is_regular_file(dir / f, err);
                     });
}

fs::path next_to_binary() {
  std::error_code err;
  auto exe = fs::read_symlink("/proc/self/exe", err);
  if (err)
    return {};
  return exe.parent_path().parent_path() / "share" / "orch" / "docs";
}

std::string html_escape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

} // namespace

bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && name.front() != '.'
         && std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '.'
                     || c == '_' || c == '-';
            });
}

std::string static_media_type(std::string_view name) {
  static const std::map<std::string, std::string, std::less<>> types = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".png", "image/png"},
    {".svg", "image/svg+xml"},
    {".txt", "text/plain; charset=utf-8"},
  };
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos)
    return "text/plain; charset=utf-8"; // LICENSE, NOTICE
  {
    std::string ext{name.substr(dot)};
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (auto i = types.find(ext); i != types.end())
      return i->second;
  }
  return "application/octet-stream";
}

const static_file* ui_file(std::string_view name) {
  // Built once: the names are fixed at build time.
  static const auto files = [] {
    std::map<std::string, std::shared_ptr<static_file>, std::less<>> out;
    for (size_t i = 0; i < detail::embedded_file_count; ++i) {
      std::string_view full = detail::embedded_files[i].name;
      if (full.substr(0, 3) != "ui/")
        continue;
      auto name = full.substr(3);
      out.emplace(std::string{name},
                  make_file(std::string{detail::embedded_files[i].body},
                            name, ui_policy));
    }
    return out;
  }();
  auto i = files.find(name);
  return i == files.end() ? nullptr : i->second.get();
}

docs_site::docs_site(std::string configured_dir)
  : configured_(std::move(configured_dir)) {
  std::vector<fs::path> candidates;
  if (!configured_.empty())
    candidates.emplace_back(configured_);
  else
    candidates = {ORCH_DOCS_BUILD_DIR, ORCH_DOCS_INSTALL_DIR,
                  next_to_binary(), "/usr/share/orch/docs"};
  for (auto& dir : candidates)
    if (!dir.empty() && has_swagger(dir)) {
      dir_ = dir.string();
      break;
    }
}

const std::string& docs_site::dir() const {
  return dir_;
}

std::shared_ptr<const static_file> docs_site::get(std::string_view name) {
  if (!is_plain_file_name(name))
    return nullptr;
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = files_.find(std::string{name}); i != files_.end())
    return i->second;
  std::shared_ptr<static_file> f;
  if (dir_.empty()) {
    // No Swagger UI: /docs lists the paths; its assets do not exist.
    if (name == "index.html")
      f = make_file(docs_fallback_page(openapi_document(), configured_), name,
                    fallback_policy);
  } else if (auto body = embedded("docs/" + std::string{name});
             !body.empty()) {
    // Our page and its script, in place of the package's petstore demo.
    f = make_file(std::string{body}, name, docs_policy);
  } else {
    auto path = fs::path{dir_} / std::string{name};
    std::error_code err;
    if (!fs::is_regular_file(path, err)
        || fs::file_size(path, err) > max_docs_file || err)
      return nullptr;
    std::ifstream in{path, std::ios::binary};
    std::ostringstream content;
    content << in.rdbuf();
    if (!in)
      return nullptr;
    f = make_file(content.str(), name, docs_policy);
  }
  if (f)
    files_.emplace(std::string{name}, f);
  return f;
}

std::string docs_fallback_page(const std::string& openapi_json,
                               const std::string& missing_dir) {
  auto doc = nlohmann::json::parse(openapi_json, nullptr, false);
  std::string title = "orch API";
  std::string version;
  if (doc.is_object() && doc.contains("info")) {
    title = doc["info"].value("title", title);
    version = doc["info"].value("version", "");
  }
  std::string out = "<!doctype html>\n<html lang=\"en\"><head>"
                    "<meta charset=\"utf-8\"><title>"
                    + html_escape(title)
                    + "</title><style>"
                      "body{font-family:system-ui,sans-serif;margin:2rem;"
                      "max-width:60rem}code{font-size:.95em}"
                      "td{padding:.2rem .8rem .2rem 0;vertical-align:top}"
                      ".m{font-weight:600;text-transform:uppercase}"
                      "</style></head><body><h1>"
                    + html_escape(title) + " " + html_escape(version)
                    + "</h1><p>Swagger UI is not installed"
                    + (missing_dir.empty()
                         ? std::string{}
                         : " in <code>" + html_escape(missing_dir) + "</code>")
                    + " (build with npm, or set <code>DOCS_DIR</code> to a "
                      "folder of <code>swagger-ui-dist</code>), so this is "
                      "the plain list of the routes. The full description "
                      "is <a href=\"/openapi.json\">/openapi.json</a>.</p>"
                      "<table>";
  if (doc.is_object() && doc.contains("paths") && doc["paths"].is_object())
    for (auto& [path, ops] : doc["paths"].items()) {
      if (!ops.is_object())
        continue;
      for (auto& [method, op] : ops.items()) {
        if (!op.is_object())
          continue;
        out += "<tr><td class=\"m\">" + html_escape(method)
               + "</td><td><code>" + html_escape(path) + "</code></td><td>"
               + html_escape(op.value("summary", "")) + "</td></tr>";
      }
    }
  out += "</table></body></html>\n";
  return out;
}

} // namespace orch::api
