#include "mock/behavior.hpp"

#include <yaml-cpp/yaml.h>

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "core/json_write.hpp"

namespace bulwark::mock {
namespace {

struct ErrorRow {
  ErrorType type;
  std::string_view name;
  int status;
};
constexpr std::array kErrorRows{
    ErrorRow{ErrorType::rate_limit, "rate_limit", 429},
    ErrorRow{ErrorType::overloaded, "overloaded", 503},
    ErrorRow{ErrorType::server_error, "server_error", 500},
    ErrorRow{ErrorType::bad_gateway, "bad_gateway", 502},
    ErrorRow{ErrorType::unavailable, "unavailable", 503},
    ErrorRow{ErrorType::context_length, "context_length", 400},
    ErrorRow{ErrorType::content_filter, "content_filter", 400},
    ErrorRow{ErrorType::invalid_request, "invalid_request", 400},
    ErrorRow{ErrorType::auth, "auth", 401},
    ErrorRow{ErrorType::permission, "permission", 403},
    ErrorRow{ErrorType::not_found, "not_found", 404},
    ErrorRow{ErrorType::model_timeout, "model_timeout", 408},
    ErrorRow{ErrorType::model_error, "model_error", 424},
    ErrorRow{ErrorType::model_not_ready, "model_not_ready", 429},
};

std::string error_names() {
  std::string list;
  for (const auto& r : kErrorRows) {
    if (!list.empty()) list += ", ";
    list += r.name;
  }
  return list;
}

// Parsing failures unwind to the entry point as this, carrying the key path.
struct ParseError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ParseError{(path.empty() ? std::string("config") : path) + ": " + what};
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

void require_map(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) fail(path, "expected a mapping");
}

// Rejects keys outside `allowed` so a typo never silently does nothing.
void check_keys(const YAML::Node& node, const std::string& path,
                std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || a == key;
    if (!ok) {
      std::string list;
      for (auto a : allowed) {
        if (!list.empty()) list += ", ";
        list += a;
      }
      fail(path, "unknown key '" + key + "' (expected one of: " + list + ")");
    }
  }
}

const std::string& scalar(const YAML::Node& node, const std::string& path, const char* what,
                          bool quoted_ok = false) {
  // A quoted scalar has the non-specific tag "!": "8" is a string, not a number.
  if (!node.IsScalar() || (!quoted_ok && node.Tag() == "!"))
    fail(path, std::string("expected ") + what);
  return node.Scalar();
}

std::uint64_t get_uint(const YAML::Node& node, const std::string& path,
                       std::uint64_t max = UINT64_MAX) {
  const auto& s = scalar(node, path, "a non-negative integer");
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty())
    fail(path, "expected a non-negative integer, got '" + s + "'");
  if (v > max) fail(path, "must be at most " + std::to_string(max));
  return v;
}

bool get_bool(const YAML::Node& node, const std::string& path) {
  const auto& s = scalar(node, path, "true or false");
  if (s == "true") return true;
  if (s == "false") return false;
  fail(path, "expected true or false, got '" + s + "'");
}

double get_double(const YAML::Node& node, const std::string& path) {
  const auto& s = scalar(node, path, "a number");
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty() || !std::isfinite(v))
    fail(path, "expected a number, got '" + s + "'");
  return v;
}

Millis get_ms(const YAML::Node& node, const std::string& path) {
  // An hour bounds every delay: larger values are typos, and timers stay far from overflow.
  return Millis{static_cast<Millis::rep>(get_uint(node, path, 3'600'000))};
}

