#include "config/config.hpp"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
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
  if (value > std::numeric_limits<std::size_t>::max() / mult) return std::nullopt;  // would wrap
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
  if (YAML::Node h = r.get("hedge"); h.IsDefined() && !h.IsNull()) {
    MapReader m(ctx, h, where + ".hedge");
    if (m.ok()) {
      HedgeSettings& x = s.hedge;
      x.enabled = m.boolean("enabled").value_or(true);
      if (YAML::Node d = m.get("delay"); d.IsDefined() && !d.IsNull()) {
        // "p50", "p95" or "p99" (adaptive: the latency tracker keeps these) or a duration.
        const std::string text = d.IsScalar() ? d.Scalar() : std::string();
        if (text.size() > 1 && text[0] == 'p' && std::isdigit(static_cast<unsigned char>(text[1]))) {
          if (text != "p50" && text != "p95" && text != "p99")
            ctx.error(d, where + ".hedge.delay must be a duration, p50, p95 or p99 (got '" + text + "')");
          else {
            x.delay.reset();
            x.percentile = std::stod(text.substr(1)) / 100.0;
          }
        } else if (auto v = m.duration("delay")) {
          x.delay = *v;
        }
      }
      if (auto v = m.duration("min_delay")) x.min_delay = *v;
      if (auto v = m.duration("max_delay")) x.max_delay = *v;
      whole(m, "min_samples", 1, 1'000'000, x.min_samples);
      if (auto v = m.number("budget_ratio", 0, 1)) x.budget_ratio = *v;
      if (auto v = m.number("budget_min_per_second", 0, 1e6)) x.budget_min_per_second = *v;
      if (x.delay && x.delay->count() <= 0) ctx.error(h, where + ".hedge.delay must be positive");
      if (x.max_delay < x.min_delay) ctx.error(h, where + ".hedge.max_delay must not be shorter than min_delay");
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

// `tls:` on the listener. The files are read by the server when it builds its context;
// here only their names and the options are checked.
void read_listen_tls(Ctx& ctx, const YAML::Node& n, Config& cfg) {
  if (!n.IsDefined() || n.IsNull()) return;
  MapReader r(ctx, n, "tls");
  if (!r.ok()) return;
  ListenTls t;
  if (auto v = r.required_string("cert_file")) t.cert_file = *v;
  if (auto v = r.required_string("key_file")) t.key_file = *v;
  if (auto v = r.string("min_version")) {
    if (*v != "1.2" && *v != "1.3") ctx.error(r.get("min_version"), "tls.min_version must be \"1.2\" or \"1.3\" (got '" + *v + "')");
    t.min_version = *v;
  }
  if (auto v = r.boolean("http2")) t.http2 = *v;
  if (t.cert_file.empty() || t.key_file.empty()) {
    if (r.get("cert_file").IsDefined() && r.get("key_file").IsDefined()) ctx.error(n, "tls.cert_file and tls.key_file must not be empty");
    return;
  }
  cfg.tls = std::move(t);
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

// kind: anthropic. base_url defaults to Anthropic's API (the path /v1/messages is
// appended to it, as the Anthropic SDKs do).
void read_anthropic_provider(Ctx& ctx, MapReader& r, const YAML::Node& node, Provider& p) {
  const std::string where = "providers." + p.name;
  if (auto v = r.string("anthropic_version")) {
    if (v->empty()) ctx.error(r.get("anthropic_version"), where + ".anthropic_version must not be empty");
    else p.anthropic_version = *v;
  }
  if (p.base_url.empty()) {
    p.base_url = "https://api.anthropic.com";
    if (auto e = parse_base_url(ctx, node, p.base_url)) p.endpoint = std::move(*e);
  }
}

// kind: bedrock. region is required (it is part of every SigV4 signature); base_url
// overrides the regional endpoint (a VPC endpoint, a proxy, the fake provider).
void read_bedrock_provider(Ctx& ctx, MapReader& r, const YAML::Node& node, Provider& p) {
  const std::string where = "providers." + p.name;
  Provider::Bedrock& b = p.bedrock;
  if (auto v = r.required_string("region")) {
    const bool valid = !v->empty() && std::all_of(v->begin(), v->end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!valid) ctx.error(r.get("region"), where + ".region must be an AWS region such as us-east-1 (got '" + *v + "')");
    else b.region = *v;
  }
  if (auto v = r.string("api")) {
    if (*v == "converse") b.api = Provider::Bedrock::Api::converse;
    else if (*v == "invoke") b.api = Provider::Bedrock::Api::invoke;
    else ctx.error(r.get("api"), where + ".api must be converse or invoke (got '" + *v + "')");
  }
  // Values are never echoed: they are credentials.
  auto secret = [&](const char* key, Secret& out) {
    if (auto v = r.string(key)) {
      if (v->empty()) ctx.error(r.get(key), where + "." + key + " is empty (is its ${VARIABLE} set?)");
      else out = Secret(std::move(*v));
    }
  };
  secret("aws_access_key_id", b.access_key_id);
  secret("aws_secret_access_key", b.secret_access_key);
  secret("aws_session_token", b.session_token);
  secret("bearer_token", b.bearer_token);
  if (auto v = r.string("aws_profile")) b.profile = *v;
  if (auto v = r.string("aws_credentials_file")) b.credentials_file = *v;
  if (b.access_key_id.empty() != b.secret_access_key.empty())
    ctx.error(r.get(b.access_key_id.empty() ? "aws_secret_access_key" : "aws_access_key_id"),
              where + ": aws_access_key_id and aws_secret_access_key go together");
  if (!b.session_token.empty() && b.access_key_id.empty())
    ctx.error(r.get("aws_session_token"), where + ".aws_session_token needs aws_access_key_id and aws_secret_access_key");
  if (!b.bearer_token.empty() && !b.access_key_id.empty())
    ctx.error(r.get("bearer_token"), where + ": give either bearer_token or AWS access keys, not both");
  if (!p.api_key.empty())
    ctx.error(r.get("api_key"), where + ".api_key is not used by kind bedrock: give a Bedrock API key as bearer_token");
  if (p.base_url.empty() && !b.region.empty()) {
    p.base_url = "https://bedrock-runtime." + b.region + ".amazonaws.com";
    if (auto e = parse_base_url(ctx, node, p.base_url)) p.endpoint = std::move(*e);
  }
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
  // base_url is required for OpenAI-compatible providers; Anthropic and Bedrock have
  // their public endpoints as defaults (read_anthropic_provider, read_bedrock_provider).
  if (auto url = p.kind == ProviderKind::openai ? r.required_string("base_url") : r.string("base_url")) {
    p.base_url = *url;
    if (auto e = parse_base_url(ctx, r.get("base_url"), *url)) p.endpoint = std::move(*e);
  }
  if (auto key = r.string("api_key")) p.api_key = Secret(std::move(*key));
  if (p.kind == ProviderKind::anthropic) read_anthropic_provider(ctx, r, node, p);
  if (p.kind == ProviderKind::bedrock) read_bedrock_provider(ctx, r, node, p);
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

// ---------------------------------------------------------------------------------------
// Smart routing (`models.NAME.router:`) and load balancing (`models.NAME.load_balancing:`,
// per-target `price:` / `cost_rank:`). See docs/routing.md and docs/configuration.md.

// A list given as one scalar or a sequence of scalars.
std::vector<std::pair<YAML::Node, std::string>> read_scalar_list(Ctx& ctx, const YAML::Node& n, const std::string& where) {
  std::vector<std::pair<YAML::Node, std::string>> out;
  if (!n.IsDefined() || n.IsNull()) return out;
  if (n.IsScalar()) {
    if (auto s = ctx.string(n, where)) out.emplace_back(n, *s);
  } else if (n.IsSequence()) {
    for (const auto& item : n)
      if (auto s = ctx.string(item, where)) out.emplace_back(item, *s);
  } else {
    ctx.error(n, where + " must be a string or a list of strings");
  }
  return out;
}

void check_regex(Ctx& ctx, const YAML::Node& at, const std::string& where, const std::string& pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);
  const RE2 re(pattern, opts);
  if (!re.ok()) ctx.error(at, where + ": regular expression does not compile: " + re.error());
}

// `REGEX` (a plain string) or `{equals: TEXT}` or `{matches: REGEX}`.
std::optional<TextMatch> read_text_match(Ctx& ctx, const YAML::Node& n, const std::string& where) {
  TextMatch m;
  if (n.IsScalar()) {
    auto s = ctx.string(n, where);
    if (!s) return std::nullopt;
    check_regex(ctx, n, where, *s);
    m.matches = std::move(*s);
    return m;
  }
  MapReader r(ctx, n, where);
  if (!r.ok()) return std::nullopt;
  m.equals = r.string("equals");
  m.matches = r.string("matches");
  if (m.matches) check_regex(ctx, r.get("matches"), where + ".matches", *m.matches);
  if (m.equals.has_value() == m.matches.has_value()) {
    ctx.error(n, where + " needs exactly one of 'equals' and 'matches'");
    return std::nullopt;
  }
  return m;
}

// `{name|key: X, equals|matches: Y}`, one mapping or a list of them.
template <class Item>
std::vector<Item> read_keyed_matches(Ctx& ctx, const YAML::Node& n, const std::string& where, const char* key_field,
                                     bool lower_key) {
  std::vector<Item> out;
  if (!n.IsDefined() || n.IsNull()) return out;
  std::vector<YAML::Node> items;
  if (n.IsSequence())
    for (const auto& i : n) items.push_back(i);
  else items.push_back(n);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string w = n.IsSequence() ? where + "[" + std::to_string(i) + "]" : where;
    MapReader r(ctx, items[i], w);
    if (!r.ok()) continue;
    Item item;
    auto name = r.required_string(key_field);
    TextMatch m;
    m.equals = r.string("equals");
    m.matches = r.string("matches");
    if (m.matches) check_regex(ctx, r.get("matches"), w + ".matches", *m.matches);
    if (m.equals.has_value() == m.matches.has_value()) {
      ctx.error(items[i], w + " needs exactly one of 'equals' and 'matches'");
      continue;
    }
    if (!name) continue;
    if (lower_key)
      std::transform(name->begin(), name->end(), name->begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if constexpr (requires { item.name; }) item.name = std::move(*name);
    else item.key = std::move(*name);
    item.match = std::move(m);
    out.push_back(std::move(item));
  }
  return out;
}

NumberRange read_range(Ctx& ctx, const YAML::Node& n, const std::string& where) {
  NumberRange range;
  if (!n.IsDefined() || n.IsNull()) return range;
  MapReader r(ctx, n, where);
  if (!r.ok()) return range;
  range.gt = r.number("gt", 0, 1e12);
  range.lt = r.number("lt", 0, 1e12);
  if (range.empty()) ctx.error(n, where + " needs 'gt' or 'lt'");
  if (range.gt && range.lt && *range.gt >= *range.lt) ctx.error(n, where + ": gt must be less than lt");
  return range;
}

RouteCondition read_route_condition(Ctx& ctx, const YAML::Node& n, const std::string& where) {
  RouteCondition c;
  if (!n.IsDefined() || n.IsNull()) return c;
  MapReader r(ctx, n, where);
  if (!r.ok()) return c;
  c.tools = r.boolean("tools");
  c.images = r.boolean("images");
  c.headers = read_keyed_matches<RouteCondition::Header>(ctx, r.get("header"), where + ".header", "name", true);
  c.metadata = read_keyed_matches<RouteCondition::Metadata>(ctx, r.get("metadata"), where + ".metadata", "key", false);
  if (YAML::Node u = r.get("user"); u.IsDefined() && !u.IsNull()) c.user = read_text_match(ctx, u, where + ".user");
  for (auto& [node, glob] : read_scalar_list(ctx, r.get("key"), where + ".key")) c.keys.push_back(glob);
  for (auto& [node, glob] : read_scalar_list(ctx, r.get("team"), where + ".team")) c.teams.push_back(glob);
  c.input_tokens = read_range(ctx, r.get("input_tokens"), where + ".input_tokens");
  c.max_tokens = read_range(ctx, r.get("max_tokens"), where + ".max_tokens");
  c.context_window = read_range(ctx, r.get("context_window"), where + ".context_window");
  if (YAML::Node m = r.get("last_user_message"); m.IsDefined() && !m.IsNull())
    c.last_user_message = read_text_match(ctx, m, where + ".last_user_message");
  for (auto& [node, name] : read_scalar_list(ctx, r.get("objective"), where + ".objective")) {
    if (!parse_route_objective(name)) ctx.error(node, where + ".objective must be balanced, cost, speed or quality (got '" + name + "')");
    else c.objectives.push_back(name);
  }
  return c;
}

bool valid_rule_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
  });
}

