#pragma once
// The process: worker threads each running their own event loop with their own
// SO_REUSEPORT listener (the kernel spreads connections), signal handling for graceful
// shutdown (SIGTERM/SIGINT) and configuration reload (SIGHUP).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "config/config.hpp"
#include "pipeline/runtime.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::server {

// The current Runtime. Workers cache it and re-read only when the generation moves, so
// the hot path costs one relaxed atomic load instead of a lock or a refcount bump.
class RuntimeHolder {
 public:
  explicit RuntimeHolder(std::shared_ptr<const pipeline::Runtime> rt) : runtime_(std::move(rt)) {}
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const pipeline::Runtime> get() const {
    std::lock_guard lock(mutex_);
    return runtime_;
  }
  void set(std::shared_ptr<const pipeline::Runtime> rt) {
    std::lock_guard lock(mutex_);
    runtime_ = std::move(rt);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const pipeline::Runtime> runtime_;
  std::atomic<std::uint64_t> generation_{1};
};

struct ServeOptions {
  std::string config_path;
  unsigned workers = 0;             // overrides the config when non-zero
  std::string listen_override;      // host:port, overrides the config when set
};

// Runs until SIGTERM/SIGINT, then drains. Returns the process exit code.
int serve(const ServeOptions& options);

}  // namespace bulwark::server
