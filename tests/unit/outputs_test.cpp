#include "orch/api/outputs.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

using namespace orch::api;
namespace fs = std::filesystem;

class outputs : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = fs::temp_directory_path()
            / ("orch-outputs-" + std::to_string(::getpid()));
    dir_ = work_dir(root_.string(), "job", 2);
    fs::create_directories(dir_ / "sub");
    fs::create_directories(dir_ / ".snakemake" / "log");
    fs::create_directories(dir_ / "work" / "ab");
    std::ofstream{dir_ / "report.json"} << "{}";
    std::ofstream{dir_ / "sub" / "a.csv"} << "abc";
    std::ofstream{dir_ / ".snakemake" / "log" / "x.log"} << "log";
    std::ofstream{dir_ / "work" / "ab" / ".command.err"} << "e";
    std::ofstream{root_ / "secret.txt"} << "secret";
    fs::create_symlink("/etc/passwd", dir_ / "passwd");
    fs::create_symlink(root_ / "secret.txt", dir_ / "secret");
    fs::create_symlink("sub/a.csv", dir_ / "alias.csv");
  }

  void TearDown() override {
    fs::remove_all(root_);
  }

  fs::path root_;
  fs::path dir_;
};

TEST_F(outputs, work_dir_is_per_job_and_attempt) {
  EXPECT_EQ(work_dir("/w", "j", 3), fs::path{"/w/j/attempt-3"});
}

TEST_F(outputs, lists_files_with_size_and_sha256_but_nothing_outside) {
  auto files = list_outputs(dir_, "snakemake", 100);
  ASSERT_TRUE(files);
  std::vector<std::string> paths;
  for (auto& f : *files)
    paths.push_back(f.path);
  // Hidden entries (.snakemake/, .command.err) and links leading outside
  // are left out.
  EXPECT_EQ(paths, (std::vector<std::string>{"alias.csv", "report.json",
                                             "sub/a.csv"}));
  EXPECT_EQ((*files)[2].size, 3u);
  EXPECT_EQ((*files)[2].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Nextflow's work/ folder is internal; elsewhere it is an output.
  std::ofstream{dir_ / "work" / "ab" / "out.txt"} << "x";
  EXPECT_EQ(list_outputs(dir_, "nextflow", 100)->size(), 3u);
  EXPECT_EQ(list_outputs(dir_, "command", 100)->size(), 4u);
  EXPECT_EQ(list_outputs(dir_, "snakemake", 1)->size(), 1u);
  EXPECT_FALSE(list_outputs(root_ / "nope", "command", 10));
}

TEST_F(outputs, resolve_refuses_every_way_out) {
  EXPECT_TRUE(resolve_output(dir_, "report.json"));
  EXPECT_TRUE(resolve_output(dir_, "sub/a.csv"));
  EXPECT_TRUE(resolve_output(dir_, "alias.csv"));
  for (auto bad : {"", "/etc/passwd", "../attempt-2/report.json",
                   "sub/../../secret.txt", "passwd", "secret", "sub",
                   "missing", "./report.json", "sub\\a.csv"})
    EXPECT_FALSE(resolve_output(dir_, bad)) << bad;
  EXPECT_FALSE(resolve_output(dir_, std::string_view{"a\0b", 3}));
}

TEST_F(outputs, media_types_by_extension) {
  EXPECT_EQ(output_media_type("r.json"), "application/json");
  EXPECT_EQ(output_media_type("x.CSV"), "text/csv");
  EXPECT_EQ(output_media_type("x.bam"), "application/octet-stream");
}