Trigger parse_trigger(const YAML::Node& node, const std::string& path) {
  require_map(node, path);
  check_keys(node, path, {"always", "times", "after", "fraction", "flap_period_ms"});
  if (node.size() == 0)
    fail(path, "needs at least one of always, times, after, fraction, flap_period_ms");
  Trigger t;
  if (auto n = node["always"]) {
    const bool v = get_bool(n, join(path, "always"));
    t.always = v;
    t.never = !v;
  }
  if (auto n = node["times"]) t.times = get_uint(n, join(path, "times"));
  if (auto n = node["after"]) t.after = get_uint(n, join(path, "after"));
  if (auto n = node["fraction"]) {
    const double f = get_double(n, join(path, "fraction"));
    if (f < 0.0 || f > 1.0) fail(join(path, "fraction"), "must be between 0 and 1");
    t.fraction = f;
  }
  if (auto n = node["flap_period_ms"]) {
    t.flap_period = get_ms(n, join(path, "flap_period_ms"));
    if (t.flap_period->count() < 2) fail(join(path, "flap_period_ms"), "must be at least 2");
  }
  return t;
}

Action parse_action(const YAML::Node& node, const std::string& path) {
  require_map(node, path);
  check_keys(node, path,
             {"status", "error", "retry_after_s", "retry_after_ms", "reset", "hang",
              "cut_after_tokens", "stall_after_tokens", "malformed_after_tokens", "omit_done",
              "error_after_tokens", "latency_ms", "first_token_ms", "token_delay_ms"});
  Action a;
  int kinds = 0;
  // error_after_tokens takes status/error as its error, not as a separate fault.
  const bool in_stream = static_cast<bool>(node["error_after_tokens"]);
  auto set_kind = [&](ActionKind k) {
    if (a.kind != k) ++kinds;
    a.kind = k;
  };
  if (auto n = node["status"]) {
    const auto s = get_uint(n, join(path, "status"), 599);
    if (s < 400) fail(join(path, "status"), "must be an error status (400-599)");
    a.status = static_cast<int>(s);
    if (!in_stream) set_kind(ActionKind::error);
  }
  if (auto n = node["error"]) {
    const auto& s = scalar(n, join(path, "error"), "an error name", true);
    const auto t = error_type_from_name(s);
    if (!t)
      fail(join(path, "error"), "unknown error '" + s + "' (expected one of: " + error_names() + ")");
    a.error = *t;
    if (!in_stream) set_kind(ActionKind::error);
  }
  if (in_stream) {
    a.after_tokens = static_cast<std::uint32_t>(
        get_uint(node["error_after_tokens"], join(path, "error_after_tokens"), kMaxTokens));
    if (!node["error"] && !node["status"]) a.error = ErrorType::overloaded;
    set_kind(ActionKind::stream_error);
  }
  if (a.kind == ActionKind::error || a.kind == ActionKind::stream_error) {
    if (a.status == 0) a.status = default_status(a.error);
    else if (!node["error"]) a.error = error_type_for_status(a.status);
  }
  if (node["retry_after_s"] && node["retry_after_ms"])
    fail(path, "give retry_after_s or retry_after_ms, not both");
  if (auto n = node["retry_after_s"])
    a.retry_after = Millis{static_cast<Millis::rep>(get_uint(n, join(path, "retry_after_s"), 86'400)) * 1000};
  if (auto n = node["retry_after_ms"]) {
    a.retry_after = get_ms(n, join(path, "retry_after_ms"));
    a.retry_after_in_ms = true;
  }
  if (a.retry_after && a.kind != ActionKind::error && a.kind != ActionKind::stream_error)
    fail(path, "retry_after_s/retry_after_ms need status or error");
  auto flag = [&](const char* key, ActionKind k) {
    if (auto n = node[key]) {
      if (!get_bool(n, join(path, key)))
        fail(join(path, key), "only true is meaningful; remove the key instead");
      set_kind(k);
    }
  };
  flag("reset", ActionKind::reset);
  flag("hang", ActionKind::hang);
  flag("omit_done", ActionKind::omit_done);
  auto after = [&](const char* key, ActionKind k) {
    if (auto n = node[key]) {
      a.after_tokens = static_cast<std::uint32_t>(get_uint(n, join(path, key), kMaxTokens));
      set_kind(k);
    }
  };
  after("cut_after_tokens", ActionKind::cut);
  after("stall_after_tokens", ActionKind::stall);
  after("malformed_after_tokens", ActionKind::malformed);
  if (kinds > 1)
    fail(path,
         "choose one of status/error, reset, hang, cut_after_tokens, stall_after_tokens, "
         "malformed_after_tokens, omit_done, error_after_tokens");
  if (auto n = node["latency_ms"]) a.latency = get_ms(n, join(path, "latency_ms"));
  if (auto n = node["first_token_ms"]) a.first_token = get_ms(n, join(path, "first_token_ms"));
  if (auto n = node["token_delay_ms"]) a.token_delay = get_ms(n, join(path, "token_delay_ms"));
  if (a.kind == ActionKind::none && !a.latency && !a.first_token && !a.token_delay)
    fail(path, "an action needs a fault (status, error, reset, hang, cut_after_tokens, "
               "stall_after_tokens, malformed_after_tokens, omit_done, error_after_tokens) or a "
               "timing override");
  return a;
}

ToolCall parse_tool_call(const YAML::Node& node, const std::string& path) {
  require_map(node, path);
  check_keys(node, path, {"name", "arguments", "legacy"});
  ToolCall call;
  if (!node["name"]) fail(path, "missing 'name'");
  call.name = scalar(node["name"], join(path, "name"), "a string", true);
  if (call.name.empty()) fail(join(path, "name"), "must not be empty");
  const auto args = node["arguments"];
  const auto apath = join(path, "arguments");
  if (!args) {
    call.arguments.emplace_back("{}");
  } else if (args.IsSequence()) {
    if (args.size() == 0) fail(apath, "expected at least one fragment");
    for (std::size_t i = 0; i < args.size(); ++i)
      call.arguments.push_back(scalar(args[i], apath + "[" + std::to_string(i) + "]", "a string", true));
  } else {
    call.arguments.push_back(scalar(args, apath, "a string or a list of strings", true));
  }
  if (auto n = node["legacy"]) call.legacy = get_bool(n, join(path, "legacy"));
  return call;
}

Behavior parse_behavior_node(const YAML::Node& node, const std::string& path) {
  Behavior b;
  if (node.IsNull()) return b;
  require_map(node, path);
  check_keys(node, path,
             {"tokens", "latency_ms", "first_token_ms", "token_delay_ms", "context_window",
              "prefill", "faults", "tool_call"});
  if (auto n = node["tokens"]) {
    b.tokens = static_cast<std::uint32_t>(get_uint(n, join(path, "tokens"), kMaxTokens));
    if (b.tokens == 0) fail(join(path, "tokens"), "must be at least 1");
  }
  if (auto n = node["latency_ms"]) b.latency = get_ms(n, join(path, "latency_ms"));
  if (auto n = node["first_token_ms"]) b.first_token = get_ms(n, join(path, "first_token_ms"));
  if (auto n = node["token_delay_ms"]) b.token_delay = get_ms(n, join(path, "token_delay_ms"));
  if (auto n = node["context_window"]) b.context_window = get_uint(n, join(path, "context_window"));
  if (auto n = node["prefill"]) b.prefill = get_bool(n, join(path, "prefill"));
  if (auto n = node["tool_call"]; n && !n.IsNull()) b.tool_call = parse_tool_call(n, join(path, "tool_call"));
  if (auto n = node["faults"]) {
    const auto fpath = join(path, "faults");
    if (!n.IsSequence()) fail(fpath, "expected a list of {when, action}");
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto ipath = fpath + "[" + std::to_string(i) + "]";
      const auto f = n[i];
      require_map(f, ipath);
      check_keys(f, ipath, {"when", "action"});
      if (!f["when"]) fail(ipath, "missing 'when'");
      if (!f["action"]) fail(ipath, "missing 'action'");
      b.faults.push_back(Fault{parse_trigger(f["when"], join(ipath, "when")),
                               parse_action(f["action"], join(ipath, "action"))});
    }
  }
  return b;
}

template <class F>
auto guarded(std::string_view text, F&& f) -> Result<decltype(f(YAML::Node{}))> {
  try {
    return f(YAML::Load(std::string(text)));
  } catch (const ParseError& e) {
    return std::unexpected(Error::client(ErrorKind::bad_request, e.message));
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::client(ErrorKind::bad_request, std::string("syntax error: ") + e.what()));
  }
}

void append_ms(std::string& out, std::string_view key, Millis v) {
  out += ",\"";
  out += key;
  out += "\":";
  json::append_int(out, v.count());
}

void append_trigger(std::string& out, const Trigger& t) {
  out += '{';
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += k;
    out += "\":";
  };
  if (t.always || t.never) {
    key("always");
    json::append_bool(out, t.always);
  }
  if (t.after != 0) {
    key("after");
    json::append_int(out, t.after);
  }
  if (t.times) {
    key("times");
    json::append_int(out, *t.times);
  }
  if (t.fraction) {
    key("fraction");
    json::append_double(out, *t.fraction);
  }
  if (t.flap_period) {
    key("flap_period_ms");
    json::append_int(out, t.flap_period->count());
  }
  out += '}';
}

