#include "mock/engine.hpp"

#include <chrono>

#include "core/random.hpp"
#include "core/json_write.hpp"

namespace bulwark::mock {
namespace {

std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string context_message(std::uint64_t window, std::uint64_t prompt) {
  return "This model's maximum context length is " + std::to_string(window) +
         " tokens. However, your messages resulted in " + std::to_string(prompt) +
         " tokens. Please reduce the length of the messages.";
}

}  // namespace

bool fires(const Trigger& t, const TriggerInput& in) {
  if (t.never) return false;
  if (in.attempt <= t.after) return false;
  if (t.times && in.attempt > t.after + *t.times) return false;
  if (t.fraction) {
    FastRandom coin(in.seed ^ fnv1a(in.model) ^ (in.attempt * 0x9e3779b97f4a7c15ULL) ^
                    (static_cast<std::uint64_t>(in.fault_index) << 56));
    if (!(coin.uniform() < *t.fraction)) return false;
  }
  if (t.flap_period) {
    const auto elapsed = std::chrono::duration_cast<Millis>(in.now - in.behavior_set_at);
    const auto period = t.flap_period->count();
    // Before the behaviour was set (clock skew in tests) counts as the faulty half.
    const auto phase = elapsed.count() < 0 ? 0 : elapsed.count() % period;
    if (phase >= period / 2) return false;
  }
  return true;
}

Engine::Engine(Config config, const Clock& clock, std::uint64_t seed, std::size_t record_limit)
    : clock_(clock), seed_(seed), record_limit_(record_limit) {
  const auto now = clock_.now();
  default_ = std::make_shared<const Entry>(Entry{std::move(config.default_behavior), now});
  for (auto& [name, b] : config.models)
    behaviors_.emplace(name, std::make_shared<const Entry>(Entry{std::move(b), now}));
}

std::shared_ptr<const Engine::Entry> Engine::resolve(std::string_view model) const {
  const auto it = behaviors_.find(model);
  return it == behaviors_.end() ? default_ : it->second;
}

Plan Engine::plan(const ChatRequest& req, const AuthState& auth) {
  Plan p;
  p.prompt_tokens = req.prompt_tokens;
  const auto now = clock_.now();
  const auto wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall().time_since_epoch()).count();

  std::lock_guard lock(mu_);
  auto entry = resolve(req.model);
  auto it = models_.find(req.model);
  if (it == models_.end()) it = models_.emplace(std::string(req.model), ModelState{}).first;
  ModelState& st = it->second;
  if (st.counted_for != entry) {
    st.counted_for = entry;
    st.attempt = 0;
  }
  p.attempt = ++st.attempt;
  const Behavior& b = entry->behavior;
  p.latency = b.latency;
  p.first_token = b.first_token;
  p.token_delay = b.token_delay;
  p.tokens = b.tokens;
  p.context_window = b.context_window;

  auto error = [&](ErrorType type, std::string msg) {
    p.kind = ActionKind::error;
    p.error = type;
    p.status = default_status(type);
    p.message = std::move(msg);
  };

