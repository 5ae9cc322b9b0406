#pragma once
// AWS credentials for Bedrock: SigV4 access keys (with an optional STS session token) or a
// Bedrock API key sent as a bearer token. Resolution follows the SDKs' order for static
// credentials: explicit config, then the environment, then the shared credentials file.
// The environment comes in through a lookup so that tests never read the real one.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/error.hpp"

namespace bulwark::bedrock {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term keys

  bool has_session_token() const noexcept { return !session_token.empty(); }
};

// A Bedrock API key (AWS_BEARER_TOKEN_BEDROCK), sent as "Authorization: Bearer <key>".
struct BearerToken {
  std::string token;
  std::string authorization_header() const { return "Bearer " + token; }
};

using Auth = std::variant<Credentials, BearerToken>;

// Redacted for logs: the key id's first four characters only ("AKID...", "ABSK..."),
// never the secret, the session token or the whole key id.
std::string to_string(const Credentials& c);
std::string to_string(const BearerToken& t);
std::string to_string(const Auth& a);

// What the gateway's configuration says for one Bedrock target; every field optional.
struct CredentialConfig {
  std::optional<std::string> access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  std::optional<std::string> profile;       // section of the shared credentials file
  std::optional<std::string> bearer_token;  // a Bedrock API key
  std::optional<std::string> credentials_file;
};

// Returns the variable's value, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
// Reads the process environment; the only place that does.
EnvLookup process_environment();

// Resolution order:
//  1. config bearer_token, then config access_key_id + secret_access_key (+ session_token);
//  2. AWS_BEARER_TOKEN_BEDROCK, then AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
//  3. the shared credentials file (config credentials_file, AWS_SHARED_CREDENTIALS_FILE, or
//     $HOME/.aws/credentials), profile from config, AWS_PROFILE, or "default".
// A half-set pair (id without secret) is an error rather than a silent fall-through, so a
// typo in the configuration is not masked by some other identity found later.
Result<Auth> resolve_credentials(const CredentialConfig& config, const EnvLookup& env);

// The static keys of one profile of an INI shared credentials file's text.
Result<Credentials> parse_shared_credentials(std::string_view ini_text, std::string_view profile);

}  // namespace bulwark::bedrock
