#pragma once

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace orch {

/// One setting, read from `--flag`, else from the environment, else its
/// default. The flag is derived from the variable: HTTP_PORT -> --http-port.
struct option_spec {
  std::string env;
  std::string default_value;
  std::string help;
  /// A switch takes no value on the command line (`--no-migrate`); in the
  /// environment it is "1"/"true"/"yes" or "0"/"false"/"no".
  bool is_switch = false;
};

/// The settings of one binary.
class options {
public:
  options(std::string program, std::string summary,
          std::vector<option_spec> specs);

  /// Parses `argv` (flags) and the process environment. Returns
  /// `invalid_configuration` for unknown flags or missing values.
  caf::error parse(int argc, char** argv);

  /// Whether `--help` was given.
  bool help_requested() const {
    return help_;
  }

  /// Writes the usage text: every flag, its variable and its default.
  void print_help(std::ostream& out) const;

  /// The raw value of `env`.
  const std::string& get(const std::string& env) const;

  /// The value of `env` as an integer in [min, max].
  caf::expected<int64_t> get_int(const std::string& env, int64_t min,
                                 int64_t max) const;

  /// The value of `env` as a number in [min, max].
  caf::expected<double> get_double(const std::string& env, double min,
                                   double max) const;

  /// The value of `env` as a boolean.
  caf::expected<bool> get_bool(const std::string& env) const;

  /// Returns "--http-port" for "HTTP_PORT".
  static std::string flag_of(const std::string& env);

private:
  std::string program_;
  std::string summary_;
  std::vector<option_spec> specs_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

} // namespace orch
