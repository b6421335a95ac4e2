#include "orch/codec.hpp"
#include "orch/error.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <regex>

using namespace orch;

namespace {

caf::error parse_error(const std::string& body) {
  auto r = codec::parse_submission(body);
  EXPECT_FALSE(r) << "accepted: " << body;
  return r ? caf::error{} : r.error();
}

// Asserts that `body` is rejected as invalid and names `field`.
void expect_invalid(const std::string& body, const std::string& field) {
  auto err = parse_error(body);
  ASSERT_EQ(code_of(err), ec::validation_failed) << body;
  auto fields = field_errors_of(err);
  ASSERT_FALSE(fields.empty()) << body;
  bool found = false;
  for (auto& fe : fields)
    found = found || fe.field == field;
  EXPECT_TRUE(found) << body << " does not name " << field << ": "
                     << render(err);
}

} // namespace

TEST(codec, accepts_minimal_submission_with_defaults) {
  auto r = codec::parse_submission(R"({"pipeline_name":"rna-seq_v1.2"})");
  ASSERT_TRUE(r) << render(r.error());
  EXPECT_EQ(r->pipeline_name, "rna-seq_v1.2");
  EXPECT_EQ(r->parameters_json, "{}");
  EXPECT_FALSE(r->description);
  EXPECT_EQ(r->priority, 0);
}

TEST(codec, accepts_full_submission) {
  auto r = codec::parse_submission(
    R"({"pipeline_name":"x","parameters":{"a":[1,2,{"b":null}],"s":"'; DROP TABLE jobs;--"},
        "description":"héllo ✓","priority":-1000})");
  ASSERT_TRUE(r) << render(r.error());
  EXPECT_EQ(nlohmann::json::parse(r->parameters_json)["s"],
            "'; DROP TABLE jobs;--");
  EXPECT_EQ(*r->description, "héllo ✓");
  EXPECT_EQ(r->priority, -1000);
  EXPECT_TRUE(codec::parse_submission(
    R"({"pipeline_name":"x","description":null,"priority":1000})"));
}

TEST(codec, malformed_json_is_its_own_error) {
  for (auto body : {"", "{", "{\"pipeline_name\":}", "nope", "{\"a\":1,}",
                    "\xff\xfe"})
    EXPECT_EQ(code_of(parse_error(body)), ec::malformed_json) << body;
}

TEST(codec, rejects_non_objects) {
  expect_invalid("[]", "body");
  expect_invalid("42", "body");
  expect_invalid("null", "body");
}

TEST(codec, pipeline_name_rules) {
  expect_invalid("{}", "pipeline_name");
  expect_invalid(R"({"pipeline_name":""})", "pipeline_name");
  expect_invalid(R"({"pipeline_name":7})", "pipeline_name");
  expect_invalid(R"({"pipeline_name":null})", "pipeline_name");
  expect_invalid(R"({"pipeline_name":"a b"})", "pipeline_name");
  expect_invalid(R"({"pipeline_name":"a/b"})", "pipeline_name");
  expect_invalid(R"({"pipeline_name":"é"})", "pipeline_name");
  EXPECT_TRUE(codec::parse_submission(
    R"({"pipeline_name":")" + std::string(128, 'a') + "\"}"));
  expect_invalid(R"({"pipeline_name":")" + std::string(129, 'a') + "\"}",
                 "pipeline_name");
}

TEST(codec, parameters_rules) {
  expect_invalid(R"({"pipeline_name":"x","parameters":[]})", "parameters");
  expect_invalid(R"({"pipeline_name":"x","parameters":"a"})", "parameters");
  expect_invalid(R"({"pipeline_name":"x","parameters":null})", "parameters");
  expect_invalid(R"({"pipeline_name":"x","parameters":{"a":"\u0000"}})",
                 "parameters");
  // 64 KiB serialized is the limit.
  auto fits = std::string(64 * 1024 - 8, 'a'); // {"k":"..."} adds 8 bytes
  EXPECT_TRUE(codec::parse_submission(R"({"pipeline_name":"x","parameters":{"k":")"
                                      + fits + "\"}}"));
  expect_invalid(R"({"pipeline_name":"x","parameters":{"k":")" + fits
                   + "a\"}}",
                 "parameters");
  // Nesting: 32 levels including the parameters object itself.
  std::string deep = "1";
  for (int i = 0; i < 31; ++i)
    deep = "[" + deep + "]";
  EXPECT_TRUE(codec::parse_submission(
    R"({"pipeline_name":"x","parameters":{"a":)" + deep + "}}"));
  expect_invalid(R"({"pipeline_name":"x","parameters":{"a":[)" + deep + "]}}",
                 "parameters");
}

TEST(codec, description_rules) {
  expect_invalid(R"({"pipeline_name":"x","description":5})", "description");
  std::string ok;
  for (int i = 0; i < 4096; ++i)
    ok += "✓"; // 3 bytes, one character
  EXPECT_TRUE(codec::parse_submission(R"({"pipeline_name":"x","description":")"
                                      + ok + "\"}"));
  expect_invalid(R"({"pipeline_name":"x","description":")" + ok + "a\"}",
                 "description");
}

TEST(codec, priority_rules) {
  expect_invalid(R"({"pipeline_name":"x","priority":1001})", "priority");
  expect_invalid(R"({"pipeline_name":"x","priority":-1001})", "priority");
  expect_invalid(R"({"pipeline_name":"x","priority":1.5})", "priority");
  expect_invalid(R"({"pipeline_name":"x","priority":"1"})", "priority");
  expect_invalid(R"({"pipeline_name":"x","priority":null})", "priority");
  expect_invalid(R"({"pipeline_name":"x","priority":18446744073709551615})",
                 "priority");
}

