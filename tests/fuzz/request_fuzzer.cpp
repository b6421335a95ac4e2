// libFuzzer target for the request parsing and validation path: the raw
// request screen that runs before Pistache, the POST /jobs body codec, and
// the cursor codec. Any crash, sanitizer report or broken property is a bug;
// save the input under tests/fuzz/regressions/ and it becomes a regression
// test (tests/unit/fuzz_regression_test.cpp replays that folder).

#include "request_checks.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  if (auto broken = orch::fuzz::check_request_input(input); !broken.empty()) {
    std::fprintf(stderr, "property broken: %s\n", broken.c_str());
    __builtin_trap();
  }
  return 0;
}
