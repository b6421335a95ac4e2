#include "orch/api/job_store.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace orch::api {

namespace {

// Microseconds since the epoch of a timestamptz column. date_part returns
// float8 (extract, numeric since PostgreSQL 14, costs 2.5x as much: 4 of
// them per row were a third of a list page's statement). It is exact here:
// PostgreSQL divides the exact integer microseconds by 1e6 once, and for
// times within 2^32 s of 1970 (1834-2106) the two roundings (that division,
// then * 1000000) stay under half a microsecond, so the cast to bigint,
// which rounds to nearest, gives the stored value back. Checked against
// extract on 2,000,000 random times from 1900 to 2169: no difference before
// 2106-02-07.
#define ORCH_MICROS(col) "(date_part('epoch', " col ") * 1000000)::bigint"

// bench/sql/reads_page.sql holds a copy of the list statements built from
// these columns (bench/reads-floor measures them without the api-node).
constexpr const char* job_columns
  = "id::text, status, pipeline_name, parameters::text, description, "
    "priority, attempt, worker_id, " ORCH_MICROS("created_at") ", "
    ORCH_MICROS("updated_at") ", " ORCH_MICROS("started_at") ", "
    ORCH_MICROS("completed_at") ", error_message, seq, max_attempts, "
    "retry_backoff_seconds, timeout_seconds, " ORCH_MICROS("next_attempt_at")
    ", cancel_requested, executor, progress_completed, progress_total, "
    // Why a pending job waits (migration 0007); for pending rows only.
    "CASE WHEN jobs.status = 'pending' THEN job_waiting_reason("
    "jobs.next_attempt_at, jobs.executor, jobs.pipeline_name) END";

// Turns the timestamp parameter $n (microseconds) into a timestamptz.
std::string ts_param(int n) {
  return "(timestamptz 'epoch' + $" + std::to_string(n)
         + "::bigint * interval '1 microsecond')";
}

template <class T>
std::optional<T> opt(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return f.as<T>();
}

// The columns of a `transition_row`, from a CTE `u` that returned them.
#define ORCH_TRANSITION_COLUMNS                                                \
  "id::text, pipeline_name, status, attempt, " ORCH_MICROS(                    \
    "created_at") ", " ORCH_MICROS("started_at") ", " ORCH_MICROS("completed_at")

transition_row read_transition(const pqxx::row& r) {
  transition_row x;
  x.job_id = r[0].as<std::string>();
  x.pipeline_name = r[1].as<std::string>();
  x.status = parse_job_status(r[2].c_str()).value_or(job_status::pending);
  x.attempt = r[3].as<int32_t>();
  x.created_at = r[4].as<int64_t>();
  x.started_at = opt<int64_t>(r[5]);
  x.completed_at = opt<int64_t>(r[6]);
  return x;
}

// Reads the rows of a statement that selected ORCH_TRANSITION_COLUMNS.
void read_transitions(const pqxx::result& r, std::vector<std::string>& ids,
                      std::vector<transition_row>& rows) {
  for (const auto& row : r) {
    ids.push_back(row[0].as<std::string>());
    rows.push_back(read_transition(row));
  }
}

/// Connections opened again after a loss, over every store.
std::atomic<uint64_t> reconnect_count{0};

job read_job(const pqxx::row& r) {
  job x;
  x.id = r[0].as<std::string>();
  x.status = parse_job_status(r[1].c_str()).value_or(job_status::pending);
  x.pipeline_name = r[2].as<std::string>();
  x.parameters_json = r[3].as<std::string>();
  x.description = opt<std::string>(r[4]);
  x.priority = r[5].as<int32_t>();
  x.attempt = r[6].as<int32_t>();
  x.worker_id = opt<std::string>(r[7]);
  x.created_at = r[8].as<int64_t>();
  x.updated_at = r[9].as<int64_t>();
  x.started_at = opt<int64_t>(r[10]);
  x.completed_at = opt<int64_t>(r[11]);
  x.error_message = opt<std::string>(r[12]);
  x.max_attempts = r[14].as<int32_t>();
  x.retry_backoff_seconds = r[15].as<double>();
  x.timeout_seconds = r[16].as<int32_t>();
  x.next_attempt_at = opt<int64_t>(r[17]);
  x.cancel_requested = r[18].as<bool>();
  x.executor = r[19].as<std::string>();
  if (!r[20].is_null() && !r[21].is_null())
    x.progress = job_progress{r[20].as<int64_t>(), r[21].as<int64_t>()};
  x.waiting_reason = opt<std::string>(r[22]);
  return x;
}

void append_quoted(std::string& out, const std::string& x) {
  out += '"';
  for (auto c : x) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

} // namespace

namespace {

// The job ids and attempts of `jobs` as two PostgreSQL array literals.
std::pair<std::string, std::string>
attempt_arrays(const std::vector<job_attempt>& jobs) {
  std::vector<std::string> ids;
  std::vector<int32_t> attempts;
  for (auto& j : jobs) {
    ids.push_back(j.job_id);
    attempts.push_back(j.attempt);
  }
  return {pg_array(ids), pg_int_array(attempts)};
}

} // namespace

std::string pg_array(const std::vector<std::string>& xs) {
  std::string out = "{";
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0)
      out += ',';
    append_quoted(out, xs[i]);
  }
  out += '}';
  return out;
}

std::string pg_array(const std::vector<std::optional<std::string>>& xs) {
  std::string out = "{";
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0)
      out += ',';
    if (xs[i])
      append_quoted(out, *xs[i]);
    else
      out += "NULL";
  }
  out += '}';
  return out;
}

struct job_store::connection_holder {
  explicit connection_holder(const std::string& url) : c(url) {
    // nop
  }
  pqxx::connection c;
  /// Statements prepared on `c`.
  std::set<std::string> prepared;
};

std::string job_store::prepared(const std::string& name,
                                const std::string& sql) {
  auto& holder = (conn(), *conn_);
  if (holder.prepared.insert(name).second)
    holder.c.prepare(name, sql);
  return name;
}

job_store::job_store(std::string url)
  : url_(std::move(url)),
    lease_ttl_(
      std::chrono::duration_cast<std::chrono::milliseconds>(defaults::lease_ttl)) {
  // nop
}

job_store::~job_store() = default;

pqxx::connection_base& job_store::conn() {
  if (!conn_ || !conn_->c.is_open()) {
    conn_ = std::make_unique<connection_holder>(url_);
    if (connected_before_)
      ++reconnect_count;
    connected_before_ = true;
  }
  return conn_->c;
}

uint64_t job_store::reconnects() {
  return reconnect_count.load();
}

// The one place where libpqxx exceptions become our errors.
template <class F>
auto job_store::guarded(const char* what, F&& f) -> decltype(f()) {
  auto unavailable = [&](const std::string& msg) {
    conn_.reset();
    return make_error(ec::database_unavailable,
                      std::string{what} + ": " + msg);
  };
  try {
    return f();
  } catch (const pqxx::broken_connection& e) {
    return unavailable(e.what());
  } catch (const pqxx::in_doubt_error& e) {
    // The commit may or may not have happened: never retry blindly.
    return unavailable(std::string{"commit in doubt: "} + e.what());
  } catch (const pqxx::sql_error& e) {
    auto state = e.sqlstate();
    // Class 08: connection exceptions; 57P0x: the server is shutting down.
    if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0)
      return unavailable(e.what());
    if (conn_ && !conn_->c.is_open())
      conn_.reset();
    return make_error(ec::database_error, std::string{what} + ": "
                                            + e.what() + " [" + state + "]");
  } catch (const pqxx::failure& e) {
    if (conn_ && !conn_->c.is_open())
      return unavailable(e.what());
    return make_error(ec::database_error, std::string{what} + ": " + e.what());
  } catch (const std::exception& e) {
    return make_error(ec::internal, std::string{what} + ": " + e.what());
  }
}

caf::error job_store::ping() {
  return guarded("ping", [&]() -> caf::error {
    pqxx::nontransaction tx{conn()};
    tx.exec("SELECT 1");
    return caf::none;
  });
}

