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

namespace {

// Year, month, day of a count of days since 1970-01-01 in the proleptic
// Gregorian calendar (H. Hinnant's civil_from_days).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

void put_digits(char* out, int64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

} // namespace

// Written by hand: every job in a JSON answer carries four timestamps, and
// gmtime_r + snprintf showed up in the profiles of GET /jobs.
std::string format_rfc3339(micros t) {
  auto secs = t / 1000000;
  auto rem = t % 1000000;
  if (rem < 0) {
    rem += 1000000;
    secs -= 1;
  }
  auto days = secs / 86400;
  auto sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    days -= 1;
  }
  int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  if (y < 0 || y > 9999) {
    // Outside RFC 3339's four-digit years: the C library's rendering.
    auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, static_cast<int>(rem / 1000));
    return buf;
  }
  // YYYY-MM-DDTHH:MM:SS.mmmZ
  std::string out(24, '\0');
  auto* p = out.data();
  put_digits(p, y, 4);
  p[4] = '-';
  put_digits(p + 5, m, 2);
  p[7] = '-';
  put_digits(p + 8, d, 2);
  p[10] = 'T';
  put_digits(p + 11, sod / 3600, 2);
  p[13] = ':';
  put_digits(p + 14, sod / 60 % 60, 2);
  p[16] = ':';
  put_digits(p + 17, sod % 60, 2);
  p[19] = '.';
  put_digits(p + 20, rem / 1000, 3);
  p[23] = 'Z';
  return out;
}

} // namespace orch
