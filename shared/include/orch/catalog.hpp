#pragma once

// The pipeline catalog (`PIPELINES_FILE`, YAML or JSON): which pipelines
// exist, which executor runs each, the executor's settings, and a schema
// for their parameters. Without a catalog every pipeline name runs on the
// mock executor.
//
//   pipelines:
//     - name: scatter-gather
//       description: N CSV batches, statistics per batch, one report
//       executor: snakemake            # mock | command | snakemake | nextflow
//       max_concurrent: 2              # optional; decided in the database
//       snakemake:                     # settings, keyed by the executor name
//         snakefile: scatter-gather/Snakefile   # relative to this file
//         cores: 2
//       parameters:
//         batch_count: {type: integer, default: 5, min: 1, max: 12}
//       additional_parameters: false   # refuse names not declared (default)
//
// A parameter rule is one of: type (string, integer, number, boolean,
// array, object), required, default, enum, min/max (numbers; also spelled
// minimum/maximum), min_length/max_length (strings), pattern (an ECMAScript
// regular expression the whole string must match), description.

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace orch {

/// The executors a pipeline may name.
inline constexpr std::string_view known_executors[]
  = {"mock", "command", "snakemake", "nextflow"};

/// One declared parameter.
struct param_spec {
  std::string name;
  /// string, integer, number, boolean, array or object; empty: any.
  std::string type;
  bool required = false;
  std::optional<nlohmann::json> default_value;
  std::vector<nlohmann::json> enum_values;
  std::optional<double> minimum;
  std::optional<double> maximum;
  std::optional<size_t> min_length;
  std::optional<size_t> max_length;
  std::optional<std::string> pattern;
  std::optional<std::regex> pattern_re;
  std::string description;
};

/// One pipeline of the catalog.
struct pipeline_spec {
  std::string name;
  std::string description;
  std::string executor = "mock";
  /// The executor's settings; relative paths already resolved against the
  /// catalog file's folder (`snakefile`, `pipeline`, `script`).
  nlohmann::json settings = nlohmann::json::object();
  /// At most this many jobs of the pipeline run at once, across all nodes.
  std::optional<int32_t> max_concurrent;
  std::vector<param_spec> parameters;
  bool additional_parameters = false;

  /// The REST shape (`GET /pipelines/{name}`), parameters as a JSON schema.
  nlohmann::json to_json() const;
};

class catalog {
public:
  /// An empty catalog: every pipeline name is accepted and runs on mock.
  catalog() = default;

  /// Loads `file`: JSON when it ends in `.json`, YAML otherwise. Errors are
  /// `invalid_configuration`, naming the file and what is wrong.
  static caf::expected<catalog> load(const std::filesystem::path& file);

  /// Builds a catalog from its JSON form; relative paths in settings are
  /// resolved against `base_dir`.
  static caf::expected<catalog>
  from_json(const nlohmann::json& doc, const std::filesystem::path& base_dir);

  /// Whether a catalog was configured.
  bool configured() const {
    return configured_;
  }

  const std::vector<pipeline_spec>& pipelines() const {
    return pipelines_;
  }

  /// The pipeline named `name`, or null.
  const pipeline_spec* find(std::string_view name) const;

  /// Checks `params` (an object) against the pipeline's schema and returns
  /// the resolved parameters: defaults filled in. Errors are
  /// `validation_failed` with one field error (`parameters.<name>`, and the
  /// rule) per broken rule.
  static caf::expected<nlohmann::json> resolve(const pipeline_spec& p,
                                               const nlohmann::json& params);

private:
  bool configured_ = false;
  std::vector<pipeline_spec> pipelines_;
};

/// Converts a YAML document to JSON: plain scalars become null, booleans
/// and numbers where they parse as such, quoted scalars stay strings.
caf::expected<nlohmann::json> yaml_to_json(const std::string& text);

} // namespace orch
