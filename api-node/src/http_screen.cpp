#include "orch/api/http_screen.hpp"

#include "orch/defaults.hpp"

#include <cctype>
#include <string>

namespace orch::api {

namespace {

// Whether `line` starts with the lower-case `prefix`, ignoring case.
bool iequals_prefix(std::string_view line, std::string_view prefix) {
  if (line.size() < prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != prefix[i])
      return false;
  return true;
}

} // namespace

std::optional<std::string> screen_request(std::string_view chunk) {
  // Only a chunk that begins with a request line ("METHOD SP ...").
  size_t i = 0;
  while (i < chunk.size() && i < 16 && chunk[i] >= 'A' && chunk[i] <= 'Z')
    ++i;
  if (i == 0 || i >= chunk.size() || chunk[i] != ' ')
    return std::nullopt;
  auto head_end = chunk.find("\r\n\r\n");
  bool headers_too_large = head_end == std::string_view::npos
                             ? chunk.size() > defaults::max_header_bytes
                             : head_end > defaults::max_header_bytes;
  auto head = chunk.substr(0, head_end == std::string_view::npos
                                ? chunk.size()
                                : head_end);
  std::string rebuilt;
  const char* verdict = nullptr;
  size_t pos = 0;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    auto line = head.substr(pos, eol == std::string_view::npos
                                   ? head.size() - pos
                                   : eol - pos);
    pos = eol == std::string_view::npos ? head.size() : eol + 2;
    if (iequals_prefix(line, "content-length:")) {
      auto value = line.substr(15);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
      bool digits = !value.empty() && value.size() <= 18;
      for (auto c : value)
        digits = digits && c >= '0' && c <= '9';
      if (!digits)
        verdict = "400";
      else if (std::stoull(std::string{value}) > defaults::max_body_bytes)
        verdict = "413";
      continue;
    }
    if (iequals_prefix(line, "connection:"))
      continue;
    rebuilt.append(line.data(), line.size());
    rebuilt += "\r\n";
  }
  if (headers_too_large) {
    // Keep only the request line: the headers are not worth parsing.
    rebuilt = std::string{chunk.substr(0, chunk.find("\r\n"))} + "\r\n";
    verdict = "431";
  }
  if (verdict == nullptr)
    return std::nullopt;
  rebuilt += reject_header;
  rebuilt += ": ";
  rebuilt += verdict;
  rebuilt += "\r\nConnection: close\r\n\r\n";
  return rebuilt;
}


} // namespace orch::api