void append_action(std::string& out, const Action& a) {
  out += '{';
  std::string body;
  switch (a.kind) {
    case ActionKind::none: break;
    case ActionKind::error:
      body += "\"status\":";
      json::append_int(body, a.status);
      body += ",\"error\":";
      json::append_string(body, name_of(a.error));
      if (a.retry_after) {
        if (a.retry_after_in_ms) {
          body += ",\"retry_after_ms\":";
          json::append_int(body, a.retry_after->count());
        } else {
          body += ",\"retry_after_s\":";
          json::append_int(body, a.retry_after->count() / 1000);
        }
      }
      break;
    case ActionKind::stream_error:
      body += "\"error_after_tokens\":";
      json::append_int(body, a.after_tokens);
      body += ",\"status\":";
      json::append_int(body, a.status);
      body += ",\"error\":";
      json::append_string(body, name_of(a.error));
      if (a.retry_after) {
        if (a.retry_after_in_ms) {
          body += ",\"retry_after_ms\":";
          json::append_int(body, a.retry_after->count());
        } else {
          body += ",\"retry_after_s\":";
          json::append_int(body, a.retry_after->count() / 1000);
        }
      }
      break;
    case ActionKind::reset: body += "\"reset\":true"; break;
    case ActionKind::hang: body += "\"hang\":true"; break;
    case ActionKind::omit_done: body += "\"omit_done\":true"; break;
    case ActionKind::cut:
    case ActionKind::stall:
    case ActionKind::malformed:
      body += '"';
      body += name_of(a.kind);
      body += "_after_tokens\":";
      json::append_int(body, a.after_tokens);
      break;
  }
  auto timing = [&](std::string_view k, const std::optional<Millis>& v) {
    if (!v) return;
    if (!body.empty()) body += ',';
    body += '"';
    body += k;
    body += "\":";
    json::append_int(body, v->count());
  };
  timing("latency_ms", a.latency);
  timing("first_token_ms", a.first_token);
  timing("token_delay_ms", a.token_delay);
  out += body;
  out += '}';
}

}  // namespace