  if (auth.required && !auth.valid) {
    // Real providers reject bad credentials at once, before any modelled latency.
    if (!auth.message.empty()) error(ErrorType::auth, std::string(auth.message));
    else
      error(ErrorType::auth, auth.present ? "Incorrect API key provided."
                                          : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
    p.status = auth.status;
    p.provider_type = auth.provider_type;
    p.latency = p.first_token = Millis{0};
  } else {
    for (std::size_t i = 0; i < b.faults.size(); ++i) {
      const Fault& f = b.faults[i];
      if (!fires(f.when, TriggerInput{p.attempt, now, entry->set_at, seed_, req.model, i})) continue;
      const Action& a = f.action;
      p.kind = a.kind;
      if (a.kind == ActionKind::error || a.kind == ActionKind::stream_error) {
        p.status = a.status;
        p.error = a.error;
        p.retry_after = a.retry_after;
        p.retry_after_in_ms = a.retry_after_in_ms;
      }
      p.after_tokens = a.after_tokens;
      if (a.latency) p.latency = *a.latency;
      if (a.first_token) p.first_token = *a.first_token;
      if (a.token_delay) p.token_delay = *a.token_delay;
      break;
    }
    const bool answering = p.kind != ActionKind::error && p.kind != ActionKind::reset &&
                           p.kind != ActionKind::hang;
    if (answering) {
      if (req.last_is_assistant && !b.prefill) {
        error(ErrorType::invalid_request,
              "This model does not support assistant prefill: the last message must not have role 'assistant'.");
      } else if (b.context_window > 0 && req.prompt_tokens > b.context_window) {
        error(ErrorType::context_length, context_message(b.context_window, req.prompt_tokens));
      } else {
        if (req.last_is_assistant && !req.last_content.empty())
          if (auto r = match_prefill(req.last_content, b.tokens)) p.resume = *r;
        p.completion_tokens = p.resume.remaining(b.tokens);
        if (req.max_tokens && *req.max_tokens < p.completion_tokens) {
          p.completion_tokens = *req.max_tokens;
          p.max_tokens_reached = true;
        }
        p.tool_call = b.tool_call;
        if (p.kind == ActionKind::omit_done && !req.stream) p.kind = ActionKind::none;
        // A mid-stream error has no stream to happen in: the error is the whole answer.
        if (p.kind == ActionKind::stream_error && !req.stream) p.kind = ActionKind::error;
      }
    }
    if (p.kind == ActionKind::error && p.message.empty() && p.error == ErrorType::context_length)
      p.message = context_message(b.context_window, req.prompt_tokens);
  }

  AttemptRecord rec;
  rec.attempt = p.attempt;
  rec.at_unix_ms = wall_ms;
  rec.outcome = name_of(p.kind);
  rec.status = (p.kind == ActionKind::reset || p.kind == ActionKind::hang) ? 0
               : p.kind == ActionKind::stream_error                         ? 200
                                                                            : p.status;
  if (p.kind == ActionKind::error || p.kind == ActionKind::stream_error) rec.error = p.error;
  rec.stream = req.stream;
  rec.authorization = auth.present;
  rec.format = req.format;
  {
    auto fit = formats_.find(req.format);
    if (fit == formats_.end()) fit = formats_.emplace(std::string(req.format), FormatCounts{}).first;
    ++fit->second.requests;
  }
  ++st.stats.attempts;
  if (st.stats.records.size() < record_limit_) st.stats.records.push_back(rec);
  else ++st.stats.records_dropped;
  return p;
}

void Engine::note_rejected(std::string_view format) {
  std::lock_guard lock(mu_);
  ++rejected_;
  auto fit = formats_.find(format);
  if (fit == formats_.end()) fit = formats_.emplace(std::string(format), FormatCounts{}).first;
  ++fit->second.rejected;
}

void Engine::note_request(std::string_view format, const LastRequest& r) {
  std::lock_guard lock(last_mu_);
  auto it = last_.find(format);
  if (it == last_.end()) it = last_.emplace(std::string(format), LastRequest{}).first;
  LastRequest& l = it->second;
  // assign() keeps each buffer's capacity: no allocation once warmed up.
  l.api.assign(r.api);
  l.method.assign(r.method);
  l.target.assign(r.target);
  l.model.assign(r.model);
  l.headers.assign(r.headers);
  l.body.assign(r.body);
  l.at_unix_ms = r.at_unix_ms;
}

namespace {

void append_last_request(std::string& out, const LastRequest& r) {
  out += "{\"api\":";
  json::append_string(out, r.api);
  out += ",\"method\":";
  json::append_string(out, r.method);
  out += ",\"target\":";
  json::append_string(out, r.target);
  out += ",\"model\":";
  json::append_string(out, r.model);
  out += ",\"at_ms\":";
  json::append_int(out, r.at_unix_ms);
  out += ",\"headers\":{";
  std::string_view hs = r.headers;
  bool first = true;
  while (!hs.empty()) {
    const auto nl = hs.find('\n');
    const std::string_view line = hs.substr(0, nl);
    hs = nl == std::string_view::npos ? std::string_view{} : hs.substr(nl + 1);
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos) continue;
    if (!first) out += ',';
    first = false;
    json::append_string(out, line.substr(0, colon));
    out += ':';
    json::append_string(out, line.substr(colon + 2));
  }
  out += "},\"body\":";
  json::append_string(out, r.body);
  out += '}';
}

}  // namespace

