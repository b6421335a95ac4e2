#pragma once

#include "orch/api/job_store.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace orch::api {

/// Decides which worker takes each of `jobs` claimed jobs, given each
/// worker's free slots (in the scheduler's worker order). Each job goes to
/// the worker with the most free slots at that moment, the first such worker
/// on ties, which spreads load evenly. Returns one worker index per job, or
/// `npos` when no slot is left (the job's claim is then released).
std::vector<size_t> plan_dispatch(std::vector<size_t> free_slots,
                                  size_t jobs);

/// Like above, but a job goes only to a worker that lists its executor:
/// `worker_executors[w]` are the executors of worker `w`, `job_executors[j]`
/// the executor of job `j`.
std::vector<size_t>
plan_dispatch(std::vector<size_t> free_slots,
              const std::vector<std::vector<std::string>>& worker_executors,
              const std::vector<std::string>& job_executors);

inline constexpr size_t npos = static_cast<size_t>(-1);

/// The part of `n` a job's transitions are persisted in: the same for every
/// transition of a job, so that a job's start and finish in one batch stay
/// in one transaction, in order.
size_t part_of(const std::string& job_id, size_t n);

/// Splits `batch` into `n` batches by `part_of` of each transition's job,
/// keeping the order of each kind of transition. Nothing is lost or copied.
std::vector<transition_batch> split_by_job(transition_batch&& batch, size_t n);

} // namespace orch::api