caf::expected<std::vector<job>>
job_store::insert_jobs(const std::vector<job_submission>& subs) {
  auto results = submit_jobs(subs);
  if (!results)
    return results.error();
  std::vector<job> jobs;
  jobs.reserve(results->size());
  for (auto& r : *results)
    jobs.push_back(std::move(r.value));
  return jobs;
}

caf::expected<std::vector<submit_result>>
job_store::submit_jobs(const std::vector<job_submission>& subs) {
  return guarded("submit_jobs",
                 [&]() -> caf::expected<std::vector<submit_result>> {
    std::vector<std::string> ids;
    std::vector<std::string> names;
    std::vector<std::string> params;
    std::vector<std::optional<std::string>> descriptions;
    std::vector<int32_t> priorities;
    std::vector<int32_t> max_attempts;
    std::vector<std::string> backoffs;
    std::vector<int32_t> timeouts;
    std::vector<std::optional<std::string>> keys;
    std::vector<std::string> hashes;
    std::vector<std::string> executors;
    ids.reserve(subs.size());
    for (auto& s : subs) {
      ids.push_back(make_uuid());
      names.push_back(s.pipeline_name);
      params.push_back(s.parameters_json);
      descriptions.push_back(s.description);
      priorities.push_back(s.priority);
      max_attempts.push_back(s.max_attempts);
      backoffs.push_back(std::to_string(s.retry_backoff_seconds));
      timeouts.push_back(s.timeout_seconds);
      keys.push_back(s.idempotency_key);
      hashes.push_back(s.request_hash);
      executors.push_back(s.executor);
    }
    // One statement inserts the jobs and their events and queues the NOTIFY
    // that wakes every api-node's scheduler (delivered at commit; the
    // local one is woken directly). Without Idempotency-Keys it runs in
    // autocommit: one round trip per group commit, where BEGIN, COMMIT and
    // a NOTIFY of its own took three more. A connection lost while it runs
    // leaves the outcome in doubt, as a lost COMMIT does; the 503 says
    // retry. A batch with keys runs in an explicit transaction, so that the
    // look-up of replayed keys below commits or rolls back with the insert.
    // The NOTIFY holds PostgreSQL's notification lock from the commit's
    // start to its end, so commits of concurrent writers (DB_WRITERS > 1,
    // several api-nodes) take turns over their WAL flushes.
    bool keyed = std::any_of(subs.begin(), subs.end(), [](const auto& s) {
      return s.idempotency_key.has_value();
    });
    std::unique_ptr<pqxx::transaction_base> txp;
    if (keyed)
      txp = std::make_unique<pqxx::work>(conn());
    else
      txp = std::make_unique<pqxx::nontransaction>(conn());
    auto& tx = *txp;
    // A key seen before inserts nothing (ON CONFLICT DO NOTHING waits for a
    // concurrent inserter of the same key to commit or roll back).
    auto r = tx.exec_prepared(prepared("submit_jobs",
      "WITH ins AS ("
      "  INSERT INTO jobs (id, pipeline_name, parameters, description, "
      "    priority, max_attempts, retry_backoff_seconds, timeout_seconds,"
      "    idempotency_key, request_hash, executor)"
      "  SELECT t.id, t.name, t.params::jsonb, t.descr, t.prio, t.maxa,"
      "    t.backoff, t.timeout, t.ikey, t.hash, t.executor"
      "  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], "
      "              $5::int[], $6::int[], $7::float8[], $8::int[],"
      "              $9::text[], $10::text[], $11::text[]) WITH ORDINALITY "
      "       AS t(id, name, params, descr, prio, maxa, backoff, timeout,"
      "            ikey, hash, executor, ord)"
      "  ORDER BY t.ord"
      "  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL"
      "  DO NOTHING"
      "  RETURNING id, created_at),"
      " ev AS ("
      "  INSERT INTO job_events (job_id, at, from_status, to_status, "
      "                          attempt, message)"
      "  SELECT id, created_at, NULL, 'pending', 0, 'submitted' FROM ins),"
      " n AS (SELECT pg_notify('orch_jobs', '')"
      "       FROM (SELECT 1 FROM ins LIMIT 1) one)"
      "SELECT id::text, " ORCH_MICROS("created_at") " FROM ins,"
      " (SELECT count(*) FROM n) notified"),
      pg_array(ids), pg_array(names), pg_array(params),
      pg_array(descriptions), pg_int_array(priorities),
      pg_int_array(max_attempts), pg_array(backoffs), pg_int_array(timeouts),
      pg_array(keys), pg_array(hashes), pg_array(executors));
    std::map<std::string, micros> created;
    for (const auto& row : r)
      created.emplace(row[0].as<std::string>(), row[1].as<int64_t>());
    std::vector<submit_result> result(subs.size());
    std::vector<std::string> lookup;
    for (size_t i = 0; i < subs.size(); ++i) {
      auto& out = result[i];
      if (auto c = created.find(ids[i]); c != created.end()) {
        auto& x = out.value;
        x.id = ids[i];
        x.pipeline_name = subs[i].pipeline_name;
        x.parameters_json = subs[i].parameters_json;
        x.description = subs[i].description;
        x.priority = subs[i].priority;
        x.max_attempts = subs[i].max_attempts;
        x.retry_backoff_seconds = subs[i].retry_backoff_seconds;
        x.timeout_seconds = subs[i].timeout_seconds;
        x.executor = subs[i].executor;
        x.created_at = x.updated_at = c->second;
      } else if (subs[i].idempotency_key) {
        lookup.push_back(*subs[i].idempotency_key);
      }
    }
    if (!lookup.empty()) {
      auto prior = tx.exec_params(std::string{"SELECT "} + job_columns
                                    + ", idempotency_key, request_hash"
                                      " FROM jobs WHERE idempotency_key ="
                                      " ANY($1::text[])",
                                  pg_array(lookup));
      std::map<std::string, std::pair<job, std::string>> by_key;
      for (const auto& row : prior)
        by_key.emplace(row[23].as<std::string>(),
                       std::make_pair(read_job(row), row[24].as<std::string>()));
      for (size_t i = 0; i < subs.size(); ++i) {
        if (created.count(ids[i]) > 0 || !subs[i].idempotency_key)
          continue;
        auto k = by_key.find(*subs[i].idempotency_key);
        if (k == by_key.end()) {
          result[i].error = make_error(ec::internal, "idempotency key vanished");
        } else if (k->second.second != subs[i].request_hash) {
          result[i].error = make_validation_error(
            {{"Idempotency-Key", "was used before with a different request "
                                 "body (job "
                                   + k->second.first.id + ")"}});
        } else {
          result[i].value = k->second.first;
          result[i].replayed = true;
        }
      }
    }
    tx.commit();
    return result;
  });
}

caf::expected<cancel_result> job_store::cancel_job(const std::string& id) {
  return guarded("cancel_job", [&]() -> caf::expected<cancel_result> {
    pqxx::work tx{conn()};
    auto r = tx.exec_params(
      "WITH old AS (SELECT id, status FROM jobs WHERE id = $1::uuid"
      "             FOR UPDATE),"
      " u AS ("
      "  UPDATE jobs j SET cancel_requested = true,"
      "    status = CASE WHEN old.status = 'pending' THEN 'cancelled'"
      "             ELSE j.status END,"
      "    completed_at = CASE WHEN old.status = 'pending'"
      "                   THEN clock_timestamp() END,"
      "    claimed_by = NULL, claim_expires_at = NULL, next_attempt_at = NULL,"
      "    updated_at = clock_timestamp()"
      "  FROM old WHERE j.id = old.id"
      "    AND old.status IN ('pending', 'running') AND NOT j.cancel_requested"
      "  RETURNING j.id, old.status AS was, j.status, j.attempt, j.worker_id,"
      "    j.updated_at),"
      " ev AS ("
      "  INSERT INTO job_events (job_id, at, from_status, to_status, attempt,"
      "                          worker_id, message)"
      "  SELECT id, updated_at, was, status, attempt, worker_id,"
      "    CASE WHEN was = 'pending' THEN 'cancelled before it ran'"
      "    ELSE 'cancel requested; waiting for the worker to stop it' END"
      "  FROM u)"
      "SELECT was FROM u",
      id);
    bool was_running = !r.empty() && r[0][0].as<std::string>() == "running";
    if (was_running)
      tx.exec_params("SELECT pg_notify('orch_cancel', $1)", id);
    auto row = tx.exec_params(std::string{"SELECT "} + job_columns
                                + " FROM jobs WHERE id = $1::uuid",
                              id);
    tx.commit();
    if (row.empty())
      return make_error(ec::not_found, "no job with id " + id);
    auto x = read_job(row[0]);
    if (r.empty() && is_terminal(x.status))
      return make_error(ec::conflict, std::string{"the job is already "}
                                        + to_string(x.status));
    // r.empty() with a running job: a cancel was requested before; the
    // request is idempotent.
    return cancel_result{std::move(x), was_running};
  });
}

