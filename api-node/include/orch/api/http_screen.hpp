#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace orch::api {

/// The marker header by which `screen_request` tells the handler that it
/// replaced a request; its value is the HTTP status to answer.
inline constexpr const char* reject_header = "X-Orch-Rejected-Body";

/// Screens one chunk of raw input before Pistache parses it.
///
/// Pistache 0.0.5 reserves Content-Length bytes before checking any limit:
/// "Content-Length: 99999999999" answers 500 (bad_alloc) and a negative
/// value 500 too. When a chunk starts a request whose Content-Length is not
/// a number (400) or exceeds the body limit (413), or whose headers exceed
/// their limit (431), this returns a body-less copy of the request carrying
/// `reject_header`, for the handler to answer with a problem document and
/// close the connection. Returns nothing when the chunk may pass as it is.
std::optional<std::string> screen_request(std::string_view chunk);

} // namespace orch::api