std::string_view name_of(ErrorType t) noexcept {
  for (const auto& r : kErrorRows)
    if (r.type == t) return r.name;
  return "server_error";
}

std::optional<ErrorType> error_type_from_name(std::string_view name) noexcept {
  for (const auto& r : kErrorRows)
    if (r.name == name) return r.type;
  return std::nullopt;
}

int default_status(ErrorType t) noexcept {
  for (const auto& r : kErrorRows)
    if (r.type == t) return r.status;
  return 500;
}

ErrorType error_type_for_status(int status) noexcept {
  switch (status) {
    case 400: return ErrorType::invalid_request;
    case 401: return ErrorType::auth;
    case 429: return ErrorType::rate_limit;
    case 502: return ErrorType::bad_gateway;
    case 503: return ErrorType::unavailable;
    default: return status < 500 ? ErrorType::invalid_request : ErrorType::server_error;
  }
}

std::string_view name_of(ActionKind k) noexcept {
  switch (k) {
    case ActionKind::none: return "ok";
    case ActionKind::error: return "error";
    case ActionKind::reset: return "reset";
    case ActionKind::hang: return "hang";
    case ActionKind::cut: return "cut";
    case ActionKind::stall: return "stall";
    case ActionKind::malformed: return "malformed";
    case ActionKind::omit_done: return "omit_done";
    case ActionKind::stream_error: return "stream_error";
  }
  return "ok";
}

