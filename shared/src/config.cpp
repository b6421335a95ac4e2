#include "orch/config.hpp"

#include "orch/error.hpp"

#include <cstdlib>
#include <iomanip>

namespace orch {

options::options(std::string program, std::string summary,
                 std::vector<option_spec> specs)
  : program_(std::move(program)),
    summary_(std::move(summary)),
    specs_(std::move(specs)) {
  for (auto& spec : specs_)
    values_[spec.env] = spec.default_value;
}

std::string options::flag_of(const std::string& env) {
  std::string flag = "--";
  for (auto c : env)
    flag += c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return flag;
}

caf::error options::parse(int argc, char** argv) {
  for (auto& spec : specs_)
    if (auto val = std::getenv(spec.env.c_str()); val != nullptr && *val)
      values_[spec.env] = val;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    std::string name = arg;
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const option_spec* match = nullptr;
    for (auto& spec : specs_)
      if (flag_of(spec.env) == name)
        match = &spec;
    if (match == nullptr)
      return make_error(ec::invalid_configuration,
                        "unknown option " + name + " (see --help)");
    if (match->is_switch) {
      values_[match->env] = has_value ? value : "1";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc)
        return make_error(ec::invalid_configuration,
                          "option " + name + " needs a value");
      value = argv[++i];
    }
    values_[match->env] = value;
  }
  return caf::none;
}

void options::print_help(std::ostream& out) const {
  out << "Usage: " << program_ << " [options]\n\n" << summary_ << "\n\n"
      << "Every option can also be set through the environment variable\n"
      << "named in brackets; a flag wins over the variable.\n\n";
  for (auto& spec : specs_) {
    auto flag = flag_of(spec.env) + (spec.is_switch ? "" : " VALUE");
    out << "  " << std::left << std::setw(30) << flag << spec.help << " ["
        << spec.env;
    if (!spec.default_value.empty())
      out << ", default: " << spec.default_value;
    out << "]\n";
  }
  out << "  " << std::left << std::setw(30) << "--help"
      << "print this text\n";
}

const std::string& options::get(const std::string& env) const {
  static const std::string empty;
  auto i = values_.find(env);
  return i == values_.end() ? empty : i->second;
}

caf::expected<int64_t> options::get_int(const std::string& env, int64_t min,
                                        int64_t max) const {
  auto& str = get(env);
  char* end = nullptr;
  errno = 0;
  auto val = std::strtoll(str.c_str(), &end, 10);
  if (str.empty() || *end != '\0' || errno != 0 || val < min || val > max)
    return make_error(ec::invalid_configuration,
                      env + " must be an integer from " + std::to_string(min)
                        + " to " + std::to_string(max) + ", got '" + str
                        + "'");
  return static_cast<int64_t>(val);
}

caf::expected<double> options::get_double(const std::string& env, double min,
                                          double max) const {
  auto& str = get(env);
  char* end = nullptr;
  errno = 0;
  auto val = std::strtod(str.c_str(), &end);
  if (str.empty() || *end != '\0' || errno != 0 || !(val >= min)
      || !(val <= max))
    return make_error(ec::invalid_configuration,
                      env + " must be a number from " + std::to_string(min)
                        + " to " + std::to_string(max) + ", got '" + str
                        + "'");
  return val;
}

caf::expected<bool> options::get_bool(const std::string& env) const {
  auto str = get(env);
  for (auto& c : str)
    c = static_cast<char>(std::tolower(c));
  if (str == "1" || str == "true" || str == "yes" || str == "on")
    return true;
  if (str.empty() || str == "0" || str == "false" || str == "no"
      || str == "off")
    return false;
  return make_error(ec::invalid_configuration,
                    env + " must be true or false, got '" + str + "'");
}

} // namespace orch
