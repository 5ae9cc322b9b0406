#include "resilience/retry_budget.hpp"

#include <algorithm>

namespace bulwark::resilience {

Status BudgetPolicy::validate() const {
  if (!(ratio >= 0.0))
    return std::unexpected(Error::gateway(ErrorKind::internal, "budget ratio must be >= 0"));
  if (!(min_per_second >= 0.0))
    return std::unexpected(
        Error::gateway(ErrorKind::internal, "budget min_per_second must be >= 0"));
  if (window_seconds < 1)
    return std::unexpected(
        Error::gateway(ErrorKind::internal, "budget window_seconds must be >= 1"));
  return {};
}

BudgetPolicy default_retry_budget() noexcept { return BudgetPolicy{0.1, 1.0, 10}; }
BudgetPolicy default_hedge_budget() noexcept { return BudgetPolicy{0.05, 0.1, 10}; }

RatioBudget::RatioBudget(BudgetPolicy policy, const Clock& clock)
    : policy_(policy), clock_(clock), ring_(std::max<std::uint32_t>(policy.window_seconds, 1)) {}

double RatioBudget::allowed(const Counts& c) const noexcept {
  const double by_ratio = std::max(policy_.ratio, 0.0) * c.requests;
  const double floor = std::max(policy_.min_per_second, 0.0) * ring_.seconds();
  return std::max(by_ratio, floor);
}

void RatioBudget::record_request() noexcept {
  const auto s = second_of(clock_.now());
  std::lock_guard lock(mu_);
  ring_.add(s, Counts{1, 0});
}

bool RatioBudget::try_acquire() noexcept {
  const auto s = second_of(clock_.now());
  std::lock_guard lock(mu_);
  const Counts& total = ring_.total(s);
  // The epsilon absorbs rounding in ratio * requests (0.1 * 50 is not exactly 5).
  if (static_cast<double>(total.extras) + 1.0 > allowed(total) + 1e-9) {
    ++refused_;
    return false;
  }
  ring_.add(s, Counts{0, 1});
  return true;
}

BudgetSnapshot RatioBudget::snapshot() const {
  const auto s = second_of(clock_.now());
  std::lock_guard lock(mu_);
  const Counts& total = ring_.total(s);
  return BudgetSnapshot{total.requests, total.extras, allowed(total), refused_};
}

}  // namespace bulwark::resilience