caf::error job_store::renew_leases(const std::vector<job_attempt>& jobs,
                                   std::chrono::milliseconds ttl) {
  if (jobs.empty())
    return caf::none;
  return guarded("renew_leases", [&]() -> caf::error {
    auto [ids, attempts] = attempt_arrays(jobs);
    pqxx::work tx{conn()};
    // Renewals repeat every second; one lost in a crash is renewed again.
    tx.exec("SET LOCAL synchronous_commit = off");
    tx.exec_prepared(prepared("renew_leases",
      "UPDATE jobs j SET lease_expires_at = now() + $3::bigint"
      "  * interval '1 millisecond'"
      " FROM unnest($1::uuid[], $2::int[]) AS t(id, attempt)"
      " WHERE j.id = t.id AND j.id = ANY($1::uuid[])"
      "   AND j.attempt = t.attempt AND j.status = 'running'"),
      ids, attempts, static_cast<int64_t>(ttl.count()));
    tx.commit();
    return caf::none;
  });
}

caf::expected<std::vector<std::string>>
job_store::reap(size_t limit, std::vector<transition_row>* rows) {
  return guarded("reap", [&]() -> caf::expected<std::vector<std::string>> {
    pqxx::work tx{conn()};
    auto r = tx.exec_params(
      "WITH r AS ("
      "  SELECT id FROM jobs WHERE status = 'running'"
      "    AND lease_expires_at < now()"
      "  ORDER BY lease_expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED),"
      " u AS ("
      "  UPDATE jobs j SET"
      "    status = CASE WHEN j.cancel_requested THEN 'cancelled'"
      "             WHEN j.attempt < j.max_attempts THEN 'pending'"
      "             ELSE 'failed' END,"
      "    error_message = CASE WHEN j.cancel_requested THEN j.error_message"
      "                    ELSE 'worker lost' END,"
      "    completed_at = CASE WHEN j.cancel_requested"
      "      OR j.attempt >= j.max_attempts THEN clock_timestamp() END,"
      "    started_at = CASE WHEN j.cancel_requested"
      "      OR j.attempt >= j.max_attempts THEN j.started_at END,"
      "    worker_id = CASE WHEN j.cancel_requested"
      "      OR j.attempt >= j.max_attempts THEN j.worker_id END,"
      "    lease_expires_at = NULL, updated_at = clock_timestamp()"
      "  FROM r WHERE j.id = r.id"
      "  RETURNING j.id, j.status, j.attempt, j.updated_at, j.pipeline_name,"
      "    j.created_at, j.started_at, j.completed_at),"
      " ev AS ("
      "  INSERT INTO job_events (job_id, at, from_status, to_status, attempt,"
      "                          message)"
      "  SELECT id, updated_at, 'running', status, attempt,"
      "    'lease expired: worker lost' FROM u)"
      "SELECT " ORCH_TRANSITION_COLUMNS " FROM u",
      static_cast<int64_t>(limit));
    tx.commit();
    std::vector<std::string> ids;
    std::vector<transition_row> reaped;
    read_transitions(r, ids, reaped);
    if (rows != nullptr)
      *rows = std::move(reaped);
    return ids;
  });
}

caf::expected<std::vector<job_attempt>>
job_store::adopt(const std::string& worker_id,
                 const std::vector<job_attempt>& jobs,
                 std::chrono::milliseconds ttl,
                 std::vector<job_attempt>& cancelled) {
  if (jobs.empty())
    return std::vector<job_attempt>{};
  return guarded("adopt", [&]() -> caf::expected<std::vector<job_attempt>> {
    auto [ids, attempts] = attempt_arrays(jobs);
    pqxx::work tx{conn()};
    auto r = tx.exec_params(
      "UPDATE jobs j SET lease_expires_at = now() + $4::bigint"
      "  * interval '1 millisecond'"
      " FROM unnest($1::uuid[], $2::int[]) AS t(id, attempt)"
      " WHERE j.id = t.id AND j.id = ANY($1::uuid[])"
      "   AND j.attempt = t.attempt AND j.status = 'running'"
      "   AND j.worker_id = $3"
      " RETURNING j.id::text, j.attempt, j.cancel_requested",
      ids, attempts, worker_id, static_cast<int64_t>(ttl.count()));
    tx.commit();
    std::vector<job_attempt> owned;
    std::set<std::string> kept;
    for (const auto& row : r) {
      job_attempt ja{row[0].as<std::string>(), row[1].as<int32_t>()};
      kept.insert(ja.job_id);
      if (row[2].as<bool>())
        cancelled.push_back(ja);
      owned.push_back(std::move(ja));
    }
    for (auto& j : jobs)
      if (kept.count(j.job_id) == 0)
        cancelled.push_back(j);
    return owned;
  });
}

caf::error job_store::compact_counts() {
  return guarded("compact_counts", [&]() -> caf::error {
    pqxx::work tx{conn()};
    // One compactor at a time; the others skip this round.
    auto locked = tx.exec("SELECT pg_try_advisory_xact_lock(478560413698)");
    if (!locked[0][0].as<bool>())
      return caf::none;
    tx.exec("WITH d AS (DELETE FROM job_count_deltas"
            "  RETURNING pipeline_name, status, delta)"
            " INSERT INTO job_counts (pipeline_name, status, n)"
            " SELECT pipeline_name, status, sum(delta) FROM d"
            " GROUP BY pipeline_name, status"
            " ON CONFLICT (pipeline_name, status)"
            " DO UPDATE SET n = job_counts.n + excluded.n");
    tx.commit();
    return caf::none;
  });
}

caf::error job_store::release_claims(const std::string& scheduler_id) {
  return guarded("release_claims", [&]() -> caf::error {
    pqxx::work tx{conn()};
    tx.exec_params("UPDATE jobs SET claimed_by = NULL, claim_expires_at = NULL"
                   " WHERE status = 'pending' AND claimed_by = $1",
                   scheduler_id);
    tx.commit();
    return caf::none;
  });
}

caf::expected<std::vector<job_count>> job_store::count_jobs() {
  return guarded("count_jobs", [&]() -> caf::expected<std::vector<job_count>> {
    static const std::string sql
      = "SELECT pipeline_name, status, sum(n)::bigint FROM (SELECT"
        " pipeline_name, status, n FROM job_counts UNION ALL SELECT"
        " pipeline_name, status, delta FROM job_count_deltas) c"
        " GROUP BY pipeline_name, status";
    auto name = prepared("count_jobs", sql);
    pqxx::nontransaction tx{conn()};
    auto r = tx.exec_prepared(name);
    std::vector<job_count> out;
    out.reserve(r.size());
    for (const auto& row : r)
      if (auto s = parse_job_status(row[1].c_str()))
        out.push_back({row[0].as<std::string>(), *s, row[2].as<int64_t>()});
    return out;
  });
}

caf::expected<job> job_store::get_job(const std::string& id) {
  auto found = get_jobs({id});
  if (!found)
    return std::move(found.error());
  if (found->empty())
    return make_error(ec::not_found, "no job with id " + id);
  return std::move(found->front());
}

caf::expected<std::vector<job>>
job_store::get_jobs(const std::vector<std::string>& ids) {
  return guarded("get_jobs", [&]() -> caf::expected<std::vector<job>> {
    // One statement: autocommit saves the BEGIN and COMMIT round trips.
    static const std::string sql = std::string{"SELECT "} + job_columns
                                   + " FROM jobs WHERE id = ANY($1::uuid[])";
    auto name = prepared("get_jobs", sql);
    pqxx::nontransaction tx{conn()};
    auto r = tx.exec_prepared(name, pg_array(ids));
    std::vector<job> out;
    out.reserve(r.size());
    for (const auto& row : r)
      out.push_back(read_job(row));
    return out;
  });
}

