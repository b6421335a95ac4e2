#include "orch/time.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace orch {

micros now_micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

std::string format_rfc3339(micros t) {
  auto secs = t / 1000000;
  auto rem = t % 1000000;
  if (rem < 0) {
    rem += 1000000;
    secs -= 1;
  }
  auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(rem / 1000));
  return buf;
}

} // namespace orch
