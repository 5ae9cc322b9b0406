#pragma once
// A company's AI policy in plain structs (the config layer maps YAML onto PolicySpec),
// compiled once into an immutable PolicyProfile that evaluations and stream redactors
// share across threads.
#include <array>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/decision.hpp"
#include "policy/pii.hpp"

namespace bulwark::policy {

struct DetectorActions {
  std::array<Action, kPiiKindCount> by_kind{};  // every detector off by default
  Action& operator[](PiiKind k) noexcept { return by_kind[static_cast<std::size_t>(k)]; }
  Action operator[](PiiKind k) const noexcept { return by_kind[static_cast<std::size_t>(k)]; }
};

struct DenyPattern {
  std::string id;       // names the rule in decisions and audit records
  std::string pattern;  // RE2 syntax, UTF-8; add (?i) for case-insensitive
  Action action = Action::block;  // block or flag; off disables the pattern
};

struct PolicySpec {
  std::string id;
  DetectorActions detectors;
  std::vector<DenyPattern> deny;
  // RE2 patterns searched within each finding's text: a hit exempts that finding
  // ("support@acme\.com", "@acme\.com$", "^10\."). They do not exempt deny patterns.
  std::vector<std::string> allow;
  std::optional<std::uint64_t> max_input_tokens;  // on RequestFacts::estimated_input_tokens
  std::optional<std::uint64_t> max_tokens;        // on the caller's max_tokens
  std::vector<std::string> model_allow;           // globs (glob.hpp); empty allows every model
  Action injection = Action::off;                 // off, flag or block
  // A document whose text the gateway cannot read (a PDF, an uploaded file's id, plain
  // text that is not valid base64): block, flag (let through, recorded) or off (let
  // through). nullopt fails closed: block when the profile has a content rule (a PII
  // detector, an active deny pattern, injection heuristics), since such a document would
  // carry past them what they exist to stop; off for a profile without one.
  std::optional<Action> uninspectable_documents;
};

namespace detail {
struct CompiledPolicy;
}

class PolicyProfile {
 public:
  // Errors name the offending entry: "deny pattern #2 (\"codename\"): missing ): ...".
  static std::expected<PolicyProfile, std::string> create(PolicySpec spec);

  const std::string& id() const noexcept;
  const PolicySpec& spec() const noexcept;
  Action action(PiiKind kind) const noexcept;
  PiiMask enabled_pii() const noexcept;
  bool model_allowed(std::string_view model) const noexcept;
  // The spec's uninspectable_documents with its default applied: off, flag or block.
  Action uninspectable_documents() const noexcept;
  const detail::CompiledPolicy& compiled() const noexcept { return *compiled_; }

 private:
  explicit PolicyProfile(std::shared_ptr<const detail::CompiledPolicy> c) noexcept
      : compiled_(std::move(c)) {}
  std::shared_ptr<const detail::CompiledPolicy> compiled_;
};

}  // namespace bulwark::policy