caf::expected<job_page> job_store::list_jobs(const job_filter& filter) {
  return guarded("list_jobs", [&]() -> caf::expected<job_page> {
    std::vector<std::string> statuses;
    for (auto s : filter.statuses)
      statuses.emplace_back(to_string(s));
    // Every variant binds all four parameters (PostgreSQL must be able to
    // type each one); a filter's predicate is present only when the filter
    // is, and the always-true references fold away at planning time.
    std::string where = " WHERE $1::text[] IS NOT NULL AND $2::text IS NOT"
                        " NULL AND $3::bigint IS NOT NULL AND $4::int > 0";
    if (!statuses.empty())
      where += statuses.size() == 1 ? " AND status = ($1::text[])[1]"
                                    : " AND status = ANY($1::text[])";
    if (filter.pipeline_name)
      where += " AND pipeline_name = $2";
    auto page_where = where;
    if (filter.before_seq)
      page_where += " AND seq < $3";
    // The page and its total come from two snapshots; a total a moment
    // older than the page is fine, and autocommit saves two round trips.
    pqxx::nontransaction tx{conn()};
    auto sarr = pg_array(statuses);
    auto pname = filter.pipeline_name.value_or("");
    auto before = filter.before_seq.value_or(0);
    // One prepared statement per combination of filters.
    auto variant = std::to_string(statuses.size() == 1 ? 1
                                  : statuses.empty()  ? 0
                                                      : 2)
                   + (filter.pipeline_name ? "p" : "")
                   + (filter.before_seq ? "c" : "");
    auto rows_stmt = prepared("list_jobs_" + variant,
                               std::string{"SELECT "} + job_columns
                                 + " FROM jobs" + page_where
                                 + " ORDER BY seq DESC LIMIT $4");
    auto rows = tx.exec_prepared(rows_stmt, sarr, pname, before,
                                 filter.limit + 1);
    // Exact, from the counters of migration 0004 (no scan of jobs).
    std::string count_where = " WHERE $1::text[] IS NOT NULL AND $2::text IS"
                              " NOT NULL AND $3::bigint IS NOT NULL AND"
                              " $4::int > 0";
    if (!statuses.empty())
      count_where += " AND status = ANY($1::text[])";
    if (filter.pipeline_name)
      count_where += " AND pipeline_name = $2";
    auto count_stmt = prepared(
      "count_jobs_" + variant,
      "SELECT coalesce(sum(n), 0)::bigint FROM (SELECT pipeline_name, status,"
      " n FROM job_counts UNION ALL SELECT pipeline_name, status, delta"
      " FROM job_count_deltas) c"
        + count_where);
    auto count = tx.exec_prepared(count_stmt, sarr, pname, before,
                                  filter.limit + 1);
    job_page page;
    page.total = count[0][0].as<int64_t>();
    auto n = std::min<size_t>(rows.size(), static_cast<size_t>(filter.limit));
    page.jobs.reserve(n);
    for (size_t i = 0; i < n; ++i)
      page.jobs.push_back(read_job(rows[i]));
    if (rows.size() > n)
      page.next_seq = rows[n - 1][13].as<int64_t>();
    return page;
  });
}

caf::expected<std::vector<claimed_job>>
job_store::claim(size_t limit, const std::string& scheduler_id,
                 std::chrono::milliseconds ttl,
                 const std::vector<std::string>& executors) {
  return guarded("claim", [&]() -> caf::expected<std::vector<claimed_job>> {
    std::vector<claimed_job> result;
    if (limit == 0 || executors.empty())
      return result;
    pqxx::work tx{conn()};
    // A claim only reserves; losing one in a server crash is harmless (the
    // start is fenced by claimed_by), so it need not wait for the WAL flush.
    // This keeps an fsync off the dispatch path.
    // The queue's head must come from an ordered scan of jobs_pending_idx.
    // With stale statistics (a drained queue leaves many dead rows) the
    // planner otherwise sorts the whole pending set on every claim: 20-30 ms
    // instead of 1-5 ms at 30k pending jobs.
    tx.exec("SET LOCAL synchronous_commit = off;"
            " SET LOCAL enable_sort = off;"
            " SET LOCAL enable_bitmapscan = off");
    // Pipelines with a max_concurrent are claimed one by one below.
    std::vector<std::string> limited;
    for (const auto& row :
         tx.exec_prepared(prepared("limited_pipelines",
                                   "SELECT name FROM pipelines"
                                   " WHERE max_concurrent IS NOT NULL")))
      limited.push_back(row[0].as<std::string>());
    auto take = [&](const char* name, size_t n, const std::string& extra,
                    const std::string& arg) {
      auto r = tx.exec_prepared(prepared(name,
        "WITH c AS ("
        "  SELECT id FROM jobs"
        "  WHERE status = 'pending'"
        "    AND (claimed_by IS NULL OR claim_expires_at < now())"
        "    AND (next_attempt_at IS NULL OR next_attempt_at <= now())"
        "    AND executor = ANY($4::text[])"
          + extra
          + "  ORDER BY priority DESC, seq"
            "  LIMIT $1::int"
            "  FOR UPDATE SKIP LOCKED)"
            "UPDATE jobs j SET claimed_by = $2,"
            "  claim_expires_at = now() + $3::bigint * interval '1 millisecond'"
            " FROM c WHERE j.id = c.id"
            " RETURNING j.id::text, j.attempt, j.pipeline_name,"
            "  j.parameters::text, j.priority, j.seq, j.timeout_seconds,"
            "  j.executor"),
        static_cast<int64_t>(n), scheduler_id,
        static_cast<int64_t>(ttl.count()), pg_array(executors), arg);
      for (const auto& row : r)
        result.push_back(claimed_job{
          row[0].as<std::string>(), row[1].as<int32_t>(),
          row[2].as<std::string>(), row[3].as<std::string>(),
          row[4].as<int32_t>(), row[5].as<int64_t>(), row[6].as<int32_t>(),
          row[7].as<std::string>()});
    };
    take("claim", limit, "    AND NOT (pipeline_name = ANY($5::text[]))",
         pg_array(limited));
    for (auto& name : limited) {
      if (result.size() >= limit)
        break;
      // The row lock serializes the claimers of this pipeline on every
      // api-node; each then counts what the others committed.
      auto cap = tx.exec_params("SELECT max_concurrent FROM pipelines"
                                " WHERE name = $1 FOR UPDATE",
                                name);
      if (cap.empty() || cap[0][0].is_null())
        continue;
      auto active = tx.exec_params(
        "SELECT count(*) FROM jobs WHERE pipeline_name = $1"
        " AND (status = 'running' OR (status = 'pending'"
        "      AND claimed_by IS NOT NULL AND claim_expires_at >= now()))",
        name)[0][0]
                      .as<int64_t>();
      auto room = cap[0][0].as<int64_t>() - active;
      if (room <= 0)
        continue;
      take("claim_pipeline",
           std::min<size_t>(static_cast<size_t>(room), limit - result.size()),
           "    AND pipeline_name = $5", name);
    }
    tx.commit();
    std::sort(result.begin(), result.end(), [](auto& a, auto& b) {
      return a.priority != b.priority ? a.priority > b.priority
                                      : a.seq < b.seq;
    });
    return result;
  });
}

std::unordered_map<std::string, const transition_batch::started*>
joined_starts(const transition_batch& batch) {
  std::unordered_map<std::string, const transition_batch::started*> result;
  if (batch.starts.empty() || batch.finishes.empty())
    return result;
  std::unordered_map<std::string, int> starts, finishes;
  for (auto& s : batch.starts)
    ++starts[s.job_id];
  for (auto& f : batch.finishes)
    ++finishes[f.job_id];
  std::unordered_set<std::string> others;
  for (auto& p : batch.progress)
    others.insert(p.job_id);
  for (auto& l : batch.logs)
    others.insert(l.job_id);
  for (auto& q : batch.requeues)
    others.insert(q.job_id);
  for (auto& id : batch.releases)
    others.insert(id);
  std::unordered_map<std::string, const transition_batch::started*> by_id;
  for (auto& s : batch.starts)
    if (starts[s.job_id] == 1 && others.count(s.job_id) == 0)
      by_id.emplace(s.job_id, &s);
  for (auto& f : batch.finishes) {
    auto s = by_id.find(f.job_id);
    if (s != by_id.end() && finishes[f.job_id] == 1
        && s->second->attempt == f.attempt)
      result.emplace(f.job_id, s->second);
  }
  return result;
}

