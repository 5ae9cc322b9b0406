#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace bulwark::config {

std::string ConfigError::to_string(std::string_view file) const {
  std::string out(file);
  if (line > 0) {
    out += (out.empty() ? "" : ":") + std::to_string(line) + ":" + std::to_string(column);
  }
  if (!out.empty()) out += ": ";
  out += message;
  return out;
}

Timeouts Timeouts::with(const TimeoutOverrides& o) const {
  Timeouts t = *this;
  if (o.connect) t.connect = *o.connect;
  if (o.first_token) t.first_token = *o.first_token;
  if (o.idle) t.idle = *o.idle;
  if (o.total) t.total = *o.total;
  return t;
}

std::string_view to_string(ProviderKind kind) noexcept {
  switch (kind) {
    case ProviderKind::openai: return "openai";
    case ProviderKind::anthropic: return "anthropic";
    case ProviderKind::bedrock: return "bedrock";
  }
  return "openai";
}

std::string Endpoint::authority() const {
  const bool default_port = (tls && port == 443) || (!tls && port == 80);
  return default_port ? host : host + ":" + std::to_string(port);
}

const Model* Config::find_model(std::string_view name) const noexcept {
  for (const Model& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

const Provider* Config::find_provider(std::string_view name) const noexcept {
  auto it = providers.find(name);
  return it == providers.end() ? nullptr : &it->second;
}

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::optional<Millis> parse_duration(std::string_view text) {
  double value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc{} || ptr == begin || value < 0 || !std::isfinite(value)) return std::nullopt;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  double ms = 0;
  if (unit == "ms") ms = value;
  else if (unit == "s") ms = value * 1e3;
  else if (unit == "m") ms = value * 60e3;
  else if (unit == "h") ms = value * 3600e3;
  else return std::nullopt;  // a bare number is ambiguous: seconds or milliseconds?
  return Millis(static_cast<Millis::rep>(std::llround(ms)));
}

std::optional<std::size_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr == text.data()) return std::nullopt;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  std::uint64_t mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KiB" || unit == "KB" || unit == "k") mult = 1024;
  else if (unit == "MiB" || unit == "MB" || unit == "M") mult = 1024 * 1024;
  else if (unit == "GiB" || unit == "GB" || unit == "G") mult = 1024ULL * 1024 * 1024;
  else return std::nullopt;
  return static_cast<std::size_t>(value * mult);
}

std::expected<std::string, std::string> interpolate(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out.push_back(text[i++]);
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) return std::unexpected("unterminated ${ in value");
    std::string_view inner = text.substr(i + 2, close - i - 2);
    std::optional<std::string_view> fallback;
    if (auto d = inner.find(":-"); d != std::string_view::npos) {
      fallback = inner.substr(d + 2);
      inner = inner.substr(0, d);
    }
    if (inner.empty()) return std::unexpected("empty variable name in ${}");
    auto value = env(inner);
    if (value && !value->empty()) out += *value;
    else if (fallback) out += *fallback;
    else return std::unexpected("environment variable " + std::string(inner) + " is not set");
    i = close + 1;
  }
  return out;
}

namespace {

class Ctx {
 public:
  explicit Ctx(const EnvLookup& env) : env_(env) {}
  void error(const YAML::Node& at, std::string message) {
    const YAML::Mark m = at.Mark();
    errors_.push_back({m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0, std::move(message)});
  }
  void error(std::string message) { errors_.push_back({0, 0, std::move(message)}); }
  std::vector<ConfigError>& errors() { return errors_; }

  std::optional<std::string> string(const YAML::Node& n, std::string_view what) {
    if (!n.IsScalar()) {
      error(n, std::string(what) + " must be a string");
      return std::nullopt;
    }
    auto v = interpolate(n.Scalar(), env_);
    if (!v) {
      error(n, std::string(what) + ": " + v.error());
      return std::nullopt;
    }
    return std::move(*v);
  }

