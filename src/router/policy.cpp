#include "router/policy.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/glob.hpp"

namespace bulwark::router {

std::optional<Objective> parse_objective(std::string_view text) noexcept { return config::parse_route_objective(text); }

namespace {

struct Matcher {
  std::optional<std::string> equals;
  std::unique_ptr<const RE2> re;
  bool test(std::string_view text) const {
    if (equals) return text == *equals;
    return re && RE2::PartialMatch(text, *re);
  }
};

Result<Matcher> compile(const config::TextMatch& m, const std::string& where) {
  Matcher out;
  out.equals = m.equals;
  if (m.matches) {
    RE2::Options opts;
    opts.set_log_errors(false);
    auto re = std::make_unique<const RE2>(*m.matches, opts);
    if (!re->ok()) return std::unexpected(Error::gateway(ErrorKind::internal, where + ": regular expression does not compile: " + re->error()));
    out.re = std::move(re);
  }
  return out;
}

bool in_range(const config::NumberRange& r, double v) noexcept {
  return (!r.gt || v > *r.gt) && (!r.lt || v < *r.lt);
}

struct Rule {
  std::string name;
  std::size_t tier = 0;
  std::optional<bool> tools, images;
  std::vector<std::pair<std::string, Matcher>> headers;
  std::vector<std::pair<std::string, Matcher>> metadata;
  std::optional<Matcher> user;
  std::vector<std::string> keys, teams;
  config::NumberRange input_tokens, max_tokens, context_window;
  std::optional<Matcher> last_user_message;
  unsigned objectives = 0;  // bit per Objective; 0: any

  bool matches(const RequestFeatures& f, Objective o) const {
    if (objectives != 0 && (objectives & (1u << static_cast<unsigned>(o))) == 0) return false;
    if (tools && *tools != f.has_tools) return false;
    if (images && *images != f.has_images) return false;
    if (!input_tokens.empty() && !in_range(input_tokens, static_cast<double>(f.input_tokens))) return false;
    if (!max_tokens.empty() && (!f.max_tokens || !in_range(max_tokens, static_cast<double>(*f.max_tokens)))) return false;
    if (!context_window.empty()) {
      const double need = static_cast<double>(f.input_tokens) + static_cast<double>(f.max_tokens.value_or(0));
      if (!in_range(context_window, need)) return false;
    }
    if (!keys.empty()) {
      const bool any = std::any_of(keys.begin(), keys.end(), [&](const std::string& g) {
        return (!f.key_name.empty() && glob_match(g, f.key_name)) || (!f.key_id.empty() && glob_match(g, f.key_id));
      });
      if (!any) return false;
    }
    if (!teams.empty()) {
      if (f.team.empty()) return false;
      if (std::none_of(teams.begin(), teams.end(), [&](const std::string& g) { return glob_match(g, f.team); })) return false;
    }
    if (user && !user->test(f.user)) return false;
    for (const auto& [header_name, m] : headers) {
      const auto v = f.header(header_name);
      if (!v || !m.test(*v)) return false;
    }
    for (const auto& [key, m] : metadata) {
      const auto v = f.metadata_value(key);
      if (!v || !m.test(*v)) return false;
    }
    // Last: the only condition whose cost grows with the prompt.
    if (last_user_message && !last_user_message->test(f.last_user_message)) return false;
    return true;
  }
};

// A model or tier name as it may appear in a header value: visible ASCII, no ';' or ','.
std::string header_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) out.push_back(c > 0x20 && c < 0x7f && c != ';' && c != ',' ? static_cast<char>(c) : '_');
  return out;
}

void append_fixed3(std::string& out, double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
  if (ec == std::errc{}) out.append(buf, p);
}

}  // namespace

struct RoutingPolicy::Impl {
  std::string model;
  std::vector<std::string> tiers;
  std::vector<std::string> header_tiers;  // header-safe copies
  std::vector<Rule> rules;
  std::shared_ptr<const ComplexityScorer> scorer;  // null: no complexity step
  std::array<std::vector<double>, config::kRouteObjectiveCount> thresholds;  // by objective
  std::array<std::optional<std::size_t>, config::kRouteObjectiveCount> fixed_tier;
  std::size_t default_tier = 0;
  Objective default_objective = Objective::balanced;
};