// The batch statements below address rows by primary key: `j.id =
// ANY($1)` gives the planner a row estimate that does not depend on table
// statistics, and `(j.status = ...) IS TRUE` keeps it from scanning the
// partial pending/running indexes instead (their predicates cannot be
// proven from an IS TRUE test). With statistics gone stale during a fast
// drain, the plain form scanned the whole pending queue per batch. Measured
// on 30k no-op jobs and 2 workers (256 slots each): 2.7k -> 5.9k jobs/s.
caf::expected<batch_outcome>
job_store::apply(const transition_batch& batch,
                 const std::string& scheduler_id) {
  return guarded("apply", [&]() -> caf::expected<batch_outcome> {
    batch_outcome out;
    pqxx::work tx{conn()};
    // Row estimates of unnest() and of the fenced predicates are poor; a
    // nested loop then rescans the unnest once per row (250 x 250). Hash
    // joins are right for every batch size here. The statements are
    // prepared (no parsing per batch) but planned for their arguments: the
    // generic plan PostgreSQL switches to after five runs took 1 ms instead
    // of 0.4 ms for a one-job batch.
    tx.exec("SET LOCAL enable_nestloop = off;"
            " SET LOCAL plan_cache_mode = force_custom_plan");
    auto collect = read_transitions;
    // A start and a finish of one attempt in the same batch, with no other
    // report of the job in it (a job shorter than a flush), are written
    // together by the finish statement: the start's fence, both events in
    // order, one new version of the row instead of two.
    auto joined = joined_starts(batch);
    std::vector<const transition_batch::started*> starts;
    for (auto& s : batch.starts)
      if (joined.count(s.job_id) == 0)
        starts.push_back(&s);
    if (!starts.empty()) {
      std::vector<std::string> ids, workers;
      std::vector<int32_t> attempts;
      std::vector<int64_t> ats;
      for (auto* s : starts) {
        ids.push_back(s->job_id);
        attempts.push_back(s->attempt);
        workers.push_back(s->worker_id);
        ats.push_back(s->at);
      }
      // Fenced: the job must still be pending, claimed by us, and on the
      // attempt before this one.
      collect(
        tx.exec_prepared(prepared("apply_starts",
          "WITH s AS ("
          "  SELECT t.id, t.attempt, t.worker,"
          "    timestamptz 'epoch' + t.at * interval '1 microsecond' AS at"
          "  FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[])"
          "       AS t(id, attempt, worker, at)),"
          " u AS ("
          "  UPDATE jobs j SET status = 'running', attempt = s.attempt,"
          "    worker_id = s.worker, started_at = greatest(s.at, j.created_at),"
          "    updated_at = greatest(s.at, j.created_at), claimed_by = NULL,"
          "    claim_expires_at = NULL, next_attempt_at = NULL,"
          "    lease_expires_at = now() + $6::bigint * interval '1 millisecond',"
          "    progress_completed = NULL, progress_total = NULL"
          "  FROM s WHERE j.id = s.id AND j.id = ANY($1::uuid[])"
          "    AND (j.status = 'pending') IS TRUE"
          "    AND j.attempt = s.attempt - 1 AND j.claimed_by = $5"
          "  RETURNING j.id, j.attempt, j.worker_id, j.started_at,"
          "    j.pipeline_name, j.status, j.created_at, j.completed_at),"
          " ev AS ("
          "  INSERT INTO job_events (job_id, at, from_status, to_status,"
          "                          attempt, worker_id, message)"
          "  SELECT id, started_at, 'pending', 'running', attempt, worker_id,"
          "    'started on ' || worker_id FROM u)"
          "SELECT " ORCH_TRANSITION_COLUMNS " FROM u"),
          pg_array(ids), pg_int_array(attempts), pg_array(workers),
          pg_int_array(ats), scheduler_id,
          static_cast<int64_t>(lease_ttl_.count())),
        out.started, out.start_rows);
    }
    if (!batch.progress.empty()) {
      std::vector<std::string> ids;
      std::vector<int32_t> attempts;
      std::vector<int64_t> done, total;
      for (auto& p : batch.progress) {
        ids.push_back(p.job_id);
        attempts.push_back(p.attempt);
        done.push_back(p.completed);
        total.push_back(p.total);
      }
      // Fenced like every report: only the attempt that owns the job.
      // Each accepted report is also a 'progress' event of the stream.
      tx.exec_prepared(prepared("apply_progress",
        "WITH u AS ("
        "  UPDATE jobs j SET progress_completed = t.c, progress_total = t.n"
        "  FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[])"
        "       AS t(id, attempt, c, n)"
        "  WHERE j.id = t.id AND j.id = ANY($1::uuid[])"
        "    AND (j.status = 'running') IS TRUE AND j.attempt = t.attempt"
        "  RETURNING j.id, j.attempt, t.c, t.n)"
        "INSERT INTO job_signals (job_id, attempt, kind, completed, total)"
        " SELECT id, attempt, 'progress', c, n FROM u"),
        pg_array(ids), pg_int_array(attempts), pg_int_array(done),
        pg_int_array(total));
    }
    if (!batch.logs.empty())
      append_logs(tx, batch.logs);
    if (!batch.finishes.empty()) {
      std::vector<std::string> ids, outcomes;
      std::vector<std::optional<std::string>> errors, start_ats, workers;
      std::vector<int32_t> attempts;
      std::vector<int64_t> ats;
      for (auto& f : batch.finishes) {
        ids.push_back(f.job_id);
        attempts.push_back(f.attempt);
        outcomes.emplace_back(to_string(f.outcome));
        errors.push_back(f.outcome == job_outcome::completed
                           ? std::nullopt
                           : std::optional<std::string>{f.error});
        ats.push_back(f.at);
        if (auto s = joined.find(f.job_id); s != joined.end()) {
          start_ats.emplace_back(std::to_string(s->second->at));
          workers.emplace_back(s->second->worker_id);
        } else {
          start_ats.emplace_back();
          workers.emplace_back();
        }
      }
      // Fenced by attempt: the attempt must own the running job, or, for a
      // finish joined with its start ($7 and $8 set), the job must still
      // be pending, claimed by us, and on the attempt before this one (the
      // start's fence). A joined finish whose job already runs this
      // attempt (its start committed in a flush whose outcome was in doubt,
      // and came back in this retry) is applied as a plain finish, and its
      // start is reported as rejected, as the two statements did. A
      // requested cancel wins over any result. A failed attempt with
      // attempts left goes back to pending, claimable after an exponential
      // backoff with +-20% jitter. A released attempt (drain) goes back at
      // once and does not count. A joined start gets its own event, ahead
      // of the finish's.
      auto r = tx.exec_prepared(prepared("apply_finishes",
          "WITH s AS ("
          "  SELECT t.id, t.attempt, t.outcome, t.error, t.worker,"
          "    timestamptz 'epoch' + t.at * interval '1 microsecond' AS at,"
          "    timestamptz 'epoch' + t.start_at * interval '1 microsecond'"
          "      AS start_at"
          "  FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[],"
          "              $5::bigint[], $7::bigint[], $8::text[])"
          "       AS t(id, attempt, outcome, error, at, start_at, worker)),"
          " n AS ("
          "  SELECT s.id, s.attempt, s.outcome, s.error, s.at, j.created_at,"
          "    s.start_at IS NOT NULL AND j.status = 'pending' AS joined,"
          "    CASE WHEN j.status = 'running' THEN j.started_at"
          "      ELSE greatest(s.start_at, j.created_at) END AS started_at,"
          "    CASE WHEN j.status = 'running' THEN j.worker_id"
          "      ELSE s.worker END AS worker_id_old,"
          "    CASE WHEN j.cancel_requested THEN 'cancelled'"
          "      WHEN s.outcome = 'released' THEN 'pending'"
          "      WHEN s.outcome = 'completed' THEN 'completed'"
          "      WHEN s.outcome = 'cancelled' THEN 'cancelled'"
          "      WHEN s.attempt < j.max_attempts THEN 'pending'"
          "      ELSE 'failed' END AS next,"
          "    least(j.retry_backoff_seconds * power(2, s.attempt - 1)"
          "          * (0.8 + 0.4 * random()), $6::float8) AS delay"
          "  FROM s JOIN jobs j ON j.id = s.id"
          "  WHERE j.id = ANY($1::uuid[])"
          "    AND (((j.status = 'running') IS TRUE AND j.attempt = s.attempt)"
          "      OR (s.start_at IS NOT NULL AND (j.status = 'pending') IS TRUE"
          "          AND j.attempt = s.attempt - 1 AND j.claimed_by = $9))"
          "  FOR UPDATE OF j),"
          " u AS ("
          "  UPDATE jobs j SET status = n.next,"
          "    error_message = CASE WHEN n.next = 'completed' THEN NULL"
          "      WHEN n.next = 'cancelled' AND n.outcome <> 'cancelled'"
          "        THEN 'cancelled' ELSE n.error END,"
          "    attempt = CASE WHEN n.outcome = 'released' AND n.next = 'pending'"
          "      THEN n.attempt - 1 ELSE n.attempt END,"
          "    completed_at = CASE WHEN n.next = 'pending' THEN NULL"
          "      ELSE greatest(n.at, n.started_at) END,"
          "    started_at = CASE WHEN n.next = 'pending' THEN NULL"
          "      ELSE n.started_at END,"
          "    worker_id = CASE WHEN n.next = 'pending' THEN NULL"
          "      ELSE n.worker_id_old END,"
          "    next_attempt_at = CASE WHEN n.next = 'pending'"
          "      AND n.outcome <> 'released'"
          "      THEN greatest(n.at, n.started_at)"
          "           + n.delay * interval '1 second' END,"
          "    lease_expires_at = NULL, claimed_by = NULL,"
          "    claim_expires_at = NULL,"
          "    progress_completed = CASE WHEN n.joined THEN NULL"
          "      ELSE j.progress_completed END,"
          "    progress_total = CASE WHEN n.joined THEN NULL"
          "      ELSE j.progress_total END,"
          "    updated_at = greatest(n.at, n.started_at)"
          "  FROM n WHERE j.id = n.id AND j.id = ANY($1::uuid[])"
          "  RETURNING j.id, n.attempt, n.outcome, j.status, n.worker_id_old,"
          "    j.updated_at, j.error_message, j.next_attempt_at,"
          "    j.max_attempts, j.pipeline_name, j.created_at, j.started_at,"
          "    j.completed_at, n.joined, n.started_at AS ran_at),"
          // The joined starts' events come first (ids are taken in row
          // order), so that each job's events keep the order they happened.
          " ev AS ("
          "  INSERT INTO job_events (job_id, at, from_status, to_status,"
          "                          attempt, worker_id, message)"
          "  SELECT id, ran_at, 'pending', 'running', attempt, worker_id_old,"
          "    'started on ' || worker_id_old FROM u WHERE joined"
          "  UNION ALL"
          "  SELECT id, updated_at, 'running', status, attempt, worker_id_old,"
          "    CASE"
          "      WHEN outcome = 'released' AND status = 'pending'"
          "        THEN 'handed back by a draining worker; attempt not counted'"
          "      WHEN status = 'pending' THEN 'attempt ' || attempt || ' of '"
          "        || max_attempts || ' failed: ' || coalesce(error_message, '')"
          "        || '; retry after ' || to_char(next_attempt_at AT TIME ZONE"
          "        'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
          "      ELSE coalesce(error_message, status) END"
          "  FROM u)"
          "SELECT " ORCH_TRANSITION_COLUMNS ", joined, "
          ORCH_MICROS("ran_at") " FROM u"),
          pg_array(ids), pg_int_array(attempts), pg_array(outcomes),
          pg_array(errors), pg_int_array(ats),
          defaults::max_retry_delay_seconds, pg_array(start_ats),
          pg_array(workers), scheduler_id);
      collect(r, out.finished, out.end_rows);
      // A joined start that took effect is reported as a start too.
      for (const auto& row : r) {
        if (!row[7].as<bool>())
          continue;
        auto started = read_transition(row);
        started.status = job_status::running;
        started.started_at = row[8].as<int64_t>();
        started.completed_at.reset();
        out.started.push_back(started.job_id);
        out.start_rows.push_back(std::move(started));
      }
    }
    if (!batch.requeues.empty()) {
      std::vector<std::string> ids, workers, reasons;
      std::vector<int32_t> attempts;
      for (auto& q : batch.requeues) {
        ids.push_back(q.job_id);
        attempts.push_back(q.attempt);
        workers.push_back(q.worker_id);
        reasons.push_back(q.reason);
      }
      collect(
        tx.exec_params(
          "WITH s AS ("
          "  SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[],"
          "                       $4::text[]) AS t(id, attempt, worker, why)),"
          " u AS ("
          "  UPDATE jobs j SET"
          "    status = CASE WHEN j.cancel_requested THEN 'cancelled'"
          "      WHEN j.attempt < j.max_attempts + $5::int THEN 'pending'"
          "      ELSE 'failed' END,"
          "    error_message = CASE WHEN j.cancel_requested THEN 'cancelled'"
          "      ELSE 'worker lost' END,"
          "    completed_at = CASE WHEN j.cancel_requested"
          "      OR j.attempt >= j.max_attempts + $5::int"
          "      THEN clock_timestamp() END,"
          "    worker_id = CASE WHEN j.cancel_requested"
          "      OR j.attempt >= j.max_attempts + $5::int THEN j.worker_id END,"
          "    started_at = CASE WHEN j.cancel_requested"
          "      OR j.attempt >= j.max_attempts + $5::int THEN j.started_at END,"
          "    updated_at = clock_timestamp(), lease_expires_at = NULL,"
          "    claimed_by = NULL, claim_expires_at = NULL"
          "  FROM s WHERE j.id = s.id AND j.id = ANY($1::uuid[])"
          "    AND (j.status = 'running') IS TRUE"
          "    AND j.attempt = s.attempt AND j.worker_id = s.worker"
          "  RETURNING j.id, j.attempt, j.status, s.worker, s.why,"
          "    j.updated_at, j.pipeline_name, j.created_at, j.started_at,"
          "    j.completed_at),"
          " ev AS ("
          "  INSERT INTO job_events (job_id, at, from_status, to_status,"
          "                          attempt, worker_id, message)"
          "  SELECT id, updated_at, 'running', status, attempt, worker,"
          "    why FROM u)"
          "SELECT " ORCH_TRANSITION_COLUMNS " FROM u",
          pg_array(ids), pg_int_array(attempts), pg_array(workers),
          pg_array(reasons), defaults::lost_worker_requeues),
        out.requeued, out.end_rows);
    }
    if (!batch.releases.empty())
      tx.exec_params("UPDATE jobs SET claimed_by = NULL,"
                     " claim_expires_at = NULL"
                     " WHERE id = ANY($1::uuid[]) AND status = 'pending'"
                     " AND claimed_by = $2",
                     pg_array(batch.releases), scheduler_id);
    tx.commit();
    return out;
  });
}

