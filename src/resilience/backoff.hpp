#pragma once
// Exponential backoff with "full jitter" (AWS Architecture Blog, 2015): the n-th retry
// waits uniform(0, min(cap, base * 2^n)). Spreading retries over the whole interval
// de-synchronises clients that failed together.
#include <cstdint>

#include "core/clock.hpp"
#include "core/random.hpp"

namespace bulwark::resilience {

struct BackoffPolicy {
  Duration base = std::chrono::milliseconds(250);
  Duration cap = std::chrono::seconds(8);
};

/// min(cap, base * 2^retry): the upper bound of the delay before retry number `retry`
/// (0 for the first retry). Saturates instead of overflowing for large `retry`.
Duration backoff_ceiling(const BackoffPolicy& p, std::uint32_t retry) noexcept;

/// A delay drawn uniformly from [0, backoff_ceiling(p, retry)).
Duration backoff_delay(const BackoffPolicy& p, std::uint32_t retry, Random& random) noexcept;

}  // namespace bulwark::resilience
