#pragma once
// `bulwark route score` and `bulwark route explain` (docs/routing.md, "Offline CLI"): run a
// routed model's policy over prompts without a server.
#include <iosfwd>
#include <optional>
#include <span>
#include <string_view>

#include "router/policy.hpp"

namespace bulwark::app {

// `args` are the words after "route". Returns the process exit code (0 ok, 1 failure,
// 2 usage error). Reads stdin for `score` (and for `explain` without a PROMPT).
int route_command(std::span<const std::string_view> args, std::istream& in, std::ostream& out, std::ostream& err);

// JSON lines {"id": ..., "prompt": "..."} in, {"id": ..., "score": ..., "tier": "..."} out.
// A bad line gets "line N: ..." on `err` and is skipped. Returns the number of bad lines.
std::size_t route_score(const router::RoutingPolicy& policy, std::optional<router::Objective> objective,
                        std::istream& in, std::ostream& out, std::ostream& err);

// The decision for one prompt and the features that decided it (top `top_k`).
void route_explain(const router::RoutingPolicy& policy, std::optional<router::Objective> objective,
                   std::string_view prompt, std::ostream& out, std::size_t top_k = 10);

// The features the offline commands use for a bare prompt: it is the last user message,
// and the input-token estimate is that of a one-message request.
router::RequestFeatures prompt_features(std::string_view prompt);

extern const char* const kRouteUsage;

}  // namespace bulwark::app
