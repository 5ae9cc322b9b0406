#include "accounting/pricing.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/digits.hpp"

namespace bulwark::accounting {
namespace {

// 128-bit intermediates keep products of token counts and prices exact.
__extension__ typedef __int128 i128;

constexpr std::int64_t kTokensPerUnit = 1'000'000;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

std::int64_t clamp_i64(i128 v) noexcept {
  if (v > kMax) return kMax;
  if (v < 0) return 0;
  return static_cast<std::int64_t>(v);
}

std::int64_t div_ceil(i128 num) noexcept {
  return clamp_i64((num + kTokensPerUnit - 1) / kTokensPerUnit);
}

Error bad_price(std::string msg) { return Error::gateway(ErrorKind::internal, "pricing: " + std::move(msg)); }

void sort_prefixes(std::vector<std::string>& p) {
  std::sort(p.begin(), p.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
}

Result<ModelPrice> parse_price(const YAML::Node& n, const std::string& where) {
  if (!n.IsMap()) return std::unexpected(bad_price(where + ": expected a map of prices"));
  auto field = [&](const char* name) -> Result<std::optional<std::int64_t>> {
    const YAML::Node f = n[name];
    if (!f) return std::optional<std::int64_t>{};
    if (!f.IsScalar()) return std::unexpected(bad_price(where + "." + name + ": expected a number"));
    auto v = parse_usd(f.Scalar());
    if (!v) return std::unexpected(bad_price(where + "." + name + ": " + v.error().message));
    return std::optional<std::int64_t>{*v};
  };
  auto in = field("input");
  if (!in) return std::unexpected(in.error());
  auto out = field("output");
  if (!out) return std::unexpected(out.error());
  auto cached = field("cached_input");
  if (!cached) return std::unexpected(cached.error());
  auto write = field("cache_write");
  if (!write) return std::unexpected(write.error());
  if (!*in || !*out) return std::unexpected(bad_price(where + ": input and output are required"));
  ModelPrice p;
  p.input = **in;
  p.output = **out;
  p.cached_input = cached->value_or(p.input);
  p.cache_write = write->value_or(p.input);
  return p;
}

// Bedrock cross-region inference profiles prefix the model id with a geography.
std::string_view strip_region(std::string_view model) noexcept {
  static constexpr std::string_view kRegions[] = {"us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca."};
  for (auto r : kRegions) {
    if (model.starts_with(r)) return model.substr(r.size());
  }
  return model;
}

}  // namespace

Cost cost_of(const ModelPrice& p, const Usage& u, bool estimated) noexcept {
  const i128 num = static_cast<i128>(std::max<std::int64_t>(u.input_tokens, 0)) * p.input +
                       static_cast<i128>(std::max<std::int64_t>(u.output_tokens, 0)) * p.output +
                       static_cast<i128>(std::max<std::int64_t>(u.cached_input_tokens, 0)) * p.cached_input +
                       static_cast<i128>(std::max<std::int64_t>(u.cache_write_tokens, 0)) * p.cache_write;
  return Cost{div_ceil(num), estimated};
}

std::int64_t max_cost(const ModelPrice& p, std::int64_t input_tokens,
                      std::int64_t max_output_tokens) noexcept {
  const std::int64_t dearest_input = std::max({p.input, p.cached_input, p.cache_write});
  const i128 num = static_cast<i128>(std::max<std::int64_t>(input_tokens, 0)) * dearest_input +
                       static_cast<i128>(std::max<std::int64_t>(max_output_tokens, 0)) * p.output;
  return div_ceil(num);
}

Usage estimate_usage(std::size_t prompt_bytes, std::size_t output_bytes) noexcept {
  Usage u;
  u.input_tokens = static_cast<std::int64_t>((prompt_bytes + 3) / 4);
  u.output_tokens = static_cast<std::int64_t>((output_bytes + 3) / 4);
  return u;
}

Result<std::int64_t> parse_usd(std::string_view s) {
  auto fail = [&](const char* why) {
    return std::unexpected(Error::gateway(ErrorKind::internal, std::string(why) + ": \"" + std::string(s) + "\""));
  };
  if (s.starts_with('$')) s.remove_prefix(1);
  if (s.empty()) return fail("empty price");
  i128 whole = 0;
  std::size_t i = 0;
  for (; i < s.size() && s[i] != '.'; ++i) {
    if (s[i] < '0' || s[i] > '9') return fail("not a decimal price");
    whole = whole * 10 + (s[i] - '0');
    if (whole > kMax / 1'000'000'000) return fail("price too large");
  }
  std::int64_t frac = 0;
  int digits = 0;
  if (i < s.size()) {
    for (++i; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return fail("not a decimal price");
      if (++digits > 9) return fail("more than 9 decimals");
      frac = frac * 10 + (s[i] - '0');
    }
  }
  for (int d = digits; d < 9; ++d) frac *= 10;
  return static_cast<std::int64_t>(whole * 1'000'000'000 + frac);
}

std::string format_usd(std::int64_t nano) {
  // Digits into a stack buffer, one string at the end: it runs for every priced answer
  // (the x-bulwark-cost-usd header).
  const bool neg = nano < 0;
  const unsigned long long v = neg ? 0ULL - static_cast<unsigned long long>(nano) : static_cast<unsigned long long>(nano);
  char buf[32];
  char* p = buf;
  if (neg) *p++ = '-';
  p = std::to_chars(p, buf + sizeof buf, v / 1'000'000'000ULL).ptr;
  *p++ = '.';
  put_padded_digits(p, v % 1'000'000'000ULL, 9);
  return std::string(buf, p + 9);
}

void PriceTable::set(std::string model, const ModelPrice& price) {
  if (model.ends_with('*') && std::find(prefixes_.begin(), prefixes_.end(), model) == prefixes_.end()) {
    prefixes_.push_back(model);
    sort_prefixes(prefixes_);
  }
  models_.insert_or_assign(std::move(model), price);
}

void PriceTable::set_override(std::string target, std::string model, const ModelPrice& price) {
  auto& prefixes = override_prefixes_[target];
  if (model.ends_with('*') && std::find(prefixes.begin(), prefixes.end(), model) == prefixes.end()) {
    prefixes.push_back(model);
    sort_prefixes(prefixes);
  }
  overrides_[std::move(target)].insert_or_assign(std::move(model), price);
}

std::optional<ModelPrice> PriceTable::find_in(const Map& m, const std::vector<std::string>& prefixes,
                                              std::string_view model) {
  for (const std::string_view id : {model, strip_region(model)}) {
    if (auto it = m.find(std::string(id)); it != m.end()) return it->second;
  }
  for (const std::string_view id : {model, strip_region(model)}) {
    for (const auto& p : prefixes) {
      if (id.starts_with(std::string_view(p).substr(0, p.size() - 1))) return m.find(p)->second;
    }
  }
  return std::nullopt;
}

std::optional<ModelPrice> PriceTable::find(std::string_view model, std::string_view target) const {
  if (!target.empty()) {
    if (auto it = overrides_.find(std::string(target)); it != overrides_.end()) {
      static const std::vector<std::string> kNone;
      auto p = override_prefixes_.find(it->first);
      if (auto found = find_in(it->second, p == override_prefixes_.end() ? kNone : p->second, model)) {
        return found;
      }
    }
  }
  return find_in(models_, prefixes_, model);
}

Result<PriceTable> PriceTable::parse_yaml(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return std::unexpected(bad_price(std::string("invalid YAML: ") + e.what()));
  }
  if (!root.IsMap()) return std::unexpected(bad_price("top level must be a map"));
  PriceTable t;
  if (auto d = root["prices_as_of"]; d && d.IsScalar()) t.as_of_ = d.Scalar();
  const YAML::Node models = root["models"];
  if (!models || !models.IsMap()) return std::unexpected(bad_price("missing 'models' map"));
  for (const auto& kv : models) {
    const std::string id = kv.first.Scalar();
    auto p = parse_price(kv.second, "models." + id);
    if (!p) return std::unexpected(p.error());
    t.set(id, *p);
  }
  if (const YAML::Node targets = root["targets"]; targets) {
    if (!targets.IsMap()) return std::unexpected(bad_price("'targets' must be a map"));
    for (const auto& tk : targets) {
      const std::string target = tk.first.Scalar();
      if (!tk.second.IsMap()) return std::unexpected(bad_price("targets." + target + " must be a map"));
      for (const auto& kv : tk.second) {
        const std::string id = kv.first.Scalar();
        auto p = parse_price(kv.second, "targets." + target + "." + id);
        if (!p) return std::unexpected(p.error());
        t.set_override(target, id, *p);
      }
    }
  }
  return t;
}

Result<PriceTable> PriceTable::load_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected(bad_price("cannot read " + path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_yaml(ss.str());
}

}  // namespace bulwark::accounting