 private:
  const EnvLookup& env_;
  std::vector<ConfigError> errors_;
};

// Reads one mapping: every key read is remembered, and finish() reports the rest as unknown.
class MapReader {
 public:
  MapReader(Ctx& ctx, const YAML::Node& node, std::string where) : ctx_(ctx), node_(node), where_(std::move(where)) {
    ok_ = node.IsMap() || node.IsNull();
    if (!ok_) ctx_.error(node, where_ + " must be a mapping");
  }
  ~MapReader() {
    if (!ok_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string key = kv.first.Scalar();
      if (!used_.contains(key)) ctx_.error(kv.first, "unknown key '" + key + "' in " + where_);
    }
  }
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool ok() const { return ok_; }
  YAML::Node get(const std::string& key) {
    used_.insert(key);
    if (!ok_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    return node_[key];
  }
  std::optional<std::string> string(const std::string& key) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    return ctx_.string(n, where_ + "." + key);
  }
  std::optional<std::string> required_string(const std::string& key) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) {
      ctx_.error(node_, where_ + " needs '" + key + "'");
      return std::nullopt;
    }
    return ctx_.string(n, where_ + "." + key);
  }
  std::optional<bool> boolean(const std::string& key) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    auto s = ctx_.string(n, where_ + "." + key);
    if (!s) return std::nullopt;
    if (*s == "true") return true;
    if (*s == "false") return false;
    ctx_.error(n, where_ + "." + key + " must be true or false");
    return std::nullopt;
  }
  std::optional<double> number(const std::string& key, double min, double max) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    auto s = ctx_.string(n, where_ + "." + key);
    if (!s) return std::nullopt;
    double v = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc{} || p != s->data() + s->size() || v < min || v > max) {
      std::ostringstream msg;
      msg << where_ << "." << key << " must be a number from " << min << " to " << max;
      ctx_.error(n, msg.str());
      return std::nullopt;
    }
    return v;
  }
  std::optional<Millis> duration(const std::string& key) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    auto s = ctx_.string(n, where_ + "." + key);
    if (!s) return std::nullopt;
    auto d = parse_duration(*s);
    if (!d) ctx_.error(n, where_ + "." + key + " must be a duration such as 250ms, 2s, 1m (got '" + *s + "')");
    return d;
  }
  std::optional<std::size_t> size(const std::string& key) {
    YAML::Node n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    auto s = ctx_.string(n, where_ + "." + key);
    if (!s) return std::nullopt;
    auto v = parse_size(*s);
    if (!v) ctx_.error(n, where_ + "." + key + " must be a size such as 16KiB or 4MiB (got '" + *s + "')");
    return v;
  }
  const std::string& where() const { return where_; }

 private:
  Ctx& ctx_;
  YAML::Node node_;
  std::string where_;
  bool ok_ = true;
  std::set<std::string> used_;
};

TimeoutOverrides read_timeouts(Ctx& ctx, const YAML::Node& node, const std::string& where) {
  TimeoutOverrides t;
  if (!node.IsDefined() || node.IsNull()) return t;
  MapReader r(ctx, node, where);
  t.connect = r.duration("connect");
  t.first_token = r.duration("first_token");
  t.idle = r.duration("idle");
  t.total = r.duration("total");
  for (auto* d : {&t.connect, &t.first_token, &t.idle, &t.total})
    if (*d && d->value().count() == 0) ctx.error(node, where + ": a timeout of 0 would fail every request");
  return t;
}

