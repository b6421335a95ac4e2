#include "orch/catalog.hpp"

#include "orch/error.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace orch {

namespace {

// -- YAML -> JSON ------------------------------------------------------------

nlohmann::json scalar_to_json(const YAML::Node& node) {
  const auto& text = node.Scalar();
  // Quoted ("!") scalars and explicitly tagged ones stay strings.
  if (node.Tag() != "?")
    return text;
  if (text.empty() || text == "~" || text == "null" || text == "Null"
      || text == "NULL")
    return nullptr;
  if (text == "true" || text == "True" || text == "TRUE")
    return true;
  if (text == "false" || text == "False" || text == "FALSE")
    return false;
  // Integers and numbers, as JSON spells them.
  try {
    auto j = nlohmann::json::parse(text);
    if (j.is_number())
      return j;
  } catch (const nlohmann::json::exception&) {
    // not a number
  }
  return text;
}

caf::expected<nlohmann::json> node_to_json(const YAML::Node& node,
                                           int depth) {
  if (depth > 64)
    return make_error(ec::invalid_configuration, "YAML nested too deeply");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      auto arr = nlohmann::json::array();
      for (const auto& item : node) {
        auto x = node_to_json(item, depth + 1);
        if (!x)
          return x;
        arr.push_back(std::move(*x));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      auto obj = nlohmann::json::object();
      for (const auto& kv : node) {
        auto x = node_to_json(kv.second, depth + 1);
        if (!x)
          return x;
        obj[kv.first.Scalar()] = std::move(*x);
      }
      return obj;
    }
  }
  return nlohmann::json(nullptr);
}

// -- schema ------------------------------------------------------------------

bool is_valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_'
           || c == '.' || c == '-';
  });
}

bool type_matches(const std::string& type, const nlohmann::json& x) {
  if (type.empty())
    return true;
  if (type == "string")
    return x.is_string();
  if (type == "integer") {
    if (x.is_number_integer())
      return true;
    // 5.0 is an integer in JSON Schema.
    return x.is_number_float() && std::isfinite(x.get<double>())
           && std::floor(x.get<double>()) == x.get<double>();
  }
  if (type == "number")
    return x.is_number();
  if (type == "boolean")
    return x.is_boolean();
  if (type == "array")
    return x.is_array();
  if (type == "object")
    return x.is_object();
  return false;
}

constexpr std::string_view param_types[]
  = {"string", "integer", "number", "boolean", "array", "object"};

std::string render_number(double x) {
  if (std::floor(x) == x && std::fabs(x) < 1e15)
    return std::to_string(static_cast<int64_t>(x));
  std::ostringstream out;
  out << x;
  return out.str();
}

caf::error bad(const std::string& where, const std::string& what) {
  return make_error(ec::invalid_configuration, where + ": " + what);
}

std::optional<double> number_of(const nlohmann::json& obj, const char* a,
                                const char* b) {
  for (auto key : {a, b})
    if (auto i = obj.find(key); i != obj.end() && i->is_number())
      return i->get<double>();
  return std::nullopt;
}