Result<RoutingPolicy> RoutingPolicy::build(const config::Model& model, std::shared_ptr<const ComplexityScorer> scorer) {
  if (!model.router)
    return std::unexpected(Error::gateway(ErrorKind::internal, "models." + model.name + " is not a routed model"));
  return build(model.name, *model.router, std::move(scorer));
}

Result<RoutingPolicy> RoutingPolicy::build(const std::string& model_name, const config::RouterSettings& s,
                                           std::shared_ptr<const ComplexityScorer> scorer) {
  const std::string where = "models." + model_name + ".router" + (s.line > 0 ? " (line " + std::to_string(s.line) + ")" : "");
  auto fail = [&](const std::string& msg) { return std::unexpected(Error::gateway(ErrorKind::internal, where + ": " + msg)); };
  auto impl = std::make_shared<Impl>();
  impl->model = model_name;
  impl->tiers = s.tiers;
  if (impl->tiers.empty()) return fail("no tiers");
  for (const auto& t : impl->tiers) impl->header_tiers.push_back(header_safe(t));
  const std::size_t n = impl->tiers.size();
  auto check_tier = [&](std::size_t t) { return t < n; };

  for (const config::RouteRule& r : s.rules) {
    const std::string rw = where + " rule '" + r.name + "'";
    if (!check_tier(r.tier)) return fail("rule '" + r.name + "' names tier " + std::to_string(r.tier) + " of " + std::to_string(n));
    Rule rule;
    rule.name = r.name;
    rule.tier = r.tier;
    rule.tools = r.when.tools;
    rule.images = r.when.images;
    for (const auto& h : r.when.headers) {
      auto m = compile(h.match, rw);
      if (!m) return std::unexpected(std::move(m.error()));
      std::string name = h.name;
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      rule.headers.emplace_back(std::move(name), std::move(*m));
    }
    for (const auto& md : r.when.metadata) {
      auto m = compile(md.match, rw);
      if (!m) return std::unexpected(std::move(m.error()));
      rule.metadata.emplace_back(md.key, std::move(*m));
    }
    if (r.when.user) {
      auto m = compile(*r.when.user, rw);
      if (!m) return std::unexpected(std::move(m.error()));
      rule.user = std::move(*m);
    }
    if (r.when.last_user_message) {
      auto m = compile(*r.when.last_user_message, rw);
      if (!m) return std::unexpected(std::move(m.error()));
      rule.last_user_message = std::move(*m);
    }
    rule.keys = r.when.keys;
    rule.teams = r.when.teams;
    rule.input_tokens = r.when.input_tokens;
    rule.max_tokens = r.when.max_tokens;
    rule.context_window = r.when.context_window;
    for (const std::string& o : r.when.objectives) {
      auto parsed = parse_objective(o);
      if (!parsed) return fail("rule '" + r.name + "': unknown objective '" + o + "'");
      rule.objectives |= 1u << static_cast<unsigned>(*parsed);
    }
    impl->rules.push_back(std::move(rule));
  }

  std::vector<double> base;
  if (s.complexity) {
    if (!scorer) {
      auto shared = shared_scorer(s.weights);
      if (!shared) return fail(shared.error().message);
      scorer = std::move(*shared);
    }
    impl->scorer = std::move(scorer);
    if (!s.strong_fractions.empty()) {
      for (double f : s.strong_fractions) {
        auto t = impl->scorer->threshold_for_strong_fraction(f);
        if (!t) return fail("strong_fraction " + std::to_string(f) + ": " + t.error().message);
        base.push_back(*t);
      }
    } else {
      base = s.thresholds;
    }
    if (base.size() != n - 1) return fail("needs " + std::to_string(n - 1) + " thresholds for " + std::to_string(n) + " tiers");
    if (!std::is_sorted(base.begin(), base.end())) return fail("thresholds must ascend");
  }
  for (std::size_t o = 0; o < config::kRouteObjectiveCount; ++o) {
    const config::ObjectiveSettings& os = s.objectives[o];
    if (os.tier) {
      if (!check_tier(*os.tier)) return fail("objective names a tier out of range");
      impl->fixed_tier[o] = *os.tier;
    }
    for (double t : base) impl->thresholds[o].push_back(t + os.shift);
  }
  if (!check_tier(s.default_tier)) return fail("default_tier out of range");
  impl->default_tier = s.default_tier;
  impl->default_objective = s.default_objective;
  return RoutingPolicy(std::move(impl));
}

