#pragma once
// Spend budgets per key and per team, enforced on the request path in memory.
//
// Admission reserves the request's maximum cost; completion settles the true cost and
// releases the rest. A reservation is refused when spent + reserved + amount > budget,
// checked and applied under the subject's mutex, so any number of concurrent requests
// can commit at most the budget. Spend exceeds the budget only if a settled cost is
// larger than its reservation (the maximum was underestimated).
//
// Periods are calendar periods in UTC: day, ISO week (from Monday), month, or total.
// At a period boundary spent restarts from zero; reservations in flight stay reserved
// and their cost lands in the period in which they settle (the ledger times an entry at
// completion too, so memory and store agree after a restart).
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/store.hpp"

namespace bulwark::accounting {

// Start of the period containing t, in Unix milliseconds (UTC). total: 0.
storage::UnixMillis period_start(storage::BudgetPeriod period,
                                 std::chrono::system_clock::time_point t) noexcept;

struct BudgetSubject {
  storage::SpendScope scope = storage::SpendScope::key;
  std::string_view id;  // valid for the call it is passed to; nothing keeps it
  std::int64_t budget_nano_usd = 0;
  storage::BudgetPeriod period = storage::BudgetPeriod::month;
};

struct BudgetUsage {
  std::int64_t spent_nano_usd = 0;
  std::int64_t reserved_nano_usd = 0;
  std::int64_t budget_nano_usd = 0;
  storage::UnixMillis period_start = 0;
};

class BudgetTracker;

// Move-only; releases its amount if dropped without settle (e.g. the request failed
// before any cost was incurred).
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& o) noexcept;
  Reservation& operator=(Reservation&& o) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation();

  std::int64_t amount() const noexcept { return amount_; }
  bool active() const noexcept { return tracker_ != nullptr; }

  // Subjects one reservation holds at most (a request has a key and a team): held inline,
  // so reserving allocates nothing.
  static constexpr std::size_t kMaxSubjects = 4;

 private:
  friend class BudgetTracker;
  struct State;
  void take(Reservation& o) noexcept;
  BudgetTracker* tracker_ = nullptr;
  std::int64_t amount_ = 0;
  std::size_t n_states_ = 0;
  std::array<std::shared_ptr<State>, kMaxSubjects> states_{};
};

class BudgetTracker {
 public:
  // With a store, a subject seen for the first time has its spend for the current period
  // loaded from the store's budget counters (use recover() at start to do this ahead of
  // traffic). Without one, spend starts at zero.
  explicit BudgetTracker(const Clock& clock, storage::Store* store = nullptr) noexcept
      : clock_(clock), store_(store) {}

  // Fails with budget_exceeded (naming the subject) if any subject cannot take amount;
  // with internal for more than Reservation::kMaxSubjects subjects.
  Result<Reservation> reserve(std::span<const BudgetSubject> subjects, std::int64_t amount_nano_usd);
  // Releases the reservation and adds the true cost to each subject's spend.
  void settle(Reservation& r, std::int64_t actual_nano_usd);
  // Spend recorded outside a reservation (e.g. an estimate for a stream cut short).
  void charge(std::span<const BudgetSubject> subjects, std::int64_t nano_usd);

  Status recover(std::span<const BudgetSubject> subjects);
  std::optional<BudgetUsage> usage(storage::SpendScope scope, std::string_view id);

 private:
  friend class Reservation;
  using State = Reservation::State;
  Result<std::shared_ptr<State>> state_for(const BudgetSubject& s);
  void roll(State& st, std::chrono::system_clock::time_point now) noexcept;
  void release(Reservation& r, std::int64_t actual, bool add_spend) noexcept;
  // Ids looked up as string_views, without building a key string per request.
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using StateMap = std::unordered_map<std::string, std::shared_ptr<State>, IdHash, std::equal_to<>>;
  StateMap& states_of(storage::SpendScope scope) noexcept { return states_[static_cast<std::size_t>(scope)]; }

  const Clock& clock_;
  storage::Store* store_;
  std::shared_mutex mu_;
  std::array<StateMap, 2> states_;  // by scope: keys, teams
};

}  // namespace bulwark::accounting
