#pragma once

#include <caf/expected.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace orch {

/// Incremental SHA-256 (FIPS 180-4), for output manifests.
class sha256 {
public:
  sha256();

  void update(const void* data, size_t size);

  void update(std::string_view str) {
    update(str.data(), str.size());
  }

  /// The digest as 64 lower-case hex digits; call once.
  std::string hex_digest();

private:
  void block(const uint8_t* p);

  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t total_ = 0;
};

/// The SHA-256 of a file's content; `not_found` when it cannot be read.
caf::expected<std::string> sha256_file(const std::filesystem::path& file);

} // namespace orch
