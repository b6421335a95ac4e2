#pragma once

// Shared setup of the integration tests: one PostgreSQL cluster per test
// binary, a fresh database per test, and JSON helpers.

#include "orch/test/fixtures.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

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

/// Runs `sql` on the database of `db_url` through psql; returns the rows,
/// each split into its columns.
std::vector<std::vector<std::string>> query(const std::string& db_url,
                                            const std::string& sql);

/// Mock executor parameters of a job that succeeds after `ms` milliseconds
/// (the default success rate would make some fail at random).
inline json succeeding(int ms) {
  return {{"mock_duration_ms", ms}, {"mock_fail", false}};
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
std::string url_encode(const std::string& s);

/// `total` of GET /jobs?status=`statuses` (comma-separated), or -1 when the
/// request failed.
long count_jobs(http_client& c, const std::string& statuses);

/// Every job, newest first, following `next_cursor` to the end.
std::vector<json> list_all_jobs(http_client& c,
                                const std::string& query_string = "");

/// Ids of the connected workers from GET /workers.
std::vector<std::string> worker_ids(http_client& c);

/// Prints the logs of `procs` when the current test failed.
void dump_on_failure(std::initializer_list<child_process*> procs);

} // namespace orch::test
