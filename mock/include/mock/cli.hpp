#pragma once
// Command line of bulwark-mock.
#include <cstdint>
#include <functional>
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
  // Bedrock credentials the mock verifies (SigV4 keys and/or a Bedrock API key).
  std::optional<std::string> aws_access_key_id;
  std::optional<std::string> aws_secret_access_key;
  std::optional<std::string> aws_session_token;
  std::optional<std::string> aws_bearer_token;
  std::string aws_region;  // empty: any region in the SigV4 scope
  bool help = false;
  bool version = false;
};

// Returns the variable's value, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Parses argv[1..]. Accepts "--flag value" and "--flag=value". `env` supplies the
// BULWARK_MOCK_AWS_* variables for AWS options not given as flags (flags win); without it
// the environment is not read.
Result<CliOptions> parse_cli(std::span<const std::string_view> args, const EnvLookup& env = {});

std::string_view usage() noexcept;

}  // namespace bulwark::mock