RouterSettings read_router(Ctx& ctx, const YAML::Node& node, const std::string& where) {
  RouterSettings rs;
  const YAML::Mark mark = node.Mark();
  rs.line = mark.line >= 0 ? mark.line + 1 : 0;
  rs.column = mark.column >= 0 ? mark.column + 1 : 0;
  MapReader r(ctx, node, where);
  if (!r.ok()) return rs;
  // Tiers first: everything else names them.
  YAML::Node tiers = r.get("tiers");
  if (!tiers.IsDefined() || !tiers.IsSequence() || tiers.size() == 0) {
    ctx.error(tiers.IsDefined() ? tiers : node, where + ".tiers must be a non-empty list of model names, cheapest first");
  } else {
    for (const auto& item : tiers) {
      auto s = ctx.string(item, where + ".tiers");
      if (!s) continue;
      if (std::find(rs.tiers.begin(), rs.tiers.end(), *s) != rs.tiers.end()) {
        ctx.error(item, where + ".tiers names '" + *s + "' twice");
        continue;
      }
      const YAML::Mark m = item.Mark();
      rs.tiers.push_back(*s);
      rs.tier_marks.emplace_back(m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0);
    }
  }
  auto tier_index = [&](const YAML::Node& at, const std::string& w) -> std::optional<std::size_t> {
    auto s = ctx.string(at, w);
    if (!s) return std::nullopt;
    const auto it = std::find(rs.tiers.begin(), rs.tiers.end(), *s);
    if (it == rs.tiers.end()) {
      if (!rs.tiers.empty()) ctx.error(at, w + ": '" + *s + "' is not one of this router's tiers");
      return std::nullopt;
    }
    return static_cast<std::size_t>(it - rs.tiers.begin());
  };

  if (YAML::Node rules = r.get("rules"); rules.IsDefined() && !rules.IsNull()) {
    if (!rules.IsSequence()) ctx.error(rules, where + ".rules must be a list");
    else
      for (std::size_t i = 0; i < rules.size(); ++i) {
        const std::string w = where + ".rules[" + std::to_string(i) + "]";
        MapReader rr(ctx, rules[i], w);
        if (!rr.ok()) continue;
        RouteRule rule;
        const YAML::Mark m = rules[i].Mark();
        rule.line = m.line >= 0 ? m.line + 1 : 0;
        rule.column = m.column >= 0 ? m.column + 1 : 0;
        if (auto name = rr.required_string("name")) {
          if (!valid_rule_name(*name)) ctx.error(rr.get("name"), w + ".name must be 1-64 of A-Z a-z 0-9 . _ -");
          for (const RouteRule& other : rs.rules)
            if (other.name == *name) ctx.error(rr.get("name"), w + ".name '" + *name + "' is used by an earlier rule");
          rule.name = *name;
        }
        rule.when = read_route_condition(ctx, rr.get("when"), w + ".when");
        if (YAML::Node t = rr.get("tier"); !t.IsDefined() || t.IsNull()) ctx.error(rules[i], w + " needs 'tier'");
        else if (auto idx = tier_index(t, w + ".tier")) rule.tier = *idx;
        rs.rules.push_back(std::move(rule));
      }
  }

  const std::size_t gaps = rs.tiers.empty() ? 0 : rs.tiers.size() - 1;
  if (YAML::Node cx = r.get("complexity"); cx.IsDefined() && !cx.IsNull()) {
    rs.complexity = true;
    MapReader c(ctx, cx, where + ".complexity");
    if (c.ok()) {
      if (auto w = c.string("weights")) rs.weights = *w;
      YAML::Node th = c.get("thresholds"), sf = c.get("strong_fraction");
      const bool have_th = th.IsDefined() && !th.IsNull(), have_sf = sf.IsDefined() && !sf.IsNull();
      auto numbers = [&](const YAML::Node& n, const std::string& w, std::vector<double>& out) {
        std::vector<YAML::Node> items;
        if (n.IsSequence())
          for (const auto& i : n) items.push_back(i);
        else items.push_back(n);
        for (const auto& i : items) {
          auto s = ctx.string(i, w);
          if (!s) return false;
          double v = 0;
          auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
          if (ec != std::errc{} || p != s->data() + s->size() || v < 0 || v > 1) {
            ctx.error(i, w + " values must be numbers from 0 to 1");
            return false;
          }
          out.push_back(v);
        }
        if (out.size() != gaps) {
          ctx.error(n, w + " needs " + std::to_string(gaps) + " value(s) for " + std::to_string(rs.tiers.size()) +
                           " tiers (got " + std::to_string(out.size()) + ")");
          return false;
        }
        return true;
      };
      if (have_th == have_sf) {
        ctx.error(cx, where + ".complexity needs exactly one of 'thresholds' and 'strong_fraction'");
      } else if (have_th) {
        if (numbers(th, where + ".complexity.thresholds", rs.thresholds))
          for (std::size_t i = 1; i < rs.thresholds.size(); ++i)
            if (rs.thresholds[i] <= rs.thresholds[i - 1]) {
              ctx.error(th, where + ".complexity.thresholds must be strictly ascending");
              break;
            }
      } else if (numbers(sf, where + ".complexity.strong_fraction", rs.strong_fractions)) {
        for (std::size_t i = 1; i < rs.strong_fractions.size(); ++i)
          if (rs.strong_fractions[i] >= rs.strong_fractions[i - 1]) {
            ctx.error(sf, where + ".complexity.strong_fraction must be strictly descending (share above each tier)");
            break;
          }
      }
    }
  }
  if (YAML::Node dt = r.get("default_tier"); dt.IsDefined() && !dt.IsNull()) {
    if (rs.complexity) ctx.error(dt, where + ".default_tier is only for routers without 'complexity'");
    else if (auto idx = tier_index(dt, where + ".default_tier")) rs.default_tier = *idx;
  }
  if (YAML::Node obj = r.get("objectives"); obj.IsDefined() && !obj.IsNull()) {
    if (!obj.IsMap()) ctx.error(obj, where + ".objectives must be a mapping of cost, speed, quality, balanced");
    else
      for (const auto& kv : obj) {
        const std::string name = kv.first.Scalar();
        const std::string w = where + ".objectives." + name;
        auto o = parse_route_objective(name);
        if (!o) {
          ctx.error(kv.first, "unknown objective '" + name + "' in " + where + ".objectives (balanced, cost, speed, quality)");
          continue;
        }
        MapReader m(ctx, kv.second, w);
        if (!m.ok()) continue;
        ObjectiveSettings& os = rs.objectives[static_cast<std::size_t>(*o)];
        YAML::Node t = m.get("tier");
        auto shift = m.number("shift", -1, 1);
        const bool have_tier = t.IsDefined() && !t.IsNull();
        if (shift.has_value() == have_tier) {
          ctx.error(kv.second, w + " needs exactly one of 'shift' and 'tier'");
          continue;
        }
        if (shift) {
          if (!rs.complexity) ctx.error(kv.second, w + ".shift moves complexity thresholds: the router has no 'complexity'");
          os.shift = *shift;
        } else if (auto idx = tier_index(t, w + ".tier")) {
          os.tier = *idx;
        }
      }
  }
  if (auto d = r.string("default_objective")) {
    if (auto o = parse_route_objective(*d)) rs.default_objective = *o;
    else ctx.error(r.get("default_objective"), where + ".default_objective must be balanced, cost, speed or quality");
  }
  return rs;
}

