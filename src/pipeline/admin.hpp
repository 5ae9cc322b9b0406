#pragma once
// The admin API's handlers, independent of the server: each returns the status and JSON
// body to send. All of them need the master key (`Authorization: Bearer KEY`).
#include <optional>
#include <string>

#include "core/percent.hpp"
#include <string_view>

#include "pipeline/runtime.hpp"

namespace bulwark::pipeline {

struct AdminResponse {
  unsigned status = 200;
  std::string body;  // JSON
};

// GET /admin/targets: every target of the runtime's configuration with its breaker
// snapshot, window stats, latency percentiles, retry budget and resilience counters.
// `authorization` is the request's Authorization header (empty when absent). Without a
// valid master key: 401 in OpenAI's error shape.
AdminResponse admin_targets(const Runtime& runtime, std::string_view authorization);

// POST /admin/targets/{target}/{action}: an operator's control of one target's circuit
// breaker. `path` is the request path without its query. {target} is the target id
// ("provider/model"), percent-encoded or not: the action is the last path segment and
// everything between "/admin/targets/" and it is the id ("mock%2Fgpt-4o" and
// "mock/gpt-4o" name the same target). {action} is `force-open` (refuse every call until
// reset), `disable` (allow every call, never trip) or `reset` (CLOSED with a fresh
// window). Answers 200 with the target's previous and new breaker state; 401 without the
// master key, 400 for an unknown action or a malformed path, 404 for a target that is not
// in the runtime's configuration. Each action is logged (`admin_breaker_action`, with
// `request_id`; never the key) and, like every transition, published as an event.
AdminResponse admin_target_action(const Runtime& runtime, std::string_view authorization, std::string_view path,
                                  std::string_view request_id);

// The admin API's check: `Authorization: Bearer <master key>`, compared in constant time.
bool admin_authorized(const Runtime& runtime, std::string_view authorization);

using bulwark::percent_decode;  // core/percent.hpp: one path segment of an admin URL

}  // namespace bulwark::pipeline
