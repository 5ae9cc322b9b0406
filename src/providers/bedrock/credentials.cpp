#include "providers/bedrock/credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace bulwark::bedrock {
namespace {

std::string prefix_of(std::string_view s) {
  constexpr std::size_t kShown = 4;
  if (s.empty()) return "<empty>";
  return std::string(s.substr(0, std::min(kShown, s.size()))) + "...";
}

std::string_view trim(std::string_view s) noexcept {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

Error config_error(std::string msg) { return Error::gateway(ErrorKind::internal, std::move(msg)); }

bool set(const std::optional<std::string>& v) { return v.has_value() && !v->empty(); }

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(config_error("cannot read AWS shared credentials file " + path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string to_string(const Credentials& c) {
  return "aws-credentials{access_key_id=" + prefix_of(c.access_key_id) +
         ", secret_access_key=<redacted>, session_token=" +
         (c.has_session_token() ? "<redacted>" : "none") + "}";
}

std::string to_string(const BearerToken& t) {
  return "bedrock-api-key{" + prefix_of(t.token) + "}";
}

std::string to_string(const Auth& a) {
  return std::visit([](const auto& v) { return to_string(v); }, a);
}

EnvLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<Credentials> parse_shared_credentials(std::string_view ini_text, std::string_view profile) {
  Credentials c;
  bool in_profile = false;
  bool found = false;
  std::size_t pos = 0;
  while (pos <= ini_text.size()) {
    std::size_t eol = ini_text.find('\n', pos);
    if (eol == std::string_view::npos) eol = ini_text.size();
    std::string_view line = trim(ini_text.substr(pos, eol - pos));
    pos = eol + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      auto close = line.find(']');
      if (close == std::string_view::npos) {
        in_profile = false;
        continue;
      }
      std::string_view name = trim(line.substr(1, close - 1));
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = trim(line.substr(0, eq));
    std::string value(trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id") c.access_key_id = std::move(value);
    else if (key == "aws_secret_access_key") c.secret_access_key = std::move(value);
    // aws_security_token is the boto2-era name some tools still write.
    else if (key == "aws_session_token" || (key == "aws_security_token" && c.session_token.empty()))
      c.session_token = std::move(value);
  }
  if (!found)
    return std::unexpected(config_error("profile '" + std::string(profile) +
                                        "' not found in the AWS shared credentials file"));
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    return std::unexpected(config_error("profile '" + std::string(profile) +
                                        "' lacks aws_access_key_id or aws_secret_access_key"));
  return c;
}

Result<Auth> resolve_credentials(const CredentialConfig& config, const EnvLookup& env) {
  // 1. Explicit configuration.
  if (set(config.bearer_token)) return BearerToken{*config.bearer_token};
  if (set(config.access_key_id) || set(config.secret_access_key)) {
    if (!set(config.access_key_id) || !set(config.secret_access_key))
      return std::unexpected(
          config_error("configured AWS credentials need both access_key_id and secret_access_key"));
    return Credentials{*config.access_key_id, *config.secret_access_key,
                       config.session_token.value_or("")};
  }

  // 2. Environment.
  auto get = [&](std::string_view name) -> std::optional<std::string> {
    auto v = env(name);
    if (v && v->empty()) return std::nullopt;  // an empty variable counts as unset, as in the SDKs
    return v;
  };
  if (auto bearer = get("AWS_BEARER_TOKEN_BEDROCK")) return BearerToken{std::move(*bearer)};
  auto env_id = get("AWS_ACCESS_KEY_ID");
  auto env_secret = get("AWS_SECRET_ACCESS_KEY");
  if (env_id || env_secret) {
    if (!env_id || !env_secret)
      return std::unexpected(config_error(
          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"));
    return Credentials{std::move(*env_id), std::move(*env_secret),
                       get("AWS_SESSION_TOKEN").value_or("")};
  }

  // 3. Shared credentials file.
  std::string path;
  bool explicit_path = true;
  if (set(config.credentials_file)) {
    path = *config.credentials_file;
  } else if (auto p = get("AWS_SHARED_CREDENTIALS_FILE")) {
    path = std::move(*p);
  } else if (auto home = get("HOME")) {
    path = *home + "/.aws/credentials";
    explicit_path = false;
  } else {
    return std::unexpected(config_error("no AWS credentials found (config, environment, or file)"));
  }
  std::string profile = set(config.profile) ? *config.profile : get("AWS_PROFILE").value_or("default");
  auto text = read_file(path);
  if (!text) {
    if (explicit_path) return std::unexpected(text.error());
    return std::unexpected(config_error("no AWS credentials found (config, environment, or " + path + ")"));
  }
  auto creds = parse_shared_credentials(*text, profile);
  if (!creds) return std::unexpected(creds.error());
  return Auth{std::move(*creds)};
}

}  // namespace bulwark::bedrock
