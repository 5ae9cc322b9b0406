#pragma once
// The admin API's handlers, independent of the server: each returns the status and JSON
// body to send. All of them need the master key (`Authorization: Bearer KEY`).
#include <string>
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

}  // namespace bulwark::pipeline