caf::expected<param_spec> parse_param(const std::string& where,
                                      const std::string& name,
                                      const nlohmann::json& rule) {
  param_spec p;
  p.name = name;
  if (!is_valid_name(name))
    return bad(where, "parameter names use [A-Za-z0-9_.-]");
  if (rule.is_string()) {
    // Shorthand: `n: integer`.
    p.type = rule.get<std::string>();
  } else if (rule.is_object()) {
    static const std::vector<std::string> keys
      = {"type",       "required",   "default", "enum",       "min",
         "max",        "minimum",    "maximum", "min_length", "max_length",
         "pattern",    "description"};
    for (auto& [k, v] : rule.items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end())
        return bad(where, "unknown rule '" + k + "'");
    if (auto i = rule.find("type"); i != rule.end()) {
      if (!i->is_string())
        return bad(where, "type must be a string");
      p.type = i->get<std::string>();
    }
    if (auto i = rule.find("required"); i != rule.end()) {
      if (!i->is_boolean())
        return bad(where, "required must be true or false");
      p.required = i->get<bool>();
    }
    if (auto i = rule.find("default"); i != rule.end() && !i->is_null())
      p.default_value = *i;
    if (auto i = rule.find("enum"); i != rule.end()) {
      if (!i->is_array() || i->empty())
        return bad(where, "enum must be a non-empty list");
      p.enum_values.assign(i->begin(), i->end());
    }
    p.minimum = number_of(rule, "min", "minimum");
    p.maximum = number_of(rule, "max", "maximum");
    for (auto [key, dst] : {std::pair{"min_length", &p.min_length},
                            std::pair{"max_length", &p.max_length}})
      if (auto i = rule.find(key); i != rule.end()) {
        if (!i->is_number_unsigned())
          return bad(where, std::string{key} + " must be a count");
        *dst = i->get<size_t>();
      }
    if (auto i = rule.find("pattern"); i != rule.end()) {
      if (!i->is_string())
        return bad(where, "pattern must be a string");
      p.pattern = i->get<std::string>();
      try {
        p.pattern_re.emplace(*p.pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return bad(where, "pattern is not a valid regular expression: "
                            + std::string{e.what()});
      }
    }
    if (auto i = rule.find("description"); i != rule.end() && i->is_string())
      p.description = i->get<std::string>();
  } else {
    return bad(where, "a parameter is a type name or a map of rules");
  }
  if (!p.type.empty()
      && std::find(std::begin(param_types), std::end(param_types), p.type)
           == std::end(param_types))
    return bad(where, "unknown type '" + p.type
                        + "' (string, integer, number, boolean, array, "
                          "object)");
  if (p.default_value && !type_matches(p.type, *p.default_value))
    return bad(where, "default is not of type " + p.type);
  return p;
}

// Settings keys that name files, resolved against the catalog's folder.
void resolve_paths(nlohmann::json& settings,
                   const std::filesystem::path& base_dir) {
  for (auto key : {"snakefile", "pipeline", "script", "configfile"}) {
    auto i = settings.find(key);
    if (i == settings.end() || !i->is_string())
      continue;
    auto str = i->get<std::string>();
    // Only things that look like local paths: not "nf-core/rnaseq".
    std::filesystem::path path{str};
    if (path.is_relative()
        && std::filesystem::exists(base_dir / path))
      *i = std::filesystem::weakly_canonical(base_dir / path).string();
  }
  // Command argv elements that name a file next to the catalog (a script).
  if (auto argv = settings.find("argv"); argv != settings.end()
                                         && argv->is_array()) {
    for (auto& x : *argv) {
      if (!x.is_string())
        continue;
      auto str = x.get<std::string>();
      if (str.empty() || str[0] == '-' || str.find('{') != std::string::npos
          || str.find('/') == std::string::npos)
        continue;
      std::filesystem::path path{str};
      std::error_code err;
      if (path.is_relative()
          && std::filesystem::is_regular_file(base_dir / path, err))
        x = std::filesystem::weakly_canonical(base_dir / path).string();
    }
  }
}

caf::expected<pipeline_spec> parse_pipeline(const nlohmann::json& doc,
                                            size_t index,
                                            const std::filesystem::path& dir) {
  auto where = "pipelines[" + std::to_string(index) + "]";
  if (!doc.is_object())
    return bad(where, "must be a map");
  pipeline_spec p;
  auto name = doc.find("name");
  if (name == doc.end() || !name->is_string()
      || !is_valid_name(name->get<std::string>()))
    return bad(where, "name is required: 1 to 128 characters from "
                      "[A-Za-z0-9_.-]");
  p.name = name->get<std::string>();
  where += " (" + p.name + ")";
  if (auto i = doc.find("description"); i != doc.end() && i->is_string())
    p.description = i->get<std::string>();
  if (auto i = doc.find("executor"); i != doc.end()) {
    if (!i->is_string())
      return bad(where, "executor must be a string");
    p.executor = i->get<std::string>();
  }
  if (std::find(std::begin(known_executors), std::end(known_executors),
                p.executor)
      == std::end(known_executors))
    return bad(where, "unknown executor '" + p.executor
                        + "' (mock, command, snakemake, nextflow)");
  if (auto i = doc.find(p.executor); i != doc.end()) {
    if (!i->is_object())
      return bad(where, p.executor + " settings must be a map");
    p.settings = *i;
  } else if (auto j = doc.find("settings"); j != doc.end()) {
    if (!j->is_object())
      return bad(where, "settings must be a map");
    p.settings = *j;
  }
  resolve_paths(p.settings, dir);
  if (p.executor == "command") {
    auto argv = p.settings.find("argv");
    if (argv == p.settings.end() || !argv->is_array() || argv->empty()
        || !std::all_of(argv->begin(), argv->end(),
                        [](auto& x) { return x.is_string(); }))
      return bad(where, "command.argv must be a non-empty list of strings");
  } else if (p.executor == "snakemake") {
    auto file = p.settings.find("snakefile");
    if (file == p.settings.end() || !file->is_string())
      return bad(where, "snakemake.snakefile is required");
  } else if (p.executor == "nextflow") {
    auto pl = p.settings.find("pipeline");
    if (pl == p.settings.end() || !pl->is_string())
      return bad(where, "nextflow.pipeline is required");
  }
  if (auto i = doc.find("max_concurrent"); i != doc.end() && !i->is_null()) {
    if (!i->is_number_integer() || *i < 1 || *i > 1000000)
      return bad(where, "max_concurrent must be an integer >= 1");
    p.max_concurrent = i->get<int32_t>();
  }
  if (auto i = doc.find("additional_parameters"); i != doc.end()) {
    if (!i->is_boolean())
      return bad(where, "additional_parameters must be true or false");
    p.additional_parameters = i->get<bool>();
  } else if (p.executor == "mock") {
    // The mock's knobs (mock_duration_ms, ...) need no declaration.
    p.additional_parameters = true;
  }
  if (auto i = doc.find("parameters"); i != doc.end() && !i->is_null()) {
    if (!i->is_object())
      return bad(where, "parameters must be a map of name to rules");
    for (auto& [k, v] : i->items()) {
      auto param = parse_param(where + ".parameters." + k, k, v);
      if (!param)
        return param.error();
      p.parameters.push_back(std::move(*param));
    }
  }
  static const std::vector<std::string> keys
    = {"name",           "description",          "executor",
       "settings",       "max_concurrent",       "parameters",
       "additional_parameters", "mock",          "command",
       "snakemake",      "nextflow"};
  for (auto& [k, v] : doc.items())
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      return bad(where, "unknown key '" + k + "'");
  return p;
}

} // namespace