// `load_balancing: STRATEGY` or `{strategy: STRATEGY, stale_after: DURATION}`.
LoadBalancing read_load_balancing(Ctx& ctx, const YAML::Node& n, const std::string& where) {
  LoadBalancing lb;
  if (!n.IsDefined() || n.IsNull()) return lb;
  std::optional<std::string> name;
  YAML::Node at = n;
  if (n.IsScalar()) {
    name = ctx.string(n, where);
  } else {
    MapReader r(ctx, n, where);
    if (!r.ok()) return lb;
    name = r.required_string("strategy");
    at.reset(r.get("strategy"));  // rebind (operator= would overwrite the node's content)
    if (auto d = r.duration("stale_after")) {
      if (d->count() <= 0) ctx.error(r.get("stale_after"), where + ".stale_after must be positive");
      else lb.stale_after = *d;
    }
  }
  if (!name) return lb;
  if (*name == "weighted") lb.strategy = Balancing::weighted;
  else if (*name == "least_in_flight") lb.strategy = Balancing::least_in_flight;
  else if (*name == "latency") lb.strategy = Balancing::latency;
  else if (*name == "cost") lb.strategy = Balancing::cost;
  else if (*name == "headroom") lb.strategy = Balancing::headroom;
  else ctx.error(at, where + " must be weighted, least_in_flight, latency, cost or headroom (got '" + *name + "')");
  return lb;
}

