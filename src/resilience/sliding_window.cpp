#include "resilience/sliding_window.hpp"

namespace bulwark::resilience {

CallWindow::CallWindow(WindowKind kind, std::uint32_t size)
    : kind_(kind),
      calls_(kind == WindowKind::count_based ? std::max<std::uint32_t>(size, 1) : 0),
      seconds_(kind == WindowKind::time_based ? size : 1) {}

void CallWindow::record(TimePoint now, bool failure, bool slow) noexcept {
  const WindowStats one{1, failure ? 1U : 0U, slow ? 1U : 0U};
  if (kind_ == WindowKind::time_based) {
    seconds_.add(second_of(now), one);
    return;
  }
  auto& slot = calls_[next_];
  if (count_total_.calls == calls_.size()) {
    // The ring is full: the oldest call (in this slot) leaves the window.
    count_total_ -= WindowStats{1, (slot & kFailure) ? 1U : 0U, (slot & kSlow) ? 1U : 0U};
  }
  slot = static_cast<std::uint8_t>((failure ? kFailure : 0) | (slow ? kSlow : 0));
  count_total_ += one;
  next_ = (next_ + 1) % calls_.size();
}

WindowStats CallWindow::stats(TimePoint now) noexcept {
  if (kind_ == WindowKind::time_based) return seconds_.total(second_of(now));
  return count_total_;
}

void CallWindow::clear() noexcept {
  std::fill(calls_.begin(), calls_.end(), std::uint8_t{0});
  next_ = 0;
  count_total_ = {};
  seconds_.clear();
}

}  // namespace bulwark::resilience
