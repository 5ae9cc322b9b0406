#include "policy/profile.hpp"

#include <algorithm>
#include <limits>

#include "policy/compiled.hpp"
#include "policy/glob.hpp"

namespace bulwark::policy {
namespace {

std::string entry(std::string_view what, std::size_t i) { return std::string(what) + " #" + std::to_string(i); }
std::string deny_entry(std::size_t i, const std::string& id) {
  return entry("deny pattern", i) + " (\"" + id + "\")";
}

RE2::Options user_options() {
  RE2::Options o;
  o.set_log_errors(false);
  return o;
}

}  // namespace

std::expected<PolicyProfile, std::string> PolicyProfile::create(PolicySpec spec) {
  auto c = std::make_shared<detail::CompiledPolicy>();
  if (spec.deny.size() > std::numeric_limits<std::uint16_t>::max())
    return std::unexpected("too many deny patterns");
  for (PiiKind k : kAllPiiKinds)
    if (spec.detectors[k] != Action::off) c->pii_mask |= mask_of(k);
  if (spec.injection == Action::redact)
    return std::unexpected("injection action must be off, flag or block");
  for (std::size_t i = 0; i < spec.model_allow.size(); ++i)
    if (spec.model_allow[i].empty()) return std::unexpected(entry("model glob", i) + " is empty");

  for (std::size_t i = 0; i < spec.allow.size(); ++i) {
    auto re = std::make_unique<RE2>(spec.allow[i], user_options());
    if (!re->ok()) return std::unexpected(entry("allow pattern", i) + ": " + re->error());
    c->allow.push_back(std::move(re));
  }
  RE2::Set set(user_options(), RE2::UNANCHORED);
  for (std::size_t i = 0; i < spec.deny.size(); ++i) {
    const DenyPattern& d = spec.deny[i];
    auto re = std::make_unique<RE2>(d.pattern, user_options());
    if (!re->ok())
      return std::unexpected(deny_entry(i, d.id) + ": " + re->error());
    if (d.action == Action::redact)
      return std::unexpected(
          deny_entry(i, d.id) + ": action must be block, flag or off");
    if (d.action == Action::off) continue;
    std::string err;
    if (set.Add(d.pattern, &err) < 0)
      return std::unexpected(deny_entry(i, d.id) + ": " + err);
    c->deny.push_back({std::move(re), static_cast<std::uint16_t>(i), d.action});
  }
  if (!c->deny.empty()) {
    if (!set.Compile()) return std::unexpected("deny patterns: out of memory compiling the set");
    c->deny_set = std::make_unique<RE2::Set>(std::move(set));
  }
  if (spec.uninspectable_documents == Action::redact)
    return std::unexpected("uninspectable_documents must be block, flag or allow");
  // Fail closed: a document nobody can read would carry anything past the content rules.
  const bool content_rules = c->pii_mask != 0 || !c->deny.empty() || spec.injection != Action::off;
  c->documents = spec.uninspectable_documents.value_or(content_rules ? Action::block : Action::off);
  c->spec = std::move(spec);
  return PolicyProfile(std::move(c));
}

const std::string& PolicyProfile::id() const noexcept { return compiled_->spec.id; }
const PolicySpec& PolicyProfile::spec() const noexcept { return compiled_->spec; }
Action PolicyProfile::action(PiiKind kind) const noexcept { return compiled_->spec.detectors[kind]; }
PiiMask PolicyProfile::enabled_pii() const noexcept { return compiled_->pii_mask; }
Action PolicyProfile::uninspectable_documents() const noexcept { return compiled_->documents; }

bool PolicyProfile::model_allowed(std::string_view model) const noexcept {
  const auto& globs = compiled_->spec.model_allow;
  if (globs.empty()) return true;
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return glob_match(g, model); });
}

namespace detail {

bool apply_findings(const CompiledPolicy& c, std::string_view text, std::vector<Finding>& findings,
                    PolicyDecision& d) {
  std::size_t keep = 0;
  for (const Finding& f : findings) {
    const re2::StringPiece span(text.data() + f.offset, f.length);
    const bool exempt = std::any_of(c.allow.begin(), c.allow.end(),
                                    [&](const auto& re) { return RE2::PartialMatch(span, *re); });
    if (exempt) continue;
    const auto kind = static_cast<std::uint8_t>(f.kind);
    const Action a = c.spec.detectors[f.kind];
    switch (a) {
      case Action::off: break;
      case Action::flag: d.record(Rule::pii, Action::flag, kind, 0); break;
      case Action::redact:
        d.record(Rule::pii, Action::redact, kind, 0);
        findings[keep++] = f;
        break;
      case Action::block:
        d.record(Rule::pii, Action::block, kind, 0);
        d.block(Rule::pii, kind, 0, std::string(name_of(f.kind)));
        findings.clear();
        return false;
    }
  }
  findings.resize(keep);
  return true;
}

bool apply_deny(const CompiledPolicy& c, std::string_view text, std::size_t min_begin,
                std::size_t min_end, PolicyDecision& d) {
  if (c.deny.empty() || min_begin >= text.size()) return true;
  const std::string_view window = text.substr(min_begin);
  const re2::StringPiece input(window.data(), window.size());
  thread_local std::vector<int> matched;
  matched.clear();
  RE2::Set::ErrorInfo info{};
  if (!c.deny_set->Match(input, &matched, &info)) {
    if (info.kind == RE2::Set::kNoError) return true;
    // The set's DFA ran out of memory: fall back to every pattern on its own.
    matched.clear();
    for (std::size_t i = 0; i < c.deny.size(); ++i) matched.push_back(static_cast<int>(i));
  }
  std::sort(matched.begin(), matched.end());
  const std::size_t end_floor = min_end > min_begin ? min_end - min_begin : 0;
  for (int idx : matched) {
    const CompiledPolicy::Deny& dp = c.deny[static_cast<std::size_t>(idx)];
    std::uint32_t n = 0;
    re2::StringPiece m;
    std::size_t p = 0;
    while (p <= window.size() && dp.re->Match(input, p, window.size(), RE2::UNANCHORED, &m, 1)) {
      const auto b = static_cast<std::size_t>(m.data() - window.data());
      const std::size_t e = b + m.size();
      if (e > b && e > end_floor) ++n;
      p = std::max(e, b + 1);
    }
    if (n == 0) continue;
    d.record(Rule::deny_pattern, dp.action, 0, dp.index, n);
    if (dp.action == Action::block) {
      d.block(Rule::deny_pattern, 0, dp.index, c.spec.deny[dp.index].id);
      return false;
    }
  }
  return true;
}

void append_redacted(std::string_view text, std::size_t from, std::size_t to,
                     std::span<const Finding> findings, std::string& out) {
  std::size_t pos = from;
  for (const Finding& f : findings) {
    if (f.offset < pos || f.offset >= to) continue;
    out.append(text.substr(pos, f.offset - pos));
    out.append(redaction_label(f.kind));
    pos = f.offset + f.length;
  }
  out.append(text.substr(pos, to - pos));
}

}  // namespace detail
}  // namespace bulwark::policy
