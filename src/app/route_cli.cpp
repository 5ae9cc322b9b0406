#include "app/route_cli.hpp"

#include <simdjson.h>

#include <charconv>
#include <cstdio>
#include <istream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/json_write.hpp"

namespace bulwark::app {

const char* const kRouteUsage =
    "  bulwark route score --config FILE --model NAME [--objective OBJ]\n"
    "      Score JSON lines {\"id\": ..., \"prompt\": \"...\"} from stdin; print\n"
    "      {\"id\": ..., \"score\": ..., \"tier\": \"...\"} per line (higher score: stronger model).\n"
    "  bulwark route explain --config FILE --model NAME [--objective OBJ] [--top K] [PROMPT]\n"
    "      Print the routing decision for one prompt (PROMPT, else stdin) and the features\n"
    "      that decided it. OBJ: balanced | cost | speed | quality.\n";

router::RequestFeatures prompt_features(std::string_view prompt) {
  router::RequestFeatures f;
  f.last_user_message = prompt;
  f.input_tokens = router::estimate_tokens_from_bytes(prompt.size()) + router::kTokensPerMessage;
  return f;
}

namespace {

void append_double(std::string& out, double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 6);
  if (ec == std::errc{}) out.append(buf, p);
}

std::string_view source_name(router::Decision::Source s) {
  switch (s) {
    case router::Decision::Source::rule: return "rule";
    case router::Decision::Source::score: return "complexity score";
    case router::Decision::Source::objective: return "objective's fixed tier";
    case router::Decision::Source::default_tier: return "default tier";
  }
  return "?";
}

}  // namespace

std::size_t route_score(const router::RoutingPolicy& policy, std::optional<router::Objective> objective,
                        std::istream& in, std::ostream& out, std::ostream& err) {
  simdjson::dom::parser parser;
  std::string line, buf;
  std::size_t bad = 0, n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    simdjson::dom::element doc;
    auto fail = [&](std::string_view why) {
      ++bad;
      err << "line " << n << ": " << why << "\n";
    };
    if (parser.parse(line).get(doc)) {
      fail("not valid JSON");
      continue;
    }
    simdjson::dom::element id;
    std::string_view prompt;
    if (!doc.is_object()) {
      fail("expected a JSON object");
      continue;
    }
    if (doc["id"].get(id)) {
      fail("missing \"id\"");
      continue;
    }
    if (doc["prompt"].get_string().get(prompt)) {
      fail("missing or non-string \"prompt\"");
      continue;
    }
    const router::RequestFeatures f = prompt_features(prompt);
    const router::Decision d = policy.decide(f, objective);
    buf.clear();
    buf += "{\"id\":";
    buf += simdjson::minify(id);
    buf += ",\"score\":";
    if (d.source == router::Decision::Source::score) append_double(buf, d.score);
    else if (policy.scorer()) append_double(buf, policy.scorer()->score(prompt));
    else buf += "null";
    buf += ",\"tier\":";
    json::append_string(buf, policy.tier_name(d.tier));
    buf += "}\n";
    out << buf;
  }
  out.flush();
  return bad;
}

