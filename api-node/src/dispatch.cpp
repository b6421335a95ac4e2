#include "orch/api/dispatch.hpp"

#include <algorithm>
#include <functional>

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

size_t part_of(const std::string& job_id, size_t n) {
  return n <= 1 ? 0 : std::hash<std::string>{}(job_id) % n;
}

std::vector<transition_batch> split_by_job(transition_batch&& batch,
                                           size_t n) {
  std::vector<transition_batch> parts(std::max<size_t>(n, 1));
  if (parts.size() == 1) {
    parts[0] = std::move(batch);
    return parts;
  }
  auto spread = [&](auto member, auto key) {
    for (auto& x : batch.*member)
      (parts[part_of(key(x), parts.size())].*member).push_back(std::move(x));
  };
  auto by_id = [](const auto& x) -> const std::string& { return x.job_id; };
  spread(&transition_batch::starts, by_id);
  spread(&transition_batch::finishes, by_id);
  spread(&transition_batch::requeues, by_id);
  spread(&transition_batch::logs, by_id);
  spread(&transition_batch::progress, by_id);
  spread(&transition_batch::releases,
         [](const std::string& id) -> const std::string& { return id; });
  return parts;
}

} // namespace orch::api