// A `resilience:` section (top level or per model): fields left out keep `base`.
ResilienceSettings read_resilience(Ctx& ctx, const YAML::Node& node, const std::string& where, ResilienceSettings base) {
  ResilienceSettings s = std::move(base);
  if (!node.IsDefined() || node.IsNull()) return s;
  MapReader r(ctx, node, where);
  if (!r.ok()) return s;
  auto whole = [&](MapReader& m, const std::string& key, double min, double max, std::uint32_t& out) {
    YAML::Node n = m.get(key);
    auto v = m.number(key, min, max);
    if (!v) return;
    if (*v != std::floor(*v)) {
      ctx.error(n, m.where() + "." + key + " must be a whole number");
      return;
    }
    out = static_cast<std::uint32_t>(*v);
  };
  if (YAML::Node b = r.get("breaker"); b.IsDefined() && !b.IsNull()) {
    MapReader m(ctx, b, where + ".breaker");
    if (m.ok()) {
      BreakerSettings& x = s.breaker;
      whole(m, "window", 1, 100'000, x.window);
      whole(m, "minimum_calls", 1, 100'000, x.minimum_calls);
      if (auto v = m.number("failure_rate", 0.01, 1)) x.failure_rate = *v;
      if (auto v = m.duration("slow_call_duration")) x.slow_call_duration = *v;
      if (auto v = m.number("slow_call_rate", 0.01, 1)) x.slow_call_rate = *v;
      if (auto v = m.duration("open_for")) x.open_for = *v;
      if (auto v = m.number("open_multiplier", 1, 100)) x.open_multiplier = *v;
      if (auto v = m.duration("open_max")) x.open_max = *v;
      if (auto v = m.number("open_jitter", 0, 0.99)) x.open_jitter = *v;
      whole(m, "probes", 1, 1000, x.probes);
      whole(m, "probes_to_close", 1, 1000, x.probes_to_close);
      if (YAML::Node f = m.get("failures"); f.IsDefined() && !f.IsNull()) {
        if (!f.IsSequence() || f.size() == 0) {
          ctx.error(f, where + ".breaker.failures must be a non-empty list of failure classes");
        } else {
          x.failures.clear();
          for (const auto& item : f)
            if (auto name = ctx.string(item, where + ".breaker.failures")) x.failures.push_back(*name);
          const YAML::Mark mark = f.Mark();
          x.failures_line = mark.line >= 0 ? mark.line + 1 : 0;
          x.failures_column = mark.column >= 0 ? mark.column + 1 : 0;
        }
      }
      if (x.minimum_calls > x.window) ctx.error(b, where + ".breaker.minimum_calls must not exceed window");
      if (x.open_for.count() <= 0) ctx.error(b, where + ".breaker.open_for must be positive");
      if (x.open_max < x.open_for) ctx.error(b, where + ".breaker.open_max must not be shorter than open_for");
      if (x.slow_call_duration && x.slow_call_duration->count() <= 0)
        ctx.error(b, where + ".breaker.slow_call_duration must be positive");
    }
  }
  if (YAML::Node t = r.get("retry"); t.IsDefined() && !t.IsNull()) {
    MapReader m(ctx, t, where + ".retry");
    if (m.ok()) {
      RetrySettings& x = s.retry;
      whole(m, "max_attempts_per_target", 1, 100, x.max_attempts_per_target);
      whole(m, "max_attempts_per_request", 1, 100, x.max_attempts_per_request);
      if (auto v = m.duration("backoff_base")) x.backoff_base = *v;
      if (auto v = m.duration("backoff_cap")) x.backoff_cap = *v;
      if (auto v = m.duration("max_retry_after")) x.max_retry_after = *v;
      if (auto v = m.number("budget_ratio", 0, 100)) x.budget_ratio = *v;
      if (auto v = m.number("budget_min_per_second", 0, 1e6)) x.budget_min_per_second = *v;
      if (x.max_attempts_per_target > x.max_attempts_per_request)
        ctx.error(t, where + ".retry.max_attempts_per_target must not exceed max_attempts_per_request");
      if (x.backoff_cap < x.backoff_base) ctx.error(t, where + ".retry.backoff_cap must not be shorter than backoff_base");
    }
  }
  return s;
}

void read_listen(Ctx& ctx, const YAML::Node& n, Config& cfg) {
  auto s = ctx.string(n, "listen");
  if (!s) return;
  const auto colon = s->rfind(':');
  if (colon == std::string::npos || colon == 0) {
    ctx.error(n, "listen must be host:port (got '" + *s + "')");
    return;
  }
  std::string host = s->substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const std::string ps = s->substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc{} || p != ps.data() + ps.size() || port > 65535) {
    ctx.error(n, "listen port must be 0-65535 (got '" + ps + "')");
    return;
  }
  cfg.listen = {std::move(host), static_cast<std::uint16_t>(port)};
}

std::optional<Endpoint> parse_base_url(Ctx& ctx, const YAML::Node& at, const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) {
    ctx.error(at, "base_url is not an absolute URL: '" + url + "'");
    return std::nullopt;
  }
  Endpoint e;
  const auto scheme = u->scheme();
  if (scheme == "https") e.tls = true;
  else if (scheme != "http") {
    ctx.error(at, "base_url scheme must be http or https (got '" + std::string(scheme) + "')");
    return std::nullopt;
  }
  e.host = std::string(u->encoded_host());
  if (e.host.size() > 2 && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty()) {
    ctx.error(at, "base_url has no host: '" + url + "'");
    return std::nullopt;
  }
  e.port = u->has_port() ? u->port_number() : (e.tls ? 443 : 80);
  if (u->has_query() || u->has_fragment()) ctx.error(at, "base_url must not have a query or fragment");
  e.path_prefix = std::string(u->encoded_path());
  while (!e.path_prefix.empty() && e.path_prefix.back() == '/') e.path_prefix.pop_back();
  return e;
}

