#include "orch/api/http_screen.hpp"

#include "orch/defaults.hpp"

#include <cctype>
#include <algorithm>
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

std::string_view trim(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.remove_suffix(1);
  return value;
}

} // namespace

std::optional<std::string> screen_request(std::string_view chunk) {
  auto head_end = chunk.find("\r\n\r\n");
  bool headers_too_large = head_end == std::string_view::npos
                             ? chunk.size() > defaults::max_header_bytes
                             : head_end > defaults::max_header_bytes;
  auto head = chunk.substr(0, head_end == std::string_view::npos
                                ? chunk.size()
                                : head_end);
  std::string rebuilt;
  const char* verdict = nullptr;
  std::optional<std::string> length;
  size_t pos = 0;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    auto line = head.substr(pos, eol == std::string_view::npos
                                   ? head.size() - pos
                                   : eol - pos);
    pos = eol == std::string_view::npos ? head.size() : eol + 2;
    if (iequals_prefix(line, "content-length:")) {
      auto value = trim(line.substr(15));
      bool digits = !value.empty() && value.size() <= 18;
      for (auto c : value)
        digits = digits && c >= '0' && c <= '9';
      if (!digits || (length && *length != value))
        verdict = "400";
      else if (std::stoull(std::string{value}) > defaults::max_body_bytes)
        verdict = "413";
      length = std::string{value};
      continue;
    }
    if (iequals_prefix(line, "connection:"))
      continue;
    rebuilt.append(line.data(), line.size());
    rebuilt += "\r\n";
  }
  // A request line must start with a method token: "METHOD SP target".
  size_t m = 0;
  while (m < chunk.size() && m < 16 && chunk[m] >= 'A' && chunk[m] <= 'Z')
    ++m;
  if (m == 0 || m >= chunk.size() || chunk[m] != ' ') {
    // Not HTTP: answer 400 with a minimal well-formed stand-in request.
    return std::string{"GET / HTTP/1.1\r\n"} + reject_header
           + ": 400\r\nConnection: close\r\n\r\n";
  }
  if (headers_too_large) {
    // Keep only the request line: the headers are not worth parsing.
    rebuilt = std::string{chunk.substr(0, std::min(chunk.find("\r\n"),
                                                   size_t{8192}))}
              + "\r\n";
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

std::string request_screen::feed(std::string_view chunk) {
  std::string out;
  while (!chunk.empty()) {
    switch (state_) {
      case state::rejected:
        return out; // the connection is being closed; drop the rest
      case state::passthrough:
        out.append(chunk.data(), chunk.size());
        return out;
      case state::body: {
        auto n = static_cast<size_t>(
          std::min<uint64_t>(body_left_, chunk.size()));
        out.append(chunk.data(), n);
        chunk.remove_prefix(n);
        body_left_ -= n;
        if (body_left_ == 0)
          state_ = state::head;
        break;
      }
      case state::head: {
        auto before = head_.size();
        auto room = defaults::max_header_bytes + 4 - std::min(
                      before, defaults::max_header_bytes + 4);
        head_.append(chunk.data(), std::min(room, chunk.size()));
        auto end = head_.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (head_.size() > defaults::max_header_bytes) {
            out += *screen_request(head_);
            state_ = state::rejected;
            return out;
          }
          return out; // wait for the rest of the head
        }
        auto head_len = end + 4;
        auto consumed = head_len - before; // bytes of this chunk in the head
        auto head = std::string_view{head_}.substr(0, head_len);
        if (auto replacement = screen_request(head)) {
          out += *replacement;
          state_ = state::rejected;
          head_.clear();
          return out;
        }
        out.append(head.data(), head.size());
        chunk.remove_prefix(consumed);
        // Where does the body end?
        body_left_ = 0;
        bool chunked = false;
        size_t pos = 0;
        while (pos < head.size()) {
          auto eol = head.find("\r\n", pos);
          if (eol == std::string_view::npos)
            break;
          auto line = head.substr(pos, eol - pos);
          pos = eol + 2;
          if (iequals_prefix(line, "content-length:"))
            body_left_ = std::stoull(std::string{trim(line.substr(15))});
          else if (iequals_prefix(line, "transfer-encoding:"))
            chunked = true;
        }
        head_.clear();
        state_ = chunked ? state::passthrough
                         : (body_left_ > 0 ? state::body : state::head);
        break;
      }
    }
  }
  return out;
}

} // namespace orch::api
