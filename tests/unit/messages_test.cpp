#include "orch/error.hpp"
#include "orch/messages.hpp"

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

using namespace orch;

namespace {

struct config : caf::actor_system_config {
  config() {
    register_message_types(*this);
  }
};

class messages : public ::testing::Test {
protected:
  config cfg;
  caf::actor_system sys{cfg};

  // Serializes `x` inside a message, as the middleman does, and back.
  template <class T>
  T round_trip(const T& x) {
    auto msg = caf::make_message(x);
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    auto err = sink(msg);
    EXPECT_FALSE(err) << sys.render(err);
    caf::message out;
    caf::binary_deserializer source{sys, buf};
    err = source(out);
    EXPECT_FALSE(err) << sys.render(err);
    EXPECT_TRUE(out.match_elements<T>());
    return out.get_as<T>(0);
  }
};

} // namespace

TEST_F(messages, worker_hello_round_trips) {
  worker_hello x;
  x.worker_id = "w-1";
  x.host = "node7";
  x.slots = 8;
  x.executors = {"mock", "snakemake"};
  x.inflight = {{"a", 2}, {"b", 1}};
  auto y = round_trip(x);
  EXPECT_EQ(y.protocol, protocol_version);
  EXPECT_EQ(y.worker_id, "w-1");
  EXPECT_EQ(y.slots, 8u);
  EXPECT_EQ(y.executors, x.executors);
  ASSERT_EQ(y.inflight.size(), 2u);
  EXPECT_EQ(y.inflight[0].job_id, "a");
  EXPECT_EQ(y.inflight[0].attempt, 2);
}

TEST_F(messages, job_messages_round_trip) {
  auto a = round_trip(job_assignment{"j", 3, "pipe", R"({"k":"v"})", 60});
  EXPECT_EQ(a.timeout_seconds, 60);
  EXPECT_EQ(a.job_id, "j");
  EXPECT_EQ(a.attempt, 3);
  EXPECT_EQ(a.parameters_json, R"({"k":"v"})");
  auto s = round_trip(job_started{"j", 3, "w", 123456789});
  EXPECT_EQ(s.at, 123456789);
  auto f = round_trip(job_finished{"j", 3, "w", 1, "it broke", 5});
  EXPECT_EQ(f.outcome, 1);
  EXPECT_EQ(f.error, "it broke");
  auto a2 = round_trip(job_assignment{"j", 1, "p", "{}", 5, "snakemake",
                                      R"({"cores":2})"});
  EXPECT_EQ(a2.executor, "snakemake");
  EXPECT_EQ(a2.settings_json, R"({"cores":2})");
  auto p = round_trip(job_progress_report{"j", 3, 4, 10});
  EXPECT_EQ(p.completed, 4);
  EXPECT_EQ(p.total, 10);
  auto l = round_trip(job_log{"j", 3, "stderr", {"one", "two"}});
  EXPECT_EQ(l.lines.size(), 2u);
}

TEST_F(messages, type_names_carry_the_protocol_version) {
  auto name = sys.types().portable_name(
    caf::make_rtti_pair<worker_hello>());
  EXPECT_NE(name.find("v" + std::to_string(protocol_version)),
            std::string::npos)
    << name;
}

TEST_F(messages, errors_keep_their_code_and_fields_across_the_wire) {
  auto err = make_validation_error({{"priority", "too big"}});
  auto msg = caf::make_message(err);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(msg));
  caf::message out;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(out));
  auto back = out.get_as<caf::error>(0);
  EXPECT_EQ(code_of(back), ec::validation_failed);
  ASSERT_EQ(field_errors_of(back).size(), 1u);
  EXPECT_EQ(field_errors_of(back)[0].field, "priority");
}