// A target's `price: {input, output}` (USD per million tokens) and `cost_rank`.
void read_target_cost(Ctx& ctx, MapReader& t, Target& target) {
  if (YAML::Node p = t.get("price"); p.IsDefined() && !p.IsNull()) {
    MapReader r(ctx, p, t.where() + ".price");
    if (r.ok()) {
      TargetPrice price;
      auto in = r.number("input", 0, 1e6);
      auto out = r.number("output", 0, 1e6);
      if (!in && !out) ctx.error(p, t.where() + ".price needs 'input' and/or 'output' (USD per million tokens)");
      price.input = in.value_or(0);
      price.output = out.value_or(0);
      target.price = price;
    }
  }
  target.cost_rank = t.number("cost_rank", 0, 1e9);
}

// The router-related checks of one model, after its own keys were read.
void check_routed_model(Ctx& ctx, const YAML::Node& node, const Model& m, bool routed) {
  const std::string where = "models." + m.name;
  if (routed) {
    if (!m.fallbacks.empty() || !m.fallbacks_on_content_filter.empty())
      ctx.error(node, where + ": a routed model's fallbacks are its tiers (give fallbacks to the tier models)");
    return;
  }
  if (m.load_balancing.strategy == Balancing::cost)
    for (std::size_t i = 0; i < m.targets.size(); ++i)
      if (!m.targets[i].price && !m.targets[i].cost_rank)
        ctx.error(node, where + ".targets[" + std::to_string(i) + "] needs 'price' or 'cost_rank' for load_balancing: cost");
}