void job_store::append_logs(pqxx::transaction_base& tx,
                            const std::vector<transition_batch::log_lines>& logs) {
  std::vector<std::string> ids, streams, lines;
  std::vector<int32_t> attempts;
  for (auto& l : logs)
    for (auto& line : l.lines) {
      ids.push_back(l.job_id);
      attempts.push_back(l.attempt);
      streams.push_back(l.stream);
      lines.push_back(line);
    }
  if (ids.empty())
    return;
  // Lines of an attempt that no longer owns its job are dropped (fencing);
  // late lines of the current attempt (after it finished) are kept.
  auto r = tx.exec_prepared(prepared("append_logs",
    "WITH t AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[])"
    "    WITH ORDINALITY AS t(id, attempt, stream, line, ord)),"
    " ok AS ("
    "  SELECT t.* FROM t JOIN jobs j ON j.id = t.id AND j.attempt = t.attempt"
    "  WHERE j.id = ANY($1::uuid[])),"
    " ins AS ("
    "  INSERT INTO job_logs (job_id, attempt, stream, line)"
    "  SELECT id, attempt, stream, line FROM ok ORDER BY ord"
    "  RETURNING job_id, octet_length(line) AS b)"
    "INSERT INTO job_log_stats AS s (job_id, lines, bytes)"
    " SELECT job_id, count(*), sum(b) FROM ins GROUP BY job_id"
    " ON CONFLICT (job_id) DO UPDATE SET lines = s.lines + excluded.lines,"
    "   bytes = s.bytes + excluded.bytes"
    " RETURNING job_id::text, lines, bytes"),
    pg_array(ids), pg_int_array(attempts), pg_array(streams),
    pg_array(lines));
  // Over the cap (with 10% slack, so that a chatty job is not trimmed on
  // every batch): drop the oldest lines down to the cap.
  auto max_lines = static_cast<int64_t>(defaults::max_log_lines);
  auto max_bytes = static_cast<int64_t>(defaults::max_log_bytes);
  for (const auto& row : r) {
    if (row[1].as<int64_t>() <= max_lines + max_lines / 10
        && row[2].as<int64_t>() <= max_bytes + max_bytes / 10)
      continue;
    tx.exec_params(
      "WITH d AS ("
      "  DELETE FROM job_logs WHERE id IN ("
      "    SELECT id FROM (SELECT id, row_number() OVER w AS rn,"
      "      sum(octet_length(line)) OVER w AS from_end"
      "      FROM job_logs WHERE job_id = $1::uuid"
      "      WINDOW w AS (ORDER BY id DESC)) x"
      "    WHERE rn > $2 OR from_end > $3)"
      "  RETURNING octet_length(line) AS b),"
      " n AS (SELECT count(*) AS lines, coalesce(sum(b), 0) AS bytes FROM d)"
      "UPDATE job_log_stats s SET lines = s.lines - n.lines,"
      "  bytes = s.bytes - n.bytes, dropped_lines = s.dropped_lines + n.lines,"
      "  dropped_bytes = s.dropped_bytes + n.bytes"
      " FROM n WHERE s.job_id = $1::uuid",
      row[0].as<std::string>(), max_lines, max_bytes);
  }
}