void read_provider(Ctx& ctx, const std::string& name, const YAML::Node& node, Config& cfg) {
  MapReader r(ctx, node, "providers." + name);
  if (!r.ok()) return;
  Provider p;
  p.name = name;
  if (auto kind = r.required_string("kind")) {
    if (*kind == "openai") p.kind = ProviderKind::openai;
    else if (*kind == "anthropic") p.kind = ProviderKind::anthropic;
    else if (*kind == "bedrock") p.kind = ProviderKind::bedrock;
    else ctx.error(r.get("kind"), "providers." + name + ".kind must be openai, anthropic or bedrock (got '" + *kind + "')");
  }
  if (p.kind != ProviderKind::openai) {
    ctx.error(r.get("kind"), "providers." + name + ": kind '" + std::string(to_string(p.kind)) +
                                 "' is not supported by this build yet (only openai)");
  }
  if (auto url = r.required_string("base_url")) {
    p.base_url = *url;
    if (auto e = parse_base_url(ctx, r.get("base_url"), *url)) p.endpoint = std::move(*e);
  }
  if (auto key = r.string("api_key")) p.api_key = Secret(std::move(*key));
  if (auto v = r.boolean("verify_tls")) p.verify_tls = *v;
  if (auto ca = r.string("ca_file")) p.ca_file = *ca;
  YAML::Node headers = r.get("headers");
  if (headers.IsDefined() && !headers.IsNull()) {
    if (!headers.IsMap()) ctx.error(headers, "providers." + name + ".headers must be a mapping");
    else
      for (const auto& kv : headers)
        if (auto v = ctx.string(kv.second, "providers." + name + ".headers")) p.headers.emplace_back(kv.first.Scalar(), *v);
  }
  p.timeouts = read_timeouts(ctx, r.get("timeouts"), "providers." + name + ".timeouts");
  cfg.providers.emplace(name, std::move(p));
}

