#pragma once

// The properties the request fuzzer checks on every input; shared with the
// unit test that replays the corpus and every past finding
// (tests/unit/fuzz_regression_test.cpp).

#include "orch/api/http_screen.hpp"
#include "orch/codec.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace orch::fuzz {

/// Runs `input` through the request screen, the body codec and the cursor
/// codec. Returns an empty string when every property holds, otherwise what
/// broke.
inline std::string check_request_input(std::string_view input) {
  if (auto replaced = api::screen_request(input)) {
    if (replaced->find("\r\n\r\n") == std::string::npos)
      return "screen produced a request without an end of headers";
    if (replaced->find(api::reject_header) == std::string::npos)
      return "screen produced a request without its marker";
  }
  // The connection screen, fed in two pieces at an input-dependent split.
  {
    api::request_screen screen;
    auto split = input.empty() ? 0 : static_cast<unsigned char>(input[0])
                                        % (input.size() + 1);
    auto out = screen.feed(input.substr(0, split));
    out += screen.feed(input.substr(split));
    if (out.size() > input.size() + 8192 + 128)
      return "connection screen produced more than it was given";
  }
  auto sub = codec::parse_submission(input);
  if (sub) {
    if (sub->pipeline_name.empty()
        || sub->pipeline_name.size() > defaults::max_pipeline_name)
      return "accepted a pipeline_name out of bounds";
    if (sub->parameters_json.size() > defaults::max_parameters_bytes)
      return "accepted parameters over the size limit";
    if (sub->parameters_json.find("\\u0000") != std::string::npos)
      return "accepted a NUL character";
    job x;
    x.pipeline_name = sub->pipeline_name;
    x.parameters_json = sub->parameters_json;
    x.description = sub->description;
    auto rendered = codec::to_json(x);
    if (rendered["parameters"].dump() != nlohmann::json::parse(
          sub->parameters_json).dump())
      return "parameters did not round-trip";
  } else {
    auto code = code_of(sub.error());
    if (code != ec::malformed_json && code != ec::validation_failed)
      return "unexpected error class " + render(sub.error());
  }
  if (auto seq = codec::decode_cursor(input);
      seq && codec::encode_cursor(*seq) != input)
    return "cursor accepted a non-canonical spelling";
  return {};
}

} // namespace orch::fuzz