namespace {

// The three sources of the event stream as one ordered relation. `%W` is
// the filter of each branch; every branch is cut to `$lim` by its id index
// before the merge.
std::string stream_union(const std::string& where, const std::string& lim) {
  auto branch = [&](const char* cols, const char* table) {
    return "(SELECT " + std::string{cols} + " FROM " + table + " WHERE "
           + where + " ORDER BY id LIMIT " + lim + ")";
  };
  return branch("id, 's'::text AS k, job_id, at, attempt, to_status AS st,"
                " from_status, worker_id, message, NULL::text AS stream,"
                " NULL::text AS line, NULL::bigint AS completed,"
                " NULL::bigint AS total",
                "job_events")
         + " UNION ALL "
         + branch("id, 'l', job_id, at, attempt, NULL, NULL, NULL, NULL,"
                  " stream, line, NULL, NULL",
                  "job_logs")
         + " UNION ALL "
         + branch("id, CASE kind WHEN 'progress' THEN 'p' ELSE 'c' END,"
                  " job_id, at, attempt, status, NULL, NULL, NULL, NULL,"
                  " NULL, completed, total",
                  "job_signals");
}

} // namespace

caf::expected<std::vector<int64_t>> job_store::stream_ids(int64_t after,
                                                          size_t limit) {
  return guarded("stream_ids", [&]() -> caf::expected<std::vector<int64_t>> {
    static const std::string sql
      = "SELECT id FROM ((SELECT id FROM job_events WHERE id > $1 ORDER BY id"
        " LIMIT $2) UNION ALL (SELECT id FROM job_logs WHERE id > $1 ORDER BY"
        " id LIMIT $2) UNION ALL (SELECT id FROM job_signals WHERE id > $1"
        " ORDER BY id LIMIT $2)) x ORDER BY id LIMIT $2";
    auto name = prepared("stream_ids", sql);
    pqxx::read_transaction tx{conn()};
    auto r = tx.exec_prepared(name, after, static_cast<int64_t>(limit));
    std::vector<int64_t> out;
    out.reserve(r.size());
    for (const auto& row : r)
      out.push_back(row[0].as<int64_t>());
    return out;
  });
}

caf::expected<std::vector<stream_event>>
job_store::stream_events(int64_t after, int64_t upto,
                         const std::optional<std::string>& job_id,
                         size_t limit) {
  return guarded("stream_events",
                 [&]() -> caf::expected<std::vector<stream_event>> {
    static const std::string cols
      = "SELECT x.id, x.k, x.job_id::text, " ORCH_MICROS("x.at")
        ", x.attempt, x.st, x.from_status, x.worker_id, x.message,"
        " x.stream, x.line, x.completed, x.total, j.pipeline_name, j.status,"
        " j.error_message FROM (";
    static const std::string tail
      = " ORDER BY id LIMIT $3) x JOIN jobs j ON j.id = x.job_id"
        " ORDER BY x.id";
    static const std::string all_sql
      = cols + stream_union("id > $1 AND id <= $2", "$3") + tail;
    static const std::string job_sql
      = cols
        + stream_union("job_id = $4::uuid AND id > $1 AND id <= $2", "$3")
        + tail;
    pqxx::read_transaction tx{conn()};
    auto lim = static_cast<int64_t>(limit);
    auto r = job_id ? tx.exec_prepared(prepared("stream_events_job", job_sql),
                                       after, upto, lim, *job_id)
                    : tx.exec_prepared(prepared("stream_events", all_sql),
                                       after, upto, lim);
    std::vector<stream_event> out;
    out.reserve(r.size());
    auto opt = [](const pqxx::field& f) -> std::optional<std::string> {
      if (f.is_null())
        return std::nullopt;
      return f.as<std::string>();
    };
    for (const auto& row : r) {
      stream_event e;
      e.id = row[0].as<int64_t>();
      switch (row[1].c_str()[0]) {
        case 'l': e.type = stream_event::kind::log; break;
        case 'p': e.type = stream_event::kind::progress; break;
        case 'c': e.type = stream_event::kind::complete; break;
        default: e.type = stream_event::kind::status;
      }
      e.job_id = row[2].as<std::string>();
      e.at = row[3].as<int64_t>();
      e.attempt = row[4].as<int32_t>();
      e.status = row[5].is_null() ? row[14].as<std::string>()
                                  : row[5].as<std::string>();
      e.from_status = opt(row[6]);
      e.worker_id = opt(row[7]);
      e.message = opt(row[8]);
      if (!row[9].is_null())
        e.stream = row[9].as<std::string>();
      if (!row[10].is_null())
        e.line = row[10].as<std::string>();
      if (!row[11].is_null())
        e.completed = row[11].as<int64_t>();
      if (!row[12].is_null())
        e.total = row[12].as<int64_t>();
      e.pipeline_name = row[13].as<std::string>();
      e.error_message = opt(row[15]);
      out.push_back(std::move(e));
    }
    return out;
  });
}

caf::expected<int64_t> job_store::stream_head() {
  return guarded("stream_head", [&]() -> caf::expected<int64_t> {
    pqxx::read_transaction tx{conn()};
    auto r = tx.exec("SELECT greatest((SELECT max(id) FROM job_events),"
                     " (SELECT max(id) FROM job_logs),"
                     " (SELECT max(id) FROM job_signals), 0)");
    return r[0][0].as<int64_t>();
  });
}

