#pragma once

// Shared setup of the integration tests: one PostgreSQL cluster per test
// binary, a fresh database per test, and JSON helpers.

#include "orch/test/fixtures.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace orch::test {

using nlohmann::json;

/// The cluster shared by all tests of one binary.
pg_cluster& cluster();

/// Creates a fresh, empty database and returns its URI.
std::string fresh_database();

/// Parses a response body; fails the test on garbage.
json body_json(const http_response& r);

/// Returns the job's JSON from GET /jobs/{id}.
json get_job(http_client& c, const std::string& id);

/// Submits `body` and returns the new job's id (asserting a 201).
std::string submit(http_client& c, const json& body);

/// Waits until every job in `ids` is terminal; returns whether they were.
bool wait_terminal(http_client& c, const std::vector<std::string>& ids,
                   std::chrono::milliseconds timeout);

/// Prints the logs of `procs` when the current test failed.
void dump_on_failure(std::initializer_list<child_process*> procs);

} // namespace orch::test