// After all models are read: tiers name ordinary models; no fallback names a routed model.
void check_routers(Ctx& ctx, const Config& cfg, const std::vector<std::pair<YAML::Node, std::string>>& fallback_refs,
                   const std::vector<std::pair<YAML::Node, std::string>>& filter_refs) {
  for (const Model& m : cfg.models) {
    if (!m.router) continue;
    for (std::size_t i = 0; i < m.router->tiers.size(); ++i) {
      const std::string& tier = m.router->tiers[i];
      const auto [line, column] = i < m.router->tier_marks.size() ? m.router->tier_marks[i] : std::pair<int, int>{0, 0};
      const Model* t = cfg.find_model(tier);
      std::string msg;
      if (!t) msg = "router tier '" + tier + "' is not a model in models:";
      else if (t->router) msg = "router tier '" + tier + "' is itself a routed model (a tier must have targets)";
      if (!msg.empty()) ctx.errors().push_back({line, column, "models." + m.name + ".router.tiers: " + msg});
    }
  }
  for (const auto* refs : {&fallback_refs, &filter_refs})
    for (const auto& [node, name] : *refs)
      if (const Model* t = cfg.find_model(name); t && t->router)
        ctx.error(node, "fallback '" + name + "' is a routed model: name one of its tiers instead");
}

