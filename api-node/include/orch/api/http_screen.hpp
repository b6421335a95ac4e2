#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orch::api {

/// The marker header by which the screen tells the handler that it
/// replaced a request; its value is the HTTP status to answer.
inline constexpr const char* reject_header = "X-Orch-Rejected-Body";

/// Screens one complete request head (request line and headers, up to and
/// including the blank line) before Pistache parses it.
///
/// Pistache 0.0.5 reserves Content-Length bytes before checking any limit:
/// "Content-Length: 99999999999" answers 500 (bad_alloc), a negative value
/// 500 too, and "abc" is read as 0. When the head's Content-Length is not a
/// number (400) or exceeds the body limit (413), this returns a body-less
/// copy of the request carrying `reject_header`, for the handler to answer
/// with a problem document and close the connection. Returns nothing when
/// the head may pass as it is.
std::optional<std::string> screen_request(std::string_view head);

/// The screen for one connection. Pistache reads 4 KiB at a time, so a head
/// may arrive in pieces: this buffers a request's head (at most
/// `defaults::max_header_bytes`) until it is complete, screens it, and then
/// passes the body through, counting Content-Length bytes to know where the
/// next request starts.
///
///   head --(blank line)--> body --(Content-Length bytes)--> head
///     |                      |
///     +-- too long: 431      +-- chunked: passthrough (Pistache's own
///                                 request size limit applies)
class request_screen {
public:
  /// Feeds one chunk; returns the bytes to hand to Pistache now (possibly
  /// none while a head is incomplete, or a replacement request).
  std::string feed(std::string_view chunk);

private:
  enum class state : uint8_t { head, body, passthrough, rejected };
  state state_ = state::head;
  std::string head_;
  uint64_t body_left_ = 0;
};

} // namespace orch::api
