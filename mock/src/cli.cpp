#include "mock/cli.hpp"

#include <charconv>

namespace bulwark::mock {
namespace {

std::unexpected<Error> bad(std::string msg) {
  return std::unexpected(Error::client(ErrorKind::bad_request, std::move(msg)));
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

std::string_view usage() noexcept {
  return "usage: bulwark-mock --listen HOST:PORT [--config behaviors.yaml] [--workers N]\n"
         "                    [--api-key KEY] [--seed N]\n"
         "       bulwark-mock --help | --version\n"
         "\n"
         "A fault-injecting fake LLM provider speaking the OpenAI chat completions API.\n"
         "\n"
         "  --listen HOST:PORT  address to listen on (default 127.0.0.1:9000; port 0 picks a\n"
         "                      free one). Prints \"listening on HOST:PORT\" once ready.\n"
         "  --config FILE       behaviours (YAML); see docs/mock.md\n"
         "  --workers N         event-loop threads sharing the port (default 1)\n"
         "  --api-key KEY       require \"Authorization: Bearer KEY\" on /v1/* (401 otherwise)\n"
         "  --seed N            seed for fraction triggers and response ids (default 0)\n";
}

Result<CliOptions> parse_cli(std::span<const std::string_view> args) {
  CliOptions o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (flag == "--version") {
      o.version = true;
      continue;
    }
    if (flag != "--listen" && flag != "--config" && flag != "--workers" && flag != "--api-key" &&
        flag != "--seed")
      return bad("unknown option '" + std::string(args[i]) + "'");
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) return bad(std::string(flag) + " needs a value");
      value = args[++i];
    }
    if (flag == "--listen") {
      const auto colon = value.rfind(':');
      if (colon == std::string_view::npos || colon == 0)
        return bad("--listen expects HOST:PORT, got '" + std::string(value) + "'");
      std::string_view host = value.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      std::uint16_t port = 0;
      if (!parse_number(value.substr(colon + 1), port))
        return bad("--listen: invalid port in '" + std::string(value) + "'");
      o.host = std::string(host);
      o.port = port;
    } else if (flag == "--config") {
      o.config_path = std::string(value);
    } else if (flag == "--workers") {
      if (!parse_number(value, o.workers) || o.workers == 0 || o.workers > 256)
        return bad("--workers expects a number from 1 to 256, got '" + std::string(value) + "'");
    } else if (flag == "--api-key") {
      if (value.empty()) return bad("--api-key must not be empty");
      o.api_key = std::string(value);
    } else if (flag == "--seed") {
      if (!parse_number(value, o.seed))
        return bad("--seed expects a non-negative integer, got '" + std::string(value) + "'");
    }
  }
  return o;
}

}  // namespace bulwark::mock