TEST(codec, unknown_fields_are_named) {
  expect_invalid(R"({"pipeline_name":"x","pipeline":"y"})", "pipeline");
}

TEST(codec, reports_every_broken_field) {
  auto err = parse_error(R"({"priority":5000,"extra":1})");
  auto fields = field_errors_of(err);
  EXPECT_EQ(fields.size(), 3u) << render(err);
}

TEST(codec, job_json_shape) {
  job x;
  x.id = "0b5c9a52-6f47-4c1c-9d5e-8a8f3c2f1a00";
  x.pipeline_name = "p";
  x.parameters_json = R"({"n":1})";
  x.created_at = 1700000000123456;
  x.updated_at = 1700000000123999;
  x.started_at = 1700000001000000;
  auto j = codec::to_json(x);
  EXPECT_EQ(j["status"], "pending");
  EXPECT_EQ(j["attempt"], 0);
  EXPECT_EQ(j["parameters"]["n"], 1);
  EXPECT_EQ(j["created_at"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["started_at"], "2023-11-14T22:13:21.000Z");
  EXPECT_TRUE(j["completed_at"].is_null());
  EXPECT_TRUE(j["worker_id"].is_null());
  EXPECT_TRUE(j["error_message"].is_null());
  EXPECT_TRUE(j["description"].is_null());
  for (auto key : {"id", "status", "pipeline_name", "parameters",
                   "description", "priority", "attempt", "worker_id",
                   "created_at", "updated_at", "started_at", "completed_at",
                   "error_message"})
    EXPECT_TRUE(j.contains(key)) << key;
}

TEST(codec, rfc3339_format) {
  std::regex re{R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"};
  EXPECT_TRUE(std::regex_match(format_rfc3339(now_micros()), re));
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339(951782400123456), "2000-02-29T00:00:00.123Z");
  // Against the C library over ~500 years, leap days included.
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<int64_t> dist(-2208988800LL * 1000000,
                                              13569465600LL * 1000000);
  for (int i = 0; i < 20000; ++i) {
    auto t = dist(rng);
    auto secs = t / 1000000 - (t % 1000000 < 0 ? 1 : 0);
    auto ms = ((t % 1000000) + 1000000) % 1000000 / 1000;
    auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    ASSERT_EQ(format_rfc3339(t), buf) << t;
  }
}

TEST(cursor, round_trips) {
  for (int64_t seq : {int64_t{0}, int64_t{1}, int64_t{99},
                      int64_t{123456789012345}}) {
    auto c = codec::encode_cursor(seq);
    auto back = codec::decode_cursor(c);
    ASSERT_TRUE(back) << c;
    EXPECT_EQ(*back, seq);
  }
}

TEST(cursor, rejects_garbage) {
  for (auto bad : {"", "abc", "!!!!", "djE6", "djE6LTE", "djI6MTA",
                   "djE6MTA=", "djE6MTAx!"}) {
    auto r = codec::decode_cursor(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(code_of(r.error()), ec::validation_failed);
    EXPECT_EQ(field_errors_of(r.error()).at(0).field, "cursor");
  }
}

TEST(uuid, generated_ids_are_valid_and_distinct) {
  auto a = make_uuid();
  auto b = make_uuid();
  EXPECT_TRUE(is_uuid(a));
  EXPECT_NE(a, b);
  EXPECT_EQ(a[14], '7');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
  // The first 48 bits are the Unix time in milliseconds, so ids sort by
  // creation time across milliseconds.
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  auto stamp = std::stoll(a.substr(0, 8) + a.substr(9, 4), nullptr, 16);
  EXPECT_LE(std::llabs(now_ms - stamp), 60'000);
  std::string later;
  do
    later = make_uuid();
  while (later.compare(0, 13, a, 0, 13) == 0);
  EXPECT_LT(a, later);
  EXPECT_FALSE(is_uuid("not-a-uuid"));
  EXPECT_FALSE(is_uuid("0b5c9a52-6f47-4c1c-9d5e-8a8f3c2f1a0g"));
  EXPECT_TRUE(is_uuid("0B5C9A52-6F47-4C1C-9D5E-8A8F3C2F1A00"));
}

TEST(codec, json_strings_escape_exactly_what_they_must) {
  auto quoted = [](std::string_view s) {
    std::string out;
    codec::append_json_string(out, s);
    return out;
  };
  EXPECT_EQ(quoted(""), R"("")");
  EXPECT_EQ(quoted("plain ✓"), "\"plain ✓\"");
  EXPECT_EQ(quoted("\"a\\b\x1f"), R"("\"a\\b\u001f")");
  EXPECT_EQ(quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(quoted(std::string_view{"x\0y", 3}), R"("x\u0000y")");
}

TEST(codec, direct_writer_matches_the_dom) {
  job x;
  x.id = "0b5c9a52-6f47-4c1c-9d5e-8a8f3c2f1a00";
  x.pipeline_name = "p";
  x.parameters_json = R"({"n": 1, "s": "q\"uote", "a": [1, {"b": null}]})";
  x.description = std::string{"tab\tnew\nline \x01 ✓ \"q\" \\"};
  x.error_message = "boom";
  x.worker_id = "w";
  x.created_at = 1700000000123456;
  x.updated_at = 1700000000123999;
  x.completed_at = 1700000002000000;
  x.retry_backoff_seconds = 2.5;
  x.cancel_requested = true;
  std::string out;
  codec::append_json(out, x);
  EXPECT_EQ(nlohmann::json::parse(out), codec::to_json(x)) << out;
  job empty;
  out.clear();
  codec::append_json(out, empty);
  EXPECT_EQ(nlohmann::json::parse(out), codec::to_json(empty)) << out;
}