void read_model(Ctx& ctx, const std::string& name, const YAML::Node& node, Config& cfg,
                std::vector<std::pair<YAML::Node, std::string>>& refs_to_check,
                std::vector<std::pair<YAML::Node, std::string>>& filter_refs) {
  MapReader r(ctx, node, "models." + name);
  if (!r.ok()) return;
  Model m;
  m.name = name;
  YAML::Node router = r.get("router");
  const bool routed = router.IsDefined() && !router.IsNull();
  YAML::Node targets = r.get("targets");
  if (routed) {
    if (targets.IsDefined()) ctx.error(targets, "models." + name + ": a routed model has tiers, not targets");
  } else if (!targets.IsDefined() || !targets.IsSequence() || targets.size() == 0) {
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
      if (auto v = t.boolean("prefill")) target.prefill = *v;
      read_target_cost(ctx, t, target);
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
  if (auto v = r.string("policy")) {
    if (!v->empty() && !cfg.governance.policies.contains(*v))
      ctx.error(r.get("policy"), "models." + name + ".policy '" + *v + "' is not in governance.policies");
    m.policy = *v;
  }
  m.timeouts = read_timeouts(ctx, r.get("timeouts"), "models." + name + ".timeouts");
  m.resilience = read_resilience(ctx, r.get("resilience"), "models." + name + ".resilience", cfg.resilience);
  if (routed) m.router = read_router(ctx, router, "models." + name + ".router");
  if (YAML::Node lb = r.get("load_balancing"); lb.IsDefined() && !lb.IsNull()) {
    if (routed) ctx.error(lb, "models." + name + ".load_balancing: a routed model has no targets (set it on the tiers)");
    else m.load_balancing = read_load_balancing(ctx, lb, "models." + name + ".load_balancing");
  }
  check_routed_model(ctx, node, m, routed);
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

// `governance:` keys, limits, spend, audit and policy profiles.
PolicySettings read_policy(Ctx& ctx, const std::string& id, const YAML::Node& node) {
  PolicySettings p;
  p.id = id;
  const YAML::Mark mark = node.Mark();
  p.line = mark.line >= 0 ? mark.line + 1 : 0;
  p.column = mark.column >= 0 ? mark.column + 1 : 0;
  const std::string where = "governance.policies." + id;
  MapReader r(ctx, node, where);
  if (!r.ok()) return p;
  auto is_action = [](std::string_view a, bool allow_redact) {
    return a == "off" || a == "flag" || a == "block" || (allow_redact && a == "redact");
  };
  if (YAML::Node n = r.get("pii"); n.IsDefined() && !n.IsNull()) {
    if (!n.IsMap()) ctx.error(n, where + ".pii must map detector names to off, flag, redact or block");
    else
      for (const auto& kv : n) {
        auto action = ctx.string(kv.second, where + ".pii." + kv.first.Scalar());
        if (!action) continue;
        if (!is_action(*action, true)) ctx.error(kv.second, where + ".pii." + kv.first.Scalar() + " must be off, flag, redact or block");
        else p.pii.emplace_back(kv.first.Scalar(), *action);
      }
  }
  if (YAML::Node n = r.get("deny"); n.IsDefined() && !n.IsNull()) {
    if (!n.IsSequence()) ctx.error(n, where + ".deny must be a list of {id, pattern, action}");
    else
      for (const auto& item : n) {
        MapReader d(ctx, item, where + ".deny[]");
        if (!d.ok()) continue;
        PolicySettings::Deny deny;
        if (auto v = d.required_string("pattern")) deny.pattern = *v;
        if (auto v = d.string("id")) deny.id = *v;
        else deny.id = "deny-" + std::to_string(p.deny.size() + 1);
        if (auto v = d.string("action")) {
          if (!is_action(*v, false)) ctx.error(d.get("action"), where + ".deny[].action must be block, flag or off");
          deny.action = *v;
        }
        p.deny.push_back(std::move(deny));
      }
  }
  auto strings = [&](const std::string& key, std::vector<std::string>& out) {
    YAML::Node n = r.get(key);
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsSequence()) {
      ctx.error(n, where + "." + key + " must be a list");
      return;
    }
    for (const auto& item : n)
      if (auto v = ctx.string(item, where + "." + key)) out.push_back(*v);
  };
  strings("allow", p.allow);
  strings("models", p.models);
  if (auto v = r.number("max_input_tokens", 1, 1e9)) p.max_input_tokens = static_cast<std::uint64_t>(*v);
  if (auto v = r.number("max_tokens", 1, 1e9)) p.max_tokens = static_cast<std::uint64_t>(*v);
  if (auto v = r.string("injection")) {
    if (!is_action(*v, false)) ctx.error(r.get("injection"), where + ".injection must be off, flag or block");
    p.injection = *v;
  }
  if (auto v = r.string("uninspectable_documents")) {
    if (*v != "block" && *v != "flag" && *v != "allow")
      ctx.error(r.get("uninspectable_documents"), where + ".uninspectable_documents must be block, flag or allow");
    p.uninspectable_documents = *v;
  }
  return p;
}

// A relative path in the file means relative to the file's folder, so a config works the
// same whatever directory the gateway is started from.
std::string relative_to_config(const std::string& path, const std::string& source) {
  if (path.empty() || path.front() == '/' || source.empty() || source.front() == '<') return path;
  const auto slash = source.rfind('/');
  if (slash == std::string::npos) return path;
  return source.substr(0, slash + 1) + path;
}

void read_governance(Ctx& ctx, const YAML::Node& node, Config& cfg) {
  GovernanceSettings& g = cfg.governance;
  if (node.IsDefined() && !node.IsNull()) {
    MapReader r(ctx, node, "governance");
    if (r.ok()) {
      if (auto v = r.boolean("enabled")) g.enabled = *v;
      if (auto v = r.string("auth")) {
        if (*v == "keys") g.auth = AuthMode::keys;
        else if (*v == "keyless") g.auth = AuthMode::keyless;
        else ctx.error(r.get("auth"), "governance.auth must be keys or keyless");
      }
      if (auto v = r.string("database")) {
        if (v->empty()) ctx.error(r.get("database"), "governance.database must not be empty");
        else g.database = *v;
      }
      if (auto v = r.string("journal_dir")) g.journal_dir = *v;
      if (auto v = r.size("journal_segment")) {
        if (*v < (1u << 20) || *v > (std::size_t{1} << 30))
          ctx.error(r.get("journal_segment"), "governance.journal_segment must be between 1MiB and 1GiB");
        else
          g.journal_segment = *v;
      }
      if (auto v = r.string("prices")) g.prices = *v;
      if (auto v = r.number("default_max_tokens", 1, 1e7)) g.default_max_tokens = static_cast<std::uint64_t>(*v);
      if (auto v = r.string("audit_content")) {
        if (*v != "off" && *v != "hashed" && *v != "redacted" && *v != "full")
          ctx.error(r.get("audit_content"), "governance.audit_content must be off, hashed, redacted or full");
        g.audit_content = *v;
      }
      if (auto v = r.duration("key_refresh")) {
        if (v->count() <= 0) ctx.error(r.get("key_refresh"), "governance.key_refresh must be positive");
        g.key_refresh = *v;
      }
      if (YAML::Node p = r.get("policies"); p.IsDefined() && !p.IsNull()) {
        if (!p.IsMap()) ctx.error(p, "governance.policies must map profile names to policies");
        else
          for (const auto& kv : p) g.policies.emplace(kv.first.Scalar(), read_policy(ctx, kv.first.Scalar(), kv.second));
      }
      if (auto v = r.string("default_policy")) {
        if (!v->empty() && !g.policies.contains(*v))
          ctx.error(r.get("default_policy"), "governance.default_policy '" + *v + "' is not in governance.policies");
        g.default_policy = *v;
      }
    }
  }
  g.database = relative_to_config(g.database, cfg.source);
  g.journal_dir = relative_to_config(g.journal_dir, cfg.source);
  g.prices = relative_to_config(g.prices, cfg.source);
}

// `events:` (operator events: a webhook per breaker transition). The URL and header
// values may hold credentials: no message repeats them.
void read_events(Ctx& ctx, const YAML::Node& node, Config& cfg) {
  if (!node.IsDefined() || node.IsNull()) return;
  MapReader r(ctx, node, "events");
  if (!r.ok()) return;
  if (auto v = r.string("instance")) cfg.events.instance = *v;
  YAML::Node w = r.get("webhook");
  if (!w.IsDefined() || w.IsNull()) return;
  MapReader m(ctx, w, "events.webhook");
  if (!m.ok()) return;
  WebhookConfig hook;
  if (auto url = m.required_string("url")) {
    const YAML::Node at = m.get("url");
    auto u = boost::urls::parse_absolute_uri(*url);
    if (!u) ctx.error(at, "events.webhook.url is not an absolute URL");
    else if (u->scheme() != "http" && u->scheme() != "https")
      ctx.error(at, "events.webhook.url: the scheme must be http or https");
    else if (u->encoded_host().empty())
      ctx.error(at, "events.webhook.url has no host");
    else if (u->has_fragment())
      ctx.error(at, "events.webhook.url must not have a fragment");
    hook.url = Secret(std::move(*url));
  }
  if (auto v = m.duration("timeout")) {
    if (v->count() <= 0) ctx.error(m.get("timeout"), "events.webhook.timeout must be positive");
    else hook.timeout = *v;
  }
  if (auto v = m.number("queue", 1, 1'000'000)) {
    if (*v != std::floor(*v)) ctx.error(m.get("queue"), "events.webhook.queue must be a whole number");
    else hook.queue = static_cast<std::size_t>(*v);
  }
  if (auto v = m.number("retries", 0, 20)) {
    if (*v != std::floor(*v)) ctx.error(m.get("retries"), "events.webhook.retries must be a whole number");
    else hook.retries = static_cast<std::uint32_t>(*v);
  }
  if (auto v = m.duration("backoff")) hook.backoff = *v;
  if (auto v = m.boolean("verify_tls")) hook.verify_tls = *v;
  if (auto v = m.string("ca_file")) hook.ca_file = *v;
  YAML::Node headers = m.get("headers");
  if (headers.IsDefined() && !headers.IsNull()) {
    if (!headers.IsMap()) {
      ctx.error(headers, "events.webhook.headers must be a mapping of header names to values");
    } else {
      for (const auto& kv : headers) {
        const std::string name = kv.first.Scalar();
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        });
        if (!token) {
          ctx.error(kv.first, "events.webhook.headers: '" + name + "' is not a valid header name");
          continue;
        }
        if (lower == "host" || lower == "content-length" || lower == "content-type" || lower == "connection" ||
            lower == "transfer-encoding") {
          ctx.error(kv.first, "events.webhook.headers: " + name + " is set by the gateway");
          continue;
        }
        auto v = ctx.string(kv.second, "events.webhook.headers." + name);
        if (!v) continue;
        if (v->find_first_of("\r\n") != std::string::npos) {
          ctx.error(kv.second, "events.webhook.headers." + name + " must not contain a line break");
          continue;
        }
        hook.headers.emplace_back(name, Secret(std::move(*v)));
      }
    }
  }
  cfg.events.webhook = std::move(hook);
}