Result<Config> parse_config(std::string_view text) {
  return guarded(text, [](const YAML::Node& root) {
    Config c;
    if (root.IsNull()) return c;
    require_map(root, "");
    check_keys(root, "", {"default", "models"});
    if (auto n = root["default"]) c.default_behavior = parse_behavior_node(n, "default");
    if (auto n = root["models"]) {
      if (n.IsNull()) return c;
      require_map(n, "models");
      for (const auto& kv : n) {
        const auto name = kv.first.as<std::string>();
        if (name.empty()) fail("models", "a model name must not be empty");
        if (name == "default")
          fail("models", "'default' is reserved: put its behaviour under the top-level 'default' key");
        c.models.emplace(name, parse_behavior_node(kv.second, "models." + name));
      }
    }
    return c;
  });
}

Result<Config> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(Error::client(ErrorKind::bad_request, "cannot open config file '" + path + "'"));
  std::ostringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str());
  if (!c) c.error().message = path + ": " + c.error().message;
  return c;
}

Result<Behavior> parse_behavior(std::string_view text) {
  return guarded(text, [](const YAML::Node& root) {
    if (root.IsNull()) fail("behavior", "expected a mapping, got an empty body");
    return parse_behavior_node(root, "");
  });
}

void append_json(std::string& out, const Behavior& b) {
  out += "{\"tokens\":";
  json::append_int(out, b.tokens);
  append_ms(out, "latency_ms", b.latency);
  append_ms(out, "first_token_ms", b.first_token);
  append_ms(out, "token_delay_ms", b.token_delay);
  out += ",\"context_window\":";
  json::append_int(out, b.context_window);
  out += ",\"prefill\":";
  json::append_bool(out, b.prefill);
  out += ",\"faults\":[";
  for (std::size_t i = 0; i < b.faults.size(); ++i) {
    if (i) out += ',';
    out += "{\"when\":";
    append_trigger(out, b.faults[i].when);
    out += ",\"action\":";
    append_action(out, b.faults[i].action);
    out += '}';
  }
  out += ']';
  if (b.tool_call) {
    out += ",\"tool_call\":{\"name\":";
    json::append_string(out, b.tool_call->name);
    out += ",\"arguments\":[";
    for (std::size_t i = 0; i < b.tool_call->arguments.size(); ++i) {
      if (i) out += ',';
      json::append_string(out, b.tool_call->arguments[i]);
    }
    out += "],\"legacy\":";
    json::append_bool(out, b.tool_call->legacy);
    out += '}';
  }
  out += '}';
}

std::string to_json(const Config& c) {
  std::string out = "{\"default\":";
  append_json(out, c.default_behavior);
  out += ",\"models\":{";
  bool first = true;
  for (const auto& [name, b] : c.models) {
    if (!first) out += ',';
    first = false;
    json::append_string(out, name);
    out += ':';
    append_json(out, b);
  }
  out += "}}";
  return out;
}

}  // namespace bulwark::mock
