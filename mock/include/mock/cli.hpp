#pragma once
// Command line of bulwark-mock.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace bulwark::mock {

struct CliOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::optional<std::string> config_path;
  unsigned workers = 1;
  std::optional<std::string> api_key;
  std::uint64_t seed = 0;
  bool help = false;
  bool version = false;
};

// Parses argv[1..]. Accepts "--flag value" and "--flag=value".
Result<CliOptions> parse_cli(std::span<const std::string_view> args);

std::string_view usage() noexcept;

}  // namespace bulwark::mock