void read_config(Ctx& ctx, const YAML::Node& root, Config& cfg) {
  MapReader r(ctx, root, "the configuration");
  if (!r.ok()) return;
  if (YAML::Node n = r.get("listen"); n.IsDefined()) read_listen(ctx, n, cfg);
  read_listen_tls(ctx, r.get("tls"), cfg);
  if (auto w = r.number("workers", 0, 256)) cfg.workers = static_cast<unsigned>(*w);
  if (YAML::Node n = r.get("limits"); n.IsDefined() && !n.IsNull()) {
    MapReader l(ctx, n, "limits");
    if (auto v = l.size("max_header_bytes")) cfg.limits.max_header_bytes = *v;
    if (auto v = l.size("max_body_bytes")) cfg.limits.max_body_bytes = *v;
    if (auto v = l.duration("read_timeout")) cfg.limits.read_timeout = *v;
    if (auto v = l.duration("keepalive_idle_timeout")) cfg.limits.keepalive_idle_timeout = *v;
    if (auto v = l.duration("shutdown_grace")) cfg.limits.shutdown_grace = *v;
    if (auto v = l.duration("stream_keepalive")) cfg.limits.stream_keepalive = *v;
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
  read_governance(ctx, r.get("governance"), cfg);
  read_events(ctx, r.get("events"), cfg);

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
  check_routers(ctx, cfg, fallback_refs, filter_refs);
  if (ctx.errors().empty()) check_fallback_cycles(ctx, cfg);
}

}  // namespace

std::string_view to_string(RouteObjective o) noexcept {
  switch (o) {
    case RouteObjective::balanced: return "balanced";
    case RouteObjective::cost: return "cost";
    case RouteObjective::speed: return "speed";
    case RouteObjective::quality: return "quality";
  }
  return "balanced";
}

std::optional<RouteObjective> parse_route_objective(std::string_view text) noexcept {
  if (text == "balanced") return RouteObjective::balanced;
  if (text == "cost") return RouteObjective::cost;
  if (text == "speed") return RouteObjective::speed;
  if (text == "quality") return RouteObjective::quality;
  return std::nullopt;
}

std::string_view to_string(Balancing b) noexcept {
  switch (b) {
    case Balancing::weighted: return "weighted";
    case Balancing::least_in_flight: return "least_in_flight";
    case Balancing::latency: return "latency";
    case Balancing::cost: return "cost";
    case Balancing::headroom: return "headroom";
  }
  return "weighted";
}

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
