#include "orch/catalog.hpp"
#include "orch/error.hpp"
#include "orch/sha256.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace orch;
using nlohmann::json;

namespace {

catalog parse_yaml(const std::string& text,
                   const std::filesystem::path& dir = "/nonexistent") {
  auto doc = yaml_to_json(text);
  EXPECT_TRUE(doc) << detail_of(doc.error());
  auto cat = catalog::from_json(*doc, dir);
  EXPECT_TRUE(cat) << detail_of(cat.error());
  return cat ? std::move(*cat) : catalog{};
}

std::string load_error(const std::string& text) {
  auto doc = yaml_to_json(text);
  if (!doc)
    return detail_of(doc.error());
  auto cat = catalog::from_json(*doc, "/nonexistent");
  EXPECT_FALSE(cat) << text;
  return cat ? std::string{} : detail_of(cat.error());
}

constexpr const char* sample = R"(
pipelines:
  - name: sg
    description: scatter-gather
    executor: snakemake
    max_concurrent: 2
    snakemake: {snakefile: /x/Snakefile, cores: 2}
    parameters:
      batch_count: {type: integer, default: 5, min: 1, max: 12}
      mode: {type: string, enum: [fast, "slow"], default: fast}
      sample: {type: string, pattern: "S[0-9]+", required: true}
      ratio: number
  - name: m
    executor: mock
)";

} // namespace

TEST(catalog, yaml_scalars_become_typed_json) {
  auto doc = yaml_to_json("a: 1\nb: 2.5\nc: true\nd: ~\ne: \"1\"\nf: text\n"
                          "g: [1, x]\n");
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["a"], 1);
  EXPECT_EQ((*doc)["b"], 2.5);
  EXPECT_EQ((*doc)["c"], true);
  EXPECT_TRUE((*doc)["d"].is_null());
  EXPECT_EQ((*doc)["e"], "1");
  EXPECT_EQ((*doc)["f"], "text");
  EXPECT_EQ((*doc)["g"], json::array({1, "x"}));
  EXPECT_FALSE(yaml_to_json("a: [1, 2"));
}

TEST(catalog, parses_pipelines_and_their_schemas) {
  auto cat = parse_yaml(sample);
  ASSERT_TRUE(cat.configured());
  ASSERT_EQ(cat.pipelines().size(), 2u);
  auto p = cat.find("sg");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->executor, "snakemake");
  EXPECT_EQ(p->max_concurrent, 2);
  EXPECT_EQ(p->settings["cores"], 2);
  EXPECT_FALSE(p->additional_parameters);
  EXPECT_TRUE(cat.find("m")->additional_parameters);
  EXPECT_EQ(cat.find("nope"), nullptr);
  auto schema = p->to_json()["parameters"];
  EXPECT_EQ(schema["properties"]["batch_count"]["maximum"], 12);
  EXPECT_EQ(schema["required"], json::array({"sample"}));
}

TEST(catalog, resolve_fills_defaults_and_names_each_broken_rule) {
  auto cat = parse_yaml(sample);
  auto& p = *cat.find("sg");
  auto ok = catalog::resolve(p, {{"sample", "S12"}, {"ratio", 0.5}});
  ASSERT_TRUE(ok) << detail_of(ok.error());
  EXPECT_EQ((*ok)["batch_count"], 5);
  EXPECT_EQ((*ok)["mode"], "fast");
  auto rules = [&](const json& params) {
    std::map<std::string, std::string> out;
    auto r = catalog::resolve(p, params);
    EXPECT_FALSE(r) << params.dump();
    if (!r) {
      EXPECT_EQ(code_of(r.error()), ec::validation_failed);
      for (auto& fe : field_errors_of(r.error()))
        out[fe.field] = fe.rule;
    }
    return out;
  };
  EXPECT_EQ(rules({}), (std::map<std::string, std::string>{
                         {"parameters.sample", "required"}}));
  EXPECT_EQ(rules({{"sample", "S1"}, {"batch_count", 13}})
              ["parameters.batch_count"],
            "max");
  EXPECT_EQ(rules({{"sample", "S1"}, {"batch_count", 0}})
              ["parameters.batch_count"],
            "min");
  EXPECT_EQ(rules({{"sample", "S1"}, {"batch_count", 1.5}})
              ["parameters.batch_count"],
            "type");
  EXPECT_EQ(rules({{"sample", "X1"}})["parameters.sample"], "pattern");
  EXPECT_EQ(rules({{"sample", "S1x"}})["parameters.sample"], "pattern");
  EXPECT_EQ(rules({{"sample", "S1"}, {"mode", "medium"}})["parameters.mode"],
            "enum");
  EXPECT_EQ(rules({{"sample", "S1"}, {"extra", 1}})["parameters.extra"],
            "unknown");
  // 5.0 is an integer; it is stored as 5.
  auto five = catalog::resolve(p, {{"sample", "S1"}, {"batch_count", 5.0}});
  ASSERT_TRUE(five);
  EXPECT_TRUE((*five)["batch_count"].is_number_integer());
}

TEST(catalog, refuses_broken_catalogs_with_a_reason) {
  EXPECT_NE(load_error("pipelines: [{name: 'a b'}]").find("name"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, executor: slurm}]")
              .find("unknown executor"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, executor: command}]")
              .find("argv"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, executor: snakemake}]")
              .find("snakefile"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a}, {name: a}]").find("twice"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, parameters: {x: {type: int}}}]")
              .find("unknown type"),
            std::string::npos);
  EXPECT_NE(
    load_error("pipelines: [{name: a, parameters: {x: {pattern: '('}}}]")
      .find("pattern"),
    std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, max_concurrent: 0}]")
              .find("max_concurrent"),
            std::string::npos);
  EXPECT_NE(load_error("pipelines: [{name: a, colour: red}]")
              .find("unknown key"),
            std::string::npos);
  EXPECT_NE(load_error("jobs: []").find("pipelines"), std::string::npos);
}

TEST(catalog, resolves_files_next_to_the_catalog) {
  auto dir = std::filesystem::temp_directory_path()
             / ("orch-catalog-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "wf");
  std::ofstream{dir / "wf" / "Snakefile"} << "rule all:\n";
  std::ofstream{dir / "wf" / "run.py"} << "print(1)\n";
  std::ofstream{dir / "pipelines.yaml"} << R"(pipelines:
  - {name: s, executor: snakemake, snakemake: {snakefile: wf/Snakefile}}
  - {name: c, executor: command,
     command: {argv: [python3, wf/run.py, "{x}", --out, wf/none.txt]}}
)";
  auto cat = catalog::load(dir / "pipelines.yaml");
  ASSERT_TRUE(cat) << detail_of(cat.error());
  EXPECT_EQ(cat->find("s")->settings["snakefile"],
            (dir / "wf" / "Snakefile").string());
  auto argv = cat->find("c")->settings["argv"];
  EXPECT_EQ(argv[0], "python3");
  EXPECT_EQ(argv[1], (dir / "wf" / "run.py").string());
  EXPECT_EQ(argv[2], "{x}");
  EXPECT_EQ(argv[4], "wf/none.txt"); // no such file: left alone
  EXPECT_FALSE(catalog::load(dir / "missing.yaml"));
  std::filesystem::remove_all(dir);
}

TEST(sha256, matches_the_standard_test_vectors) {
  auto digest = [](std::string_view s) {
    sha256 h;
    h.update(s);
    return h.hex_digest();
  };
  EXPECT_EQ(digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  sha256 million;
  std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i)
    million.update(chunk);
  EXPECT_EQ(million.hex_digest(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