caf::expected<nlohmann::json> yaml_to_json(const std::string& text) {
  try {
    return node_to_json(YAML::Load(text), 0);
  } catch (const YAML::Exception& e) {
    return make_error(ec::invalid_configuration,
                      std::string{"invalid YAML: "} + e.what());
  }
}

nlohmann::json pipeline_spec::to_json() const {
  auto props = nlohmann::json::object();
  auto required = nlohmann::json::array();
  for (auto& p : parameters) {
    nlohmann::json s = nlohmann::json::object();
    if (!p.type.empty())
      s["type"] = p.type;
    if (p.default_value)
      s["default"] = *p.default_value;
    if (!p.enum_values.empty())
      s["enum"] = p.enum_values;
    if (p.minimum)
      s["minimum"] = *p.minimum;
    if (p.maximum)
      s["maximum"] = *p.maximum;
    if (p.min_length)
      s["minLength"] = *p.min_length;
    if (p.max_length)
      s["maxLength"] = *p.max_length;
    if (p.pattern)
      s["pattern"] = *p.pattern;
    if (!p.description.empty())
      s["description"] = p.description;
    props[p.name] = std::move(s);
    if (p.required)
      required.push_back(p.name);
  }
  nlohmann::json schema{{"type", "object"},
                        {"properties", std::move(props)},
                        {"required", std::move(required)},
                        {"additionalProperties", additional_parameters}};
  return {{"name", name},
          {"description", description},
          {"executor", executor},
          {"max_concurrent", max_concurrent ? nlohmann::json(*max_concurrent)
                                            : nlohmann::json(nullptr)},
          {"parameters", std::move(schema)}};
}