caf::expected<job_logs_page>
job_store::get_logs(const std::string& id, int64_t tail,
                    const std::optional<std::string>& stream) {
  return guarded("get_logs", [&]() -> caf::expected<job_logs_page> {
    pqxx::work tx{conn()};
    auto exists = tx.exec_params(
      "SELECT coalesce(s.dropped_lines, 0), coalesce(s.dropped_bytes, 0)"
      " FROM jobs j LEFT JOIN job_log_stats s ON s.job_id = j.id"
      " WHERE j.id = $1::uuid",
      id);
    if (exists.empty())
      return make_error(ec::not_found, "no job " + id);
    job_logs_page page;
    page.dropped_lines = exists[0][0].as<int64_t>();
    page.dropped_bytes = exists[0][1].as<int64_t>();
    auto r = tx.exec_params(
      "SELECT id, attempt, stream, " ORCH_MICROS("at") ", line FROM ("
      "  SELECT * FROM job_logs WHERE job_id = $1::uuid"
      "    AND ($2::text IS NULL OR stream = $2)"
      "  ORDER BY id DESC LIMIT $3) x ORDER BY id",
      id, stream, tail);
    tx.commit();
    for (const auto& row : r)
      page.lines.push_back(log_line{row[0].as<int64_t>(),
                                    row[1].as<int32_t>(),
                                    row[2].as<std::string>(),
                                    row[3].as<int64_t>(),
                                    row[4].as<std::string>()});
    return page;
  });
}

caf::error job_store::sync_pipelines(const catalog& cat) {
  return guarded("sync_pipelines", [&]() -> caf::error {
    std::vector<std::string> names, executors, defs;
    std::vector<std::optional<std::string>> caps;
    for (auto& p : cat.pipelines()) {
      names.push_back(p.name);
      executors.push_back(p.executor);
      defs.push_back(p.to_json().dump());
      caps.push_back(p.max_concurrent
                       ? std::optional<std::string>{std::to_string(
                         *p.max_concurrent)}
                       : std::nullopt);
    }
    pqxx::work tx{conn()};
    // Every api-node loads the same catalog; the last one to start wins.
    tx.exec_params(
      "INSERT INTO pipelines AS p (name, executor, max_concurrent,"
      "  definition, updated_at)"
      " SELECT t.name, t.executor, t.cap, t.def::jsonb, now()"
      " FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])"
      "      AS t(name, executor, cap, def)"
      " ON CONFLICT (name) DO UPDATE SET executor = excluded.executor,"
      "   max_concurrent = excluded.max_concurrent,"
      "   definition = excluded.definition, updated_at = now()",
      pg_array(names), pg_array(executors), pg_array(caps), pg_array(defs));
    tx.exec_params("DELETE FROM pipelines WHERE NOT (name = ANY($1::text[]))",
                   pg_array(names));
    tx.commit();
    return caf::none;
  });
}

caf::error job_store::upsert_worker(const worker_row& w) {
  return guarded("upsert_worker", [&]() -> caf::error {
    pqxx::work tx{conn()};
    tx.exec_params(
      "INSERT INTO workers (id, host, slots, scheduler_id, node_id,"
      "  connected_at, last_seen, disconnected_at, executors)"
      " VALUES ($1, $2, $3, $4, $5, " + ts_param(6) + ", " + ts_param(6)
        + ", NULL, $7::text[])"
          " ON CONFLICT (id) DO UPDATE SET host = excluded.host,"
          "  executors = excluded.executors,"
          "  slots = excluded.slots, scheduler_id = excluded.scheduler_id,"
          "  node_id = excluded.node_id, connected_at = excluded.connected_at,"
          "  last_seen = excluded.last_seen, disconnected_at = NULL",
      w.id, w.host, w.slots, w.scheduler_id, w.node_id, w.connected_at,
      pg_array(w.executors));
    tx.commit();
    return caf::none;
  });
}

caf::error job_store::disconnect_worker(const std::string& id,
                                        const std::string& scheduler_id) {
  return guarded("disconnect_worker", [&]() -> caf::error {
    pqxx::work tx{conn()};
    tx.exec_params("UPDATE workers SET disconnected_at = clock_timestamp()"
                   " WHERE id = $1 AND scheduler_id = $2"
                   " AND disconnected_at IS NULL",
                   id, scheduler_id);
    tx.commit();
    return caf::none;
  });
}

caf::error job_store::touch_workers(const std::vector<std::string>& ids,
                                    const std::vector<micros>& last_seen,
                                    const std::string& scheduler_id) {
  if (ids.empty())
    return caf::none;
  return guarded("touch_workers", [&]() -> caf::error {
    pqxx::work tx{conn()};
    tx.exec_params(
      "UPDATE workers w SET last_seen ="
      "  timestamptz 'epoch' + t.at * interval '1 microsecond'"
      " FROM unnest($1::text[], $2::bigint[]) AS t(id, at)"
      " WHERE w.id = t.id AND w.scheduler_id = $3"
      " AND w.disconnected_at IS NULL",
      pg_array(ids), pg_int_array(last_seen), scheduler_id);
    tx.commit();
    return caf::none;
  });
}

caf::expected<std::vector<worker_row>>
job_store::list_workers(std::chrono::milliseconds stale_after) {
  return guarded("list_workers",
                 [&]() -> caf::expected<std::vector<worker_row>> {
                   pqxx::nontransaction tx{conn()};
                   auto r = tx.exec_params(
                     "SELECT w.id, w.host, w.slots,"
                     "  (SELECT count(*) FROM jobs j WHERE j.status ="
                     "   'running' AND j.worker_id = w.id)::int,"
                     "  w.scheduler_id, w.node_id, " ORCH_MICROS(
                       "w.connected_at") ", " ORCH_MICROS("w.last_seen")
                     ", array_to_string(w.executors, ',')"
                     " FROM workers w WHERE w.disconnected_at IS NULL"
                     " AND w.last_seen > now() - $1::bigint"
                     "  * interval '1 millisecond'"
                     " ORDER BY w.id",
                     static_cast<int64_t>(stale_after.count()));
                   std::vector<worker_row> result;
                   for (const auto& row : r)
                     {
                     worker_row w{
                       row[0].as<std::string>(), row[1].as<std::string>(),
                       row[2].as<int32_t>(), row[3].as<int32_t>(),
                       row[4].as<std::string>(), row[5].as<std::string>(),
                       row[6].as<int64_t>(), row[7].as<int64_t>(), {}};
                     std::stringstream list{row[8].as<std::string>()};
                     for (std::string e; std::getline(list, e, ',');)
                       w.executors.push_back(e);
                     result.push_back(std::move(w));
                   }
                   return result;
                 });
}

caf::expected<size_t> job_store::migrate(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code err;
  for (auto& entry : fs::directory_iterator(dir, err))
    if (entry.is_regular_file() && entry.path().extension() == ".sql")
      files.push_back(entry.path());
  if (err)
    return make_error(ec::invalid_configuration,
                      "cannot read migrations in " + dir + ": "
                        + err.message());
  std::sort(files.begin(), files.end());
  return guarded("migrate", [&]() -> caf::expected<size_t> {
    auto& c = conn();
    // A session-level advisory lock serializes concurrent api-nodes; the
    // second one waits, then finds everything applied.
    constexpr int64_t lock_key = 0x6f72636801; // "orch" + 1
    pqxx::nontransaction{c}.exec_params("SELECT pg_advisory_lock($1)",
                                        lock_key);
    struct unlock {
      pqxx::connection_base& c;
      ~unlock() {
        try {
          if (c.is_open())
            pqxx::nontransaction{c}.exec(
              "SELECT pg_advisory_unlock_all()");
        } catch (...) {
          // The session ends anyway; the lock goes with it.
        }
      }
    } guard{c};
    {
      pqxx::work tx{c};
      tx.exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
              " version text PRIMARY KEY,"
              " name text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    size_t applied = 0;
    for (auto& file : files) {
      auto stem = file.stem().string();
      auto sep = stem.find('_');
      auto version = stem.substr(0, sep);
      auto name = sep == std::string::npos ? stem : stem.substr(sep + 1);
      pqxx::work tx{c};
      auto r = tx.exec_params(
        "SELECT 1 FROM schema_migrations WHERE version = $1", version);
      if (!r.empty())
        continue;
      std::ifstream in{file};
      std::stringstream sql;
      sql << in.rdbuf();
      tx.exec(sql.str());
      tx.exec_params(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
        version, name);
      tx.commit();
      spdlog::info("applied migration {}", file.filename().string());
      ++applied;
    }
    return applied;
  });
}

} // namespace orch::api