std::optional<std::string> Engine::last_request_json(std::string_view format) const {
  std::lock_guard lock(last_mu_);
  std::string out;
  if (!format.empty()) {
    const auto it = last_.find(format);
    if (it == last_.end()) return std::nullopt;
    append_last_request(out, it->second);
    return out;
  }
  out += '{';
  bool first = true;
  for (const auto& [name, r] : last_) {
    if (!first) out += ',';
    first = false;
    json::append_string(out, name);
    out += ':';
    append_last_request(out, r);
  }
  out += '}';
  return out;
}

void Engine::set_behavior(std::string_view model, Behavior b) {
  auto entry = std::make_shared<const Entry>(Entry{std::move(b), clock_.now()});
  std::lock_guard lock(mu_);
  if (model == "default") default_ = std::move(entry);
  else behaviors_.insert_or_assign(std::string(model), std::move(entry));
}

bool Engine::remove_behavior(std::string_view model) {
  std::lock_guard lock(mu_);
  if (model == "default") {
    default_ = std::make_shared<const Entry>(Entry{Behavior{}, clock_.now()});
    return true;
  }
  const auto it = behaviors_.find(model);
  if (it == behaviors_.end()) return false;
  behaviors_.erase(it);
  return true;
}

void Engine::reset_stats() {
  std::lock_guard lock(mu_);
  models_.clear();
  rejected_ = 0;
  formats_.clear();
  std::lock_guard last_lock(last_mu_);
  last_.clear();
}

std::string Engine::behaviors_json() const {
  Config c;
  {
    std::lock_guard lock(mu_);
    c.default_behavior = default_->behavior;
    for (const auto& [name, e] : behaviors_) c.models.emplace(name, e->behavior);
  }
  return to_json(c);
}

std::string Engine::stats_json() const {
  std::lock_guard lock(mu_);
  std::string out = "{\"rejected\":";
  json::append_int(out, rejected_);
  out += ",\"formats\":{";
  bool first_format = true;
  for (const auto& [name, f] : formats_) {
    if (!first_format) out += ',';
    first_format = false;
    json::append_string(out, name);
    out += ":{\"requests\":";
    json::append_int(out, f.requests);
    out += ",\"rejected\":";
    json::append_int(out, f.rejected);
    out += '}';
  }
  out += "},\"models\":{";
  bool first_model = true;
  for (const auto& [name, st] : models_) {
    if (!first_model) out += ',';
    first_model = false;
    json::append_string(out, name);
    out += ":{\"attempts\":";
    json::append_int(out, st.stats.attempts);
    out += ",\"current_attempt\":";
    json::append_int(out, st.attempt);
    out += ",\"records_dropped\":";
    json::append_int(out, st.stats.records_dropped);
    out += ",\"requests\":[";
    for (std::size_t i = 0; i < st.stats.records.size(); ++i) {
      const auto& r = st.stats.records[i];
      if (i) out += ',';
      out += "{\"attempt\":";
      json::append_int(out, r.attempt);
      out += ",\"at_ms\":";
      json::append_int(out, r.at_unix_ms);
      out += ",\"outcome\":";
      json::append_string(out, r.outcome);
      out += ",\"status\":";
      json::append_int(out, r.status);
      out += ",\"error\":";
      if (r.error) json::append_string(out, name_of(*r.error));
      else out += "null";
      out += ",\"stream\":";
      json::append_bool(out, r.stream);
      out += ",\"authorization\":";
      json::append_bool(out, r.authorization);
      out += ",\"format\":";
      json::append_string(out, r.format);
      out += '}';
    }
    out += "]}";
  }
  out += "}}";
  return out;
}

std::vector<std::string> Engine::model_names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  names.reserve(behaviors_.size());
  for (const auto& kv : behaviors_) names.push_back(kv.first);
  return names;
}

ModelStats Engine::stats_of(std::string_view model) const {
  std::lock_guard lock(mu_);
  const auto it = models_.find(model);
  return it == models_.end() ? ModelStats{} : it->second.stats;
}

std::uint64_t Engine::rejected() const {
  std::lock_guard lock(mu_);
  return rejected_;
}

}  // namespace bulwark::mock
