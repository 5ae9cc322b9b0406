#include "resilience/backoff.hpp"

#include <algorithm>

namespace bulwark::resilience {

Duration backoff_ceiling(const BackoffPolicy& p, std::uint32_t retry) noexcept {
  const auto base = std::max<Duration::rep>(p.base.count(), 0);
  const auto cap = std::max<Duration::rep>(p.cap.count(), 0);
  if (base == 0 || cap == 0) return Duration::zero();
  // base << retry would overflow past the cap; test against cap >> retry instead.
  if (retry >= 62 || base > (cap >> retry)) return Duration{cap};
  return Duration{std::min(cap, base << retry)};
}

Duration backoff_delay(const BackoffPolicy& p, std::uint32_t retry, Random& random) noexcept {
  const Duration ceiling = backoff_ceiling(p, retry);
  const auto d = static_cast<Duration::rep>(static_cast<double>(ceiling.count()) * random.uniform());
  // uniform() < 1, but rounding of a large product may still reach the ceiling.
  return Duration{std::min(d, std::max<Duration::rep>(ceiling.count() - 1, 0))};
}

}  // namespace bulwark::resilience
