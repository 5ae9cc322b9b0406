#include "accounting/budget.hpp"

#include <limits>
#include <utility>

namespace bulwark::accounting {

struct Reservation::State {
  std::mutex mu;
  storage::BudgetPeriod period = storage::BudgetPeriod::month;
  storage::UnixMillis period_start = 0;
  storage::UnixMillis period_end = 0;  // exclusive; 0 until the first roll works it out
  std::int64_t budget = 0;
  std::int64_t spent = 0;
  std::int64_t reserved = 0;
};

storage::UnixMillis period_start(storage::BudgetPeriod period,
                                 std::chrono::system_clock::time_point t) noexcept {
  using namespace std::chrono;
  const sys_days day = floor<days>(t);
  switch (period) {
    case storage::BudgetPeriod::day:
      return duration_cast<milliseconds>(day.time_since_epoch()).count();
    case storage::BudgetPeriod::week: {
      const weekday wd{day};
      const sys_days monday = day - days{(wd.c_encoding() + 6) % 7};
      return duration_cast<milliseconds>(monday.time_since_epoch()).count();
    }
    case storage::BudgetPeriod::month: {
      const year_month_day ymd{day};
      const sys_days first{ymd.year() / ymd.month() / 1};
      return duration_cast<milliseconds>(first.time_since_epoch()).count();
    }
    case storage::BudgetPeriod::total: return 0;
  }
  return 0;
}

namespace {

// Start of the period after the one starting at `start`.
storage::UnixMillis next_period_start(storage::BudgetPeriod period, storage::UnixMillis start) noexcept {
  using namespace std::chrono;
  constexpr storage::UnixMillis kDay = 86'400'000;
  switch (period) {
    case storage::BudgetPeriod::day: return start + kDay;
    case storage::BudgetPeriod::week: return start + 7 * kDay;
    case storage::BudgetPeriod::month: {
      const year_month_day ymd{floor<days>(sys_time<milliseconds>(milliseconds(start)))};
      const sys_days first{(ymd.year() / ymd.month() / 1) + months{1}};
      return duration_cast<milliseconds>(first.time_since_epoch()).count();
    }
    case storage::BudgetPeriod::total: return std::numeric_limits<storage::UnixMillis>::max();
  }
  return 0;
}

}  // namespace

void Reservation::take(Reservation& o) noexcept {
  tracker_ = std::exchange(o.tracker_, nullptr);
  amount_ = o.amount_;
  n_states_ = std::exchange(o.n_states_, 0);
  for (std::size_t i = 0; i < n_states_; ++i) states_[i] = std::move(o.states_[i]);
}

Reservation::Reservation(Reservation&& o) noexcept { take(o); }

Reservation& Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    if (tracker_ != nullptr) tracker_->release(*this, 0, false);
    take(o);
  }
  return *this;
}

Reservation::~Reservation() {
  if (tracker_ != nullptr) tracker_->release(*this, 0, false);
}

// Calendar arithmetic only when `now` has left the period the state holds (or is before
// it: a wall clock stepped back), not on every reservation and settlement.
void BudgetTracker::roll(State& st, std::chrono::system_clock::time_point now) noexcept {
  const storage::UnixMillis ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (ms >= st.period_start && ms < st.period_end) return;
  const storage::UnixMillis start = period_start(st.period, now);
  if (st.period_start != start) {
    st.period_start = start;
    st.spent = 0;
  }
  st.period_end = next_period_start(st.period, start);
}

Result<std::shared_ptr<BudgetTracker::State>> BudgetTracker::state_for(const BudgetSubject& s) {
  StateMap& states = states_of(s.scope);
  {
    std::shared_lock lock(mu_);
    if (auto it = states.find(s.id); it != states.end() && it->second->period == s.period) {
      return it->second;
    }
  }
  // First sight (or the period kind changed): recover this period's spend. The store is
  // read outside the map lock; a racing first request for the same subject finds the
  // entry the winner inserted.
  auto st = std::make_shared<State>();
  st->period = s.period;
  st->period_start = period_start(s.period, clock_.wall());
  if (store_ != nullptr) {
    auto spent = store_->spent_since(s.scope, s.id, st->period_start);
    if (!spent) return std::unexpected(spent.error());
    st->spent = *spent;
  }
  std::unique_lock lock(mu_);
  auto [it, inserted] = states.try_emplace(std::string(s.id), st);
  if (!inserted && it->second->period != s.period) {
    // Reservations in flight keep a pointer to the old state; they settle against it.
    it->second = st;
  }
  return it->second;
}

Result<Reservation> BudgetTracker::reserve(std::span<const BudgetSubject> subjects,
                                           std::int64_t amount) {
  amount = std::max<std::int64_t>(amount, 0);
  if (subjects.size() > Reservation::kMaxSubjects)
    return std::unexpected(Error::gateway(ErrorKind::internal, "a budget reservation names more subjects than it can hold"));
  Reservation r;
  r.amount_ = amount;
  const auto now = clock_.wall();
  for (const auto& s : subjects) {
    auto st = state_for(s);
    if (!st) {
      r.tracker_ = this;  // release what was taken so far
      return std::unexpected(st.error());
    }
    State& state = **st;
    std::lock_guard lock(state.mu);
    roll(state, now);
    state.budget = s.budget_nano_usd;
    if (state.spent + state.reserved + amount > state.budget) {
      r.tracker_ = this;
      Error e = Error::client(ErrorKind::budget_exceeded,
                              std::string(s.scope == storage::SpendScope::key ? "key" : "team") +
                                  " budget exceeded for this " + std::string(storage::to_string(s.period)));
      return std::unexpected(std::move(e));
    }
    state.reserved += amount;
    r.states_[r.n_states_++] = std::move(*st);
  }
  r.tracker_ = this;
  return r;
}

void BudgetTracker::release(Reservation& r, std::int64_t actual, bool add_spend) noexcept {
  const auto now = clock_.wall();
  for (std::size_t i = 0; i < r.n_states_; ++i) {
    State& st = *r.states_[i];
    std::lock_guard lock(st.mu);
    roll(st, now);
    st.reserved -= r.amount_;
    if (add_spend) st.spent += actual;
    r.states_[i].reset();
  }
  r.n_states_ = 0;
  r.tracker_ = nullptr;
}

void BudgetTracker::settle(Reservation& r, std::int64_t actual) {
  if (r.tracker_ == nullptr) return;
  release(r, std::max<std::int64_t>(actual, 0), true);
}

void BudgetTracker::charge(std::span<const BudgetSubject> subjects, std::int64_t nano_usd) {
  const auto now = clock_.wall();
  for (const auto& s : subjects) {
    auto st = state_for(s);
    if (!st) continue;  // the ledger still records it; recovery will count it
    std::lock_guard lock((*st)->mu);
    roll(**st, now);
    (*st)->spent += nano_usd;
  }
}

Status BudgetTracker::recover(std::span<const BudgetSubject> subjects) {
  for (const auto& s : subjects) {
    if (auto st = state_for(s); !st) return std::unexpected(st.error());
  }
  return {};
}

std::optional<BudgetUsage> BudgetTracker::usage(storage::SpendScope scope, std::string_view id) {
  std::shared_ptr<State> st;
  {
    std::shared_lock lock(mu_);
    const StateMap& states = states_of(scope);
    auto it = states.find(id);
    if (it == states.end()) return std::nullopt;
    st = it->second;
  }
  std::lock_guard lock(st->mu);
  roll(*st, clock_.wall());
  return BudgetUsage{st->spent, st->reserved, st->budget, st->period_start};
}

}  // namespace bulwark::accounting
