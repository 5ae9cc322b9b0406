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
         "                    [--aws-access-key-id ID --aws-secret-access-key SECRET\n"
         "                     [--aws-session-token TOKEN]] [--aws-bearer-token TOKEN]\n"
         "                    [--aws-region REGION]\n"
         "       bulwark-mock --help | --version\n"
         "\n"
         "A fault-injecting fake LLM provider speaking the OpenAI chat completions, Anthropic\n"
         "Messages and AWS Bedrock Runtime (Converse, InvokeModel) APIs.\n"
         "\n"
         "  --listen HOST:PORT  address to listen on (default 127.0.0.1:9000; port 0 picks a\n"
         "                      free one). Prints \"listening on HOST:PORT\" once ready.\n"
         "  --config FILE       behaviours (YAML); see docs/mock.md\n"
         "  --workers N         event-loop threads sharing the port (default 1)\n"
         "  --api-key KEY       require \"Authorization: Bearer KEY\" on OpenAI routes and\n"
         "                      \"x-api-key: KEY\" on /v1/messages (401 otherwise)\n"
         "  --seed N            seed for fraction triggers and response ids (default 0)\n"
         "  --aws-access-key-id ID, --aws-secret-access-key SECRET [--aws-session-token T]\n"
         "                      verify the SigV4 signature of every Bedrock request (/model/...)\n"
         "  --aws-bearer-token TOKEN\n"
         "                      accept \"Authorization: Bearer TOKEN\" (a Bedrock API key)\n"
         "  --aws-region REGION the region the SigV4 scope must name (default: any)\n"
         "  The AWS options can also come from BULWARK_MOCK_AWS_ACCESS_KEY_ID,\n"
         "  BULWARK_MOCK_AWS_SECRET_ACCESS_KEY, BULWARK_MOCK_AWS_SESSION_TOKEN,\n"
         "  BULWARK_MOCK_AWS_BEARER_TOKEN and BULWARK_MOCK_AWS_REGION.\n";
}

Result<CliOptions> parse_cli(std::span<const std::string_view> args, const EnvLookup& env) {
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
    std::optional<std::string>* aws = nullptr;
    if (flag == "--aws-access-key-id") aws = &o.aws_access_key_id;
    else if (flag == "--aws-secret-access-key") aws = &o.aws_secret_access_key;
    else if (flag == "--aws-session-token") aws = &o.aws_session_token;
    else if (flag == "--aws-bearer-token") aws = &o.aws_bearer_token;
    if (flag != "--listen" && flag != "--config" && flag != "--workers" && flag != "--api-key" &&
        flag != "--seed" && flag != "--aws-region" && !aws)
      return bad("unknown option '" + std::string(args[i]) + "'");
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) return bad(std::string(flag) + " needs a value");
      value = args[++i];
    }
    if (aws) {
      if (value.empty()) return bad(std::string(flag) + " must not be empty");
      *aws = std::string(value);
    } else if (flag == "--aws-region") {
      o.aws_region = std::string(value);
    } else if (flag == "--listen") {
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
  if (env) {
    auto fill = [&](std::optional<std::string>& field, std::string_view name) {
      if (field) return;
      if (auto v = env(name); v && !v->empty()) field = std::move(*v);
    };
    fill(o.aws_access_key_id, "BULWARK_MOCK_AWS_ACCESS_KEY_ID");
    fill(o.aws_secret_access_key, "BULWARK_MOCK_AWS_SECRET_ACCESS_KEY");
    fill(o.aws_session_token, "BULWARK_MOCK_AWS_SESSION_TOKEN");
    fill(o.aws_bearer_token, "BULWARK_MOCK_AWS_BEARER_TOKEN");
    if (o.aws_region.empty())
      if (auto v = env("BULWARK_MOCK_AWS_REGION")) o.aws_region = std::move(*v);
  }
  if (o.aws_access_key_id.has_value() != o.aws_secret_access_key.has_value())
    return bad("--aws-access-key-id and --aws-secret-access-key go together");
  if (o.aws_session_token && !o.aws_access_key_id)
    return bad("--aws-session-token needs --aws-access-key-id and --aws-secret-access-key");
  return o;
}

}  // namespace bulwark::mock