caf::expected<catalog> catalog::load(const std::filesystem::path& file) {
  std::ifstream in{file};
  if (!in)
    return make_error(ec::invalid_configuration,
                      "cannot read PIPELINES_FILE " + file.string());
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json doc;
  if (file.extension() == ".json") {
    try {
      doc = nlohmann::json::parse(buf.str());
    } catch (const nlohmann::json::exception& e) {
      return make_error(ec::invalid_configuration,
                        file.string() + ": invalid JSON: " + e.what());
    }
  } else {
    auto x = yaml_to_json(buf.str());
    if (!x)
      return make_error(ec::invalid_configuration,
                        file.string() + ": " + detail_of(x.error()));
    doc = std::move(*x);
  }
  auto dir = std::filesystem::absolute(file).parent_path();
  auto result = from_json(doc, dir);
  if (!result)
    return make_error(ec::invalid_configuration,
                      file.string() + ": " + detail_of(result.error()));
  return result;
}

caf::expected<catalog> catalog::from_json(const nlohmann::json& doc,
                                          const std::filesystem::path& dir) {
  const nlohmann::json* list = &doc;
  if (doc.is_object()) {
    auto i = doc.find("pipelines");
    if (i == doc.end())
      return bad("catalog", "a top-level 'pipelines' list is required");
    list = &*i;
  }
  if (!list->is_array())
    return bad("catalog", "'pipelines' must be a list");
  catalog result;
  result.configured_ = true;
  for (size_t i = 0; i < list->size(); ++i) {
    auto p = parse_pipeline((*list)[i], i, dir);
    if (!p)
      return p.error();
    if (result.find(p->name) != nullptr)
      return bad("catalog", "pipeline '" + p->name + "' is declared twice");
    result.pipelines_.push_back(std::move(*p));
  }
  return result;
}

const pipeline_spec* catalog::find(std::string_view name) const {
  for (auto& p : pipelines_)
    if (p.name == name)
      return &p;
  return nullptr;
}

caf::expected<nlohmann::json> catalog::resolve(const pipeline_spec& p,
                                               const nlohmann::json& params) {
  std::vector<field_error> errors;
  auto fail = [&](const std::string& name, std::string rule,
                  std::string message) {
    errors.push_back(
      field_error{"parameters." + name, std::move(message), std::move(rule)});
  };
  auto result = params.is_object() ? params : nlohmann::json::object();
  for (auto& spec : p.parameters) {
    auto i = result.find(spec.name);
    if (i == result.end() || i->is_null()) {
      if (spec.default_value) {
        result[spec.name] = *spec.default_value;
      } else if (spec.required) {
        fail(spec.name, "required", "is required");
      } else if (i != result.end()) {
        result.erase(i);
      }
      continue;
    }
    auto& x = *i;
    if (!type_matches(spec.type, x)) {
      fail(spec.name, "type", "must be of type " + spec.type);
      continue;
    }
    if (spec.type == "integer" && x.is_number_float())
      x = static_cast<int64_t>(x.get<double>());
    if (!spec.enum_values.empty()
        && std::find(spec.enum_values.begin(), spec.enum_values.end(), x)
             == spec.enum_values.end()) {
      nlohmann::json allowed = spec.enum_values;
      fail(spec.name, "enum", "must be one of " + allowed.dump());
      continue;
    }
    if (x.is_number()) {
      auto v = x.get<double>();
      if (spec.minimum && v < *spec.minimum)
        fail(spec.name, "min",
             "must be at least " + render_number(*spec.minimum));
      if (spec.maximum && v > *spec.maximum)
        fail(spec.name, "max",
             "must be at most " + render_number(*spec.maximum));
    }
    if (x.is_string()) {
      auto& s = x.get_ref<const std::string&>();
      if (spec.min_length && s.size() < *spec.min_length)
        fail(spec.name, "min_length",
             "must have at least " + std::to_string(*spec.min_length)
               + " characters");
      if (spec.max_length && s.size() > *spec.max_length)
        fail(spec.name, "max_length",
             "must have at most " + std::to_string(*spec.max_length)
               + " characters");
      if (spec.pattern_re && !std::regex_match(s, *spec.pattern_re))
        fail(spec.name, "pattern", "must match " + *spec.pattern);
    }
  }
  if (!p.additional_parameters) {
    for (auto& item : result.items()) {
      const auto& k = item.key();
      auto known = std::any_of(p.parameters.begin(), p.parameters.end(),
                               [&](auto& s) { return s.name == k; });
      if (!known)
        fail(k, "unknown", "is not a parameter of pipeline " + p.name);
    }
  }
  if (!errors.empty())
    return make_validation_error(std::move(errors));
  return result;
}

} // namespace orch