void read_model(Ctx& ctx, const std::string& name, const YAML::Node& node, Config& cfg,
                std::vector<std::pair<YAML::Node, std::string>>& refs_to_check,
                std::vector<std::pair<YAML::Node, std::string>>& filter_refs) {
  MapReader r(ctx, node, "models." + name);
  if (!r.ok()) return;
  Model m;
  m.name = name;
  YAML::Node targets = r.get("targets");
  if (!targets.IsDefined() || !targets.IsSequence() || targets.size() == 0) {
    ctx.error(targets.IsDefined() ? targets : node, "models." + name + ".targets must be a non-empty list");
  } else {
    for (std::size_t i = 0; i < targets.size(); ++i) {
      MapReader t(ctx, targets[i], "models." + name + ".targets[" + std::to_string(i) + "]");
      if (!t.ok()) continue;
      Target target;
      if (auto p = t.required_string("provider")) {
        target.provider = *p;
        if (!cfg.providers.contains(*p))
          ctx.error(t.get("provider"), t.where() + ".provider: no provider named '" + *p + "'");
      }
      if (auto mid = t.required_string("model")) target.model = *mid;
      if (auto w = t.number("weight", 0, 1e6)) target.weight = *w;
      {
        YAML::Node cw = t.get("context_window");
        if (auto v = t.number("context_window", 1, 1e12)) {
          if (*v != std::floor(*v)) ctx.error(cw, t.where() + ".context_window must be a whole number of tokens");
          else target.context_window = static_cast<std::uint64_t>(*v);
        }
      }
      target.timeouts = read_timeouts(ctx, t.get("timeouts"), t.where() + ".timeouts");
      target.id = target.provider + "/" + target.model;
      m.targets.push_back(std::move(target));
    }
  }
  YAML::Node fb = r.get("fallbacks");
  if (fb.IsDefined() && !fb.IsNull()) {
    if (!fb.IsSequence()) ctx.error(fb, "models." + name + ".fallbacks must be a list of model names");
    else
      for (const auto& item : fb)
        if (auto s = ctx.string(item, "models." + name + ".fallbacks")) {
          m.fallbacks.push_back(*s);
          refs_to_check.emplace_back(item, *s);
        }
  }
  YAML::Node cf = r.get("fallbacks_on_content_filter");
  if (cf.IsDefined() && !cf.IsNull()) {
    if (!cf.IsSequence()) ctx.error(cf, "models." + name + ".fallbacks_on_content_filter must be a list of model names");
    else
      for (const auto& item : cf)
        if (auto s = ctx.string(item, "models." + name + ".fallbacks_on_content_filter")) {
          if (*s == name) ctx.error(item, "models." + name + ".fallbacks_on_content_filter must not name the model itself");
          m.fallbacks_on_content_filter.push_back(*s);
          filter_refs.emplace_back(item, *s);
        }
  }
  m.timeouts = read_timeouts(ctx, r.get("timeouts"), "models." + name + ".timeouts");
  m.resilience = read_resilience(ctx, r.get("resilience"), "models." + name + ".resilience", cfg.resilience);
  cfg.models.push_back(std::move(m));
}

// A fallback chain that loops back to a model already in it would bounce forever.
void check_fallback_cycles(Ctx& ctx, const Config& cfg) {
  for (const Model& start : cfg.models) {
    std::vector<const Model*> stack{&start};
    std::set<std::string> on_path;
    std::function<bool(const Model&)> visit = [&](const Model& m) -> bool {
      if (!on_path.insert(m.name).second) return false;
      for (const std::string& f : m.fallbacks)
        if (const Model* next = cfg.find_model(f); next && !visit(*next)) return false;
      on_path.erase(m.name);
      return true;
    };
    if (!visit(start)) ctx.error("models." + start.name + ": its fallbacks form a cycle");
  }
}

