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

std::vector<size_t>
plan_dispatch(std::vector<size_t> free_slots,
              const std::vector<std::vector<std::string>>& worker_executors,
              const std::vector<std::string>& job_executors) {
  std::vector<size_t> result;
  result.reserve(job_executors.size());
  for (auto& executor : job_executors) {
    auto best = npos;
    for (size_t w = 0; w < free_slots.size(); ++w) {
      if (free_slots[w] == 0 || (best != npos && free_slots[w] <= free_slots[best]))
        continue;
      auto& xs = worker_executors[w];
      if (std::find(xs.begin(), xs.end(), executor) != xs.end())
        best = w;
    }
    if (best != npos)
      --free_slots[best];
    result.push_back(best);
  }
  return result;
}

} // namespace orch::api
