#include "orch/api/dispatch.hpp"

#include <algorithm>

namespace orch::api {

std::vector<size_t> plan_dispatch(std::vector<size_t> free_slots,
                                  size_t jobs) {
  std::vector<size_t> result;
  result.reserve(jobs);
  for (size_t j = 0; j < jobs; ++j) {
    auto best = std::max_element(free_slots.begin(), free_slots.end());
    if (best == free_slots.end() || *best == 0) {
      result.push_back(npos);
      continue;
    }
    --*best;
    result.push_back(static_cast<size_t>(best - free_slots.begin()));
  }
  return result;
}

} // namespace orch::api
