#pragma once
// Internal to the policy module: the compiled form of a PolicySpec and the steps that
// evaluate_input, evaluate_output and StreamRedactor share.
#include <re2/re2.h>
#include <re2/set.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/decision.hpp"
#include "policy/pii.hpp"
#include "policy/profile.hpp"

namespace bulwark::policy::detail {

struct CompiledPolicy {
  PolicySpec spec;
  PiiMask pii_mask = 0;
  std::vector<std::unique_ptr<RE2>> allow;
  struct Deny {
    std::unique_ptr<RE2> re;
    std::uint16_t index;  // in spec.deny
    Action action;
  };
  std::vector<Deny> deny;               // active patterns only
  std::unique_ptr<RE2::Set> deny_set;   // one pass to learn whether any matches
  Action documents = Action::off;       // spec.uninspectable_documents, default applied
};

// Drops findings an allow pattern exempts, records the rest in `d`; keeps only the
// findings to redact. Returns false when a block-action detector fired (d is blocked).
bool apply_findings(const CompiledPolicy& c, std::string_view text, std::vector<Finding>& findings,
                    PolicyDecision& d);

// Records deny-pattern matches in `d` that end after `min_end` and start at or after
// `min_begin`. Returns false when a block-action pattern matched.
bool apply_deny(const CompiledPolicy& c, std::string_view text, std::size_t min_begin,
                std::size_t min_end, PolicyDecision& d);

// Appends text[from, to) to out with each finding (sorted, inside the range, offsets
// relative to text) replaced by its label.
void append_redacted(std::string_view text, std::size_t from, std::size_t to,
                     std::span<const Finding> findings, std::string& out);

}  // namespace bulwark::policy::detail