Decision RoutingPolicy::decide(const RequestFeatures& f, std::optional<Objective> objective) const {
  const Impl& p = *impl_;
  Decision d;
  d.objective = objective.value_or(p.default_objective);
  const auto oi = static_cast<std::size_t>(d.objective);
  const Rule* hit = nullptr;
  for (const Rule& r : p.rules)
    if (r.matches(f, d.objective)) {
      hit = &r;
      break;
    }
  if (hit) {
    d.source = Decision::Source::rule;
    d.tier = hit->tier;
    d.rule = hit->name;
  } else if (p.fixed_tier[oi]) {
    d.source = Decision::Source::objective;
    d.tier = *p.fixed_tier[oi];
  } else if (p.scorer) {
    d.source = Decision::Source::score;
    d.score = p.scorer->score(f.last_user_message);
    const std::vector<double>& th = p.thresholds[oi];
    d.tier = static_cast<std::size_t>(std::upper_bound(th.begin(), th.end(), d.score) - th.begin());
    // Tier 0: the first threshold it did not reach; above: the one it reached.
    if (!th.empty()) d.threshold = d.tier == 0 ? th[0] : th[d.tier - 1];
  } else {
    d.source = Decision::Source::default_tier;
    d.tier = p.default_tier;
  }

  std::string& h = d.header;
  h.reserve(96);
  h += "tier=";
  h += p.header_tiers[d.tier];
  switch (d.source) {
    case Decision::Source::rule:
      h += "; rule=";
      h += d.rule;
      break;
    case Decision::Source::objective:
      h += "; objective=";
      h += config::to_string(d.objective);
      break;
    case Decision::Source::score:
      h += "; score=";
      append_fixed3(h, d.score);
      if (d.threshold >= 0) {
        h += "; threshold=";
        append_fixed3(h, d.threshold);
      }
      h += "; objective=";
      h += config::to_string(d.objective);
      break;
    case Decision::Source::default_tier: h += "; default"; break;
  }
  return d;
}

void RoutingPolicy::move_to(Decision& d, std::size_t tier) const {
  const Impl& p = *impl_;
  const std::size_t from = d.tier;
  if (!d.yielded_from) d.yielded_from = from;
  d.tier = tier;
  // Rewrite "tier=OLD" and append the reason.
  const std::size_t end = d.header.find(';');
  d.header.replace(0, end == std::string::npos ? d.header.size() : end, "tier=" + p.header_tiers[tier]);
  d.header += "; yielded_from=";
  d.header += p.header_tiers[from];
}

std::vector<std::size_t> RoutingPolicy::failover_tiers(const Decision& d) const {
  std::vector<std::size_t> out;
  for (std::size_t t = d.tier + 1; t < impl_->tiers.size(); ++t) out.push_back(t);
  return out;
}

const std::string& RoutingPolicy::model() const noexcept { return impl_->model; }
std::size_t RoutingPolicy::tier_count() const noexcept { return impl_->tiers.size(); }
const std::string& RoutingPolicy::tier_name(std::size_t tier) const noexcept { return impl_->tiers.at(tier); }
std::span<const double> RoutingPolicy::thresholds(Objective o) const noexcept {
  return impl_->thresholds[static_cast<std::size_t>(o)];
}
Objective RoutingPolicy::default_objective() const noexcept { return impl_->default_objective; }
const ComplexityScorer* RoutingPolicy::scorer() const noexcept { return impl_->scorer.get(); }

Result<std::shared_ptr<const ComplexityScorer>> shared_scorer(const std::string& weights_path) {
  auto path = locate_weights(weights_path);
  if (!path) return std::unexpected(std::move(path.error()));
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(*path, ec);
  const std::string key = (ec ? *path : canonical).string();
  const auto size = std::filesystem::file_size(*path, ec);
  const auto mtime = std::filesystem::last_write_time(*path, ec).time_since_epoch().count();
  struct Entry {
    std::uintmax_t size;
    long long mtime;
    std::shared_ptr<const ComplexityScorer> scorer;
  };
  static std::mutex mu;
  static std::map<std::string, Entry> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(key); it != cache.end() && it->second.size == size && it->second.mtime == static_cast<long long>(mtime))
    return it->second.scorer;
  auto scorer = ComplexityScorer::load(*path);
  if (!scorer) return std::unexpected(std::move(scorer.error()));
  auto ptr = std::make_shared<const ComplexityScorer>(std::move(*scorer));
  cache[key] = Entry{size, static_cast<long long>(mtime), ptr};
  return ptr;
}

}  // namespace bulwark::router
