#include "orch/job.hpp"

#include <chrono>
#include <random>

namespace orch {

const char* to_string(job_outcome x) {
  switch (x) {
    case job_outcome::completed: return "completed";
    case job_outcome::failed: return "failed";
    case job_outcome::cancelled: return "cancelled";
    case job_outcome::released: return "released";
  }
  return "failed";
}

const char* to_string(job_status x) {
  switch (x) {
    case job_status::pending: return "pending";
    case job_status::running: return "running";
    case job_status::completed: return "completed";
    case job_status::failed: return "failed";
    case job_status::cancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<job_status> parse_job_status(std::string_view str) {
  for (auto x : {job_status::pending, job_status::running,
                 job_status::completed, job_status::failed,
                 job_status::cancelled})
    if (str == to_string(x))
      return x;
  return std::nullopt;
}

std::string make_uuid() {
  thread_local std::mt19937_64 gen{[] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64{seq};
  }()};
  // Version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random
  // bits. Ids made close in time sort close together, so the inserts of a
  // burst of submissions touch the right edge of jobs_pkey (and of the
  // indexes keyed by job_id) instead of random leaf pages.
  auto ms = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch())
      .count());
  uint64_t hi = (ms << 16) | (gen() & 0x0FFFull) | 0x7000ull; // version 7
  uint64_t lo = gen();
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull; // variant 1
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  auto put = [&](uint64_t v, int from_nibble, int count) {
    for (int i = from_nibble; i > from_nibble - count; --i)
      out += hex[(v >> (i * 4)) & 0xF];
  };
  put(hi, 15, 8);
  out += '-';
  put(hi, 7, 4);
  out += '-';
  put(hi, 3, 4);
  out += '-';
  put(lo, 15, 4);
  out += '-';
  put(lo, 11, 12);
  return out;
}

bool is_uuid(std::string_view str) {
  if (str.size() != 36)
    return false;
  for (size_t i = 0; i < str.size(); ++i) {
    auto c = str[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

} // namespace orch
