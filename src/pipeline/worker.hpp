#pragma once
// Per-worker mutable state. Each worker thread runs one event loop and owns one of these:
// nothing here is shared across threads, so the hot path takes no lock.
#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <string>

#include "core/random.hpp"
#include "providers/http/client.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::pipeline {

struct Worker {
  Worker(boost::asio::any_io_executor ex, unsigned i, telemetry::Shard& shard, std::uint64_t seed)
      : executor(ex), index(i), pool(ex, 64, std::chrono::seconds(30)), random(seed), metrics(shard) {}

  std::string next_request_id();

  boost::asio::any_io_executor executor;
  unsigned index;
  providers::http::Pool pool;
  FastRandom random;
  telemetry::Shard& metrics;
  std::uint64_t requests = 0;
  bool access_log = true;
};

}  // namespace bulwark::pipeline