void read_config(Ctx& ctx, const YAML::Node& root, Config& cfg) {
  MapReader r(ctx, root, "the configuration");
  if (!r.ok()) return;
  if (YAML::Node n = r.get("listen"); n.IsDefined()) read_listen(ctx, n, cfg);
  if (auto w = r.number("workers", 0, 256)) cfg.workers = static_cast<unsigned>(*w);
  if (YAML::Node n = r.get("limits"); n.IsDefined() && !n.IsNull()) {
    MapReader l(ctx, n, "limits");
    if (auto v = l.size("max_header_bytes")) cfg.limits.max_header_bytes = *v;
    if (auto v = l.size("max_body_bytes")) cfg.limits.max_body_bytes = *v;
    if (auto v = l.duration("read_timeout")) cfg.limits.read_timeout = *v;
    if (auto v = l.duration("keepalive_idle_timeout")) cfg.limits.keepalive_idle_timeout = *v;
    if (auto v = l.duration("shutdown_grace")) cfg.limits.shutdown_grace = *v;
  }
  if (YAML::Node n = r.get("log"); n.IsDefined() && !n.IsNull()) {
    MapReader l(ctx, n, "log");
    if (auto v = l.string("level")) {
      if (*v != "debug" && *v != "info" && *v != "warn" && *v != "error")
        ctx.error(l.get("level"), "log.level must be debug, info, warn or error");
      cfg.log.level = *v;
    }
    if (auto v = l.boolean("access")) cfg.log.access = *v;
  }
  cfg.timeouts = Timeouts{}.with(read_timeouts(ctx, r.get("timeouts"), "timeouts"));
  cfg.resilience = read_resilience(ctx, r.get("resilience"), "resilience", ResilienceSettings{});
  if (YAML::Node n = r.get("admin"); n.IsDefined() && !n.IsNull()) {
    MapReader a(ctx, n, "admin");
    if (auto key = a.string("master_key"); key && !key->empty()) {
      if (key->size() < 32) ctx.error(a.get("master_key"), "admin.master_key must be at least 32 characters long");
      cfg.admin.master_key = Secret(std::move(*key));
    }
  }

  YAML::Node providers = r.get("providers");
  if (providers.IsDefined() && !providers.IsNull()) {
    if (!providers.IsMap()) ctx.error(providers, "providers must be a mapping of names to providers");
    else
      for (const auto& kv : providers) read_provider(ctx, kv.first.Scalar(), kv.second, cfg);
  }
  std::vector<std::pair<YAML::Node, std::string>> fallback_refs, filter_refs;
  YAML::Node models = r.get("models");
  if (!models.IsDefined() || models.IsNull() || !models.IsMap() || models.size() == 0) {
    ctx.error(models.IsDefined() ? models : root, "models must be a non-empty mapping of model names");
  } else {
    for (const auto& kv : models) read_model(ctx, kv.first.Scalar(), kv.second, cfg, fallback_refs, filter_refs);
  }
  for (const auto& [node, name] : fallback_refs)
    if (!cfg.find_model(name)) ctx.error(node, "fallback '" + name + "' is not a model in models:");
  for (const auto& [node, name] : filter_refs)
    if (!cfg.find_model(name)) ctx.error(node, "content-filter fallback '" + name + "' is not a model in models:");
  if (ctx.errors().empty()) check_fallback_cycles(ctx, cfg);
}

}  // namespace

LoadResult load_string(std::string_view yaml, const EnvLookup& env, std::string source) {
  Ctx ctx(env);
  auto cfg = std::make_shared<Config>();
  cfg->source = std::move(source);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    read_config(ctx, root, *cfg);
  } catch (const YAML::Exception& e) {
    ctx.errors().push_back({e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0, e.msg});
  }
  if (!ctx.errors().empty()) {
    auto errors = std::move(ctx.errors());
    std::stable_sort(errors.begin(), errors.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::unexpected(std::move(errors));
  }
  return std::shared_ptr<const Config>(std::move(cfg));
}

LoadResult load_file(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(std::vector<ConfigError>{{0, 0, "cannot open " + path}});
  std::stringstream buf;
  buf << in.rdbuf();
  return load_string(buf.str(), env, path);
}

}  // namespace bulwark::config