void route_explain(const router::RoutingPolicy& policy, std::optional<router::Objective> objective,
                   std::string_view prompt, std::ostream& out, std::size_t top_k) {
  const router::RequestFeatures f = prompt_features(prompt);
  const router::Decision d = policy.decide(f, objective);
  out << "model:      " << policy.model() << "\n";
  out << "tier:       " << policy.tier_name(d.tier) << " (" << d.tier + 1 << " of " << policy.tier_count() << ")\n";
  out << "decided by: " << source_name(d.source);
  if (d.source == router::Decision::Source::rule) out << " '" << d.rule << "'";
  out << "\n";
  out << "objective:  " << config::to_string(d.objective) << "\n";
  const auto th = policy.thresholds(d.objective);
  if (!th.empty()) {
    out << "thresholds:";
    for (std::size_t i = 0; i < th.size(); ++i)
      out << " " << policy.tier_name(i) << " < " << th[i] << " <=";
    out << " " << policy.tier_name(th.size()) << "\n";
  }
  out << "header:     " << router::kRouteHeader << ": " << d.header << "\n";
  out << "input tokens (estimate): " << f.input_tokens << "\n";
  if (const router::ComplexityScorer* s = policy.scorer()) {
    const router::Explanation e = s->explain(prompt, top_k);
    char line[256];
    std::snprintf(line, sizeof line, "score:      %.4f (logit %.4f = bias %.4f + features)\n", e.score, e.logit, e.bias);
    out << line;
    out << "top features (contribution to the logit; + pushes to a stronger tier):\n";
    for (const router::Contribution& c : e.top) {
      std::snprintf(line, sizeof line, "  %+8.4f  %-32s value %.4f x weight %+.4f\n", c.contribution, c.feature.c_str(),
                    c.value, c.weight);
      out << line;
    }
    std::snprintf(line, sizeof line, "  %+8.4f  (all other features)\n", e.rest);
    out << line;
  }
}

int route_command(std::span<const std::string_view> args, std::istream& in, std::ostream& out, std::ostream& err) {
  auto usage = [&](const std::string& msg) {
    err << "bulwark route: " << msg << "\n\nUsage:\n" << kRouteUsage;
    return 2;
  };
  if (args.empty()) return usage("missing subcommand (score or explain)");
  const std::string_view sub = args[0];
  if (sub != "score" && sub != "explain") return usage("unknown subcommand " + std::string(sub));
  std::string config_path, model;
  std::optional<router::Objective> objective;
  std::size_t top_k = 10;
  std::vector<std::string_view> positional;
  for (std::size_t i = 1; i < args.size(); ++i) {
    auto value = [&]() -> std::optional<std::string_view> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    const std::string_view a = args[i];
    if (a == "--config" || a == "--model" || a == "--objective" || a == "--top") {
      auto v = value();
      if (!v) return usage(std::string(a) + " needs a value");
      if (a == "--config") config_path = *v;
      else if (a == "--model") model = *v;
      else if (a == "--objective") {
        objective = router::parse_objective(*v);
        if (!objective) return usage("--objective must be balanced, cost, speed or quality");
      } else {
        auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), top_k);
        if (ec != std::errc{} || p != v->data() + v->size() || top_k == 0) return usage("--top takes a positive number");
      }
    } else if (a.starts_with("--")) {
      return usage("unknown option " + std::string(a));
    } else {
      positional.push_back(a);
    }
  }
  if (config_path.empty()) return usage("needs --config FILE");
  if (model.empty()) return usage("needs --model NAME");
  if (sub == "score" && !positional.empty()) return usage("score reads prompts from stdin only");
  if (positional.size() > 1) return usage("explain takes one PROMPT (quote it)");

  auto cfg = config::load_file(config_path);
  if (!cfg) {
    for (const auto& e : cfg.error()) err << e.to_string(config_path) << "\n";
    return 1;
  }
  const config::Model* m = (*cfg)->find_model(model);
  if (!m) {
    err << "bulwark route: no model named '" << model << "' in " << config_path << "\n";
    return 1;
  }
  if (!m->router) {
    err << "bulwark route: model '" << model << "' is not a routed model (it has no router: block)\n";
    return 1;
  }
  auto policy = router::RoutingPolicy::build(*m);
  if (!policy) {
    err << "bulwark route: " << policy.error().message << "\n";
    return 1;
  }
  if (sub == "score") {
    const std::size_t bad = route_score(*policy, objective, in, out, err);
    return bad == 0 ? 0 : 1;
  }
  std::string prompt;
  if (!positional.empty()) prompt.assign(positional[0]);
  else {
    prompt.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();  // echo's newline
  }
  route_explain(*policy, objective, prompt, out, top_k);
  return 0;
}

}  // namespace bulwark::app
