#include "orch/config.hpp"
#include "orch/error.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

using namespace orch;

namespace {

options make() {
  return options{"prog", "test", {{"ORCH_T_PORT", "8080", "port"},
                                   {"ORCH_T_NAME", "", "name"},
                                   {"ORCH_T_FLAG", "", "switch", true}}};
}

} // namespace

TEST(options, flag_beats_env_beats_default) {
  auto o = make();
  setenv("ORCH_T_NAME", "from-env", 1);
  char* argv[] = {(char*) "prog", (char*) "--orch-t-port=9", nullptr};
  ASSERT_FALSE(o.parse(2, argv));
  EXPECT_EQ(o.get("ORCH_T_PORT"), "9");
  EXPECT_EQ(o.get("ORCH_T_NAME"), "from-env");
  EXPECT_EQ(*o.get_int("ORCH_T_PORT", 0, 65535), 9);
  EXPECT_FALSE(*o.get_bool("ORCH_T_FLAG"));
  unsetenv("ORCH_T_NAME");
}

TEST(options, switches_and_separate_values) {
  auto o = make();
  char* argv[] = {(char*) "prog", (char*) "--orch-t-flag",
                  (char*) "--orch-t-name", (char*) "x", nullptr};
  ASSERT_FALSE(o.parse(4, argv));
  EXPECT_TRUE(*o.get_bool("ORCH_T_FLAG"));
  EXPECT_EQ(o.get("ORCH_T_NAME"), "x");
}

TEST(options, rejects_unknown_flags_and_bad_numbers) {
  auto o = make();
  char* argv[] = {(char*) "prog", (char*) "--nope", nullptr};
  EXPECT_EQ(code_of(o.parse(2, argv)), ec::invalid_configuration);
  auto p = make();
  char* argv2[] = {(char*) "prog", (char*) "--orch-t-port=70000", nullptr};
  ASSERT_FALSE(p.parse(2, argv2));
  EXPECT_FALSE(p.get_int("ORCH_T_PORT", 0, 65535));
}

TEST(options, help_lists_flags_and_variables) {
  auto o = make();
  std::ostringstream out;
  o.print_help(out);
  EXPECT_NE(out.str().find("--orch-t-port"), std::string::npos);
  EXPECT_NE(out.str().find("ORCH_T_PORT"), std::string::npos);
}
