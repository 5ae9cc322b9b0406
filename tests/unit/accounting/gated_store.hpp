#pragma once
// A Store that forwards to a real one but can hold the writer inside append() until
// released, to make batching and crash scenarios deterministic.
#include <condition_variable>
#include <mutex>

#include "storage/store.hpp"

namespace bulwark::test {

class GatedStore final : public storage::Store {
 public:
  explicit GatedStore(storage::Store& inner) : inner_(inner) {}

  void close_gate() {
    std::lock_guard l(mu_);
    open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Blocks until a writer is waiting at the closed gate.
  void wait_for_waiter() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return waiting_ > 0; });
  }
  int appends() const {
    std::lock_guard l(mu_);
    return appends_;
  }

  int schema_version() const noexcept override { return inner_.schema_version(); }
  Status insert_key(const storage::KeyRecord& k) override { return inner_.insert_key(k); }
  Status update_key(const storage::KeyRecord& k) override { return inner_.update_key(k); }
  Result<std::optional<storage::KeyRecord>> get_key(std::string_view id) override { return inner_.get_key(id); }
  Result<std::optional<storage::KeyRecord>> find_key_by_hash(std::string_view h) override {
    return inner_.find_key_by_hash(h);
  }
  Result<std::vector<storage::KeyRecord>> list_keys(std::optional<std::string_view> t) override {
    return inner_.list_keys(t);
  }
  Status upsert_team(const storage::TeamRecord& t) override { return inner_.upsert_team(t); }
  Result<std::optional<storage::TeamRecord>> get_team(std::string_view id) override { return inner_.get_team(id); }
  Result<std::vector<storage::TeamRecord>> list_teams() override { return inner_.list_teams(); }
  Result<std::uint64_t> keys_version() override { return inner_.keys_version(); }
  Result<storage::AppendResult> append(std::span<const storage::SpendEntry> s,
                                       std::span<const storage::AuditRow> a) override {
    {
      std::unique_lock l(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(l, [&] { return open_; });
      --waiting_;
      ++appends_;
    }
    return inner_.append(s, a);
  }
  Result<std::vector<storage::SpendAggregate>> spend_report(const storage::SpendQuery& q) override {
    return inner_.spend_report(q);
  }
  Result<std::int64_t> spent_since(storage::SpendScope s, std::string_view id, storage::UnixMillis t) override {
    return inner_.spent_since(s, id, t);
  }
  Result<std::int64_t> spend_entry_count() override { return inner_.spend_entry_count(); }
  Result<std::optional<storage::AuditRow>> last_audit() override { return inner_.last_audit(); }
  Result<std::vector<storage::AuditRow>> audit_rows(std::int64_t f, std::size_t n) override {
    return inner_.audit_rows(f, n);
  }

 private:
  storage::Store& inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int waiting_ = 0;
  int appends_ = 0;
};

}  // namespace bulwark::test
