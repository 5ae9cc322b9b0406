#pragma once
// Resolves a presented key on the request path without touching the database.
//
// The cache holds an immutable snapshot (all keys and teams, indexed by secret hash)
// behind an atomic shared_ptr. A refresh builds a new snapshot and swaps it in; readers
// never wait on a refresh. Each reading thread also keeps the snapshot it last used and
// only re-reads the shared pointer when a generation counter moved, so the steady-state
// read is one atomic load, one SHA-256 and one hash-map probe.
//
// Invalidation: every key or team change bumps the store's keys_version in the same
// transaction. KeyService calls refresh() after its own changes; refresh_if_changed()
// polls the version (one indexed read) to pick up changes made by other processes.
// With a shared Postgres store the same version row works for polling, and LISTEN/NOTIFY
// on it (or a Redis pub/sub message) would let instances refresh at once.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/store.hpp"

namespace bulwark::auth {

struct ResolvedKey {
  storage::KeyRecord key;
  std::optional<storage::TeamRecord> team;
  // The rate limiter's subject ids ("key:<id>", "team:<id>" or empty), made once per
  // snapshot rather than per request.
  std::string key_subject;
  std::string team_subject;
  bool allows_model(std::string_view model) const noexcept;
};

// What one client connection last authenticated with: the presented secret and the key it
// resolved to, under the cache generation it was resolved in. The requests of a keep-alive
// connection almost always present the same secret, and the memo lets them skip the
// SHA-256 and the index probe (about a microsecond with cold caches, the largest single
// share of governance's per-request cost). Owned by the connection and used from its
// thread only; the secret is wiped when the memo is forgotten or destroyed, so it lives no
// longer than the connection whose requests carry it anyway.
class KeyMemo {
 public:
  KeyMemo() = default;
  ~KeyMemo() { forget(); }
  KeyMemo(const KeyMemo&) = delete;
  KeyMemo& operator=(const KeyMemo&) = delete;
  void forget() noexcept;

 private:
  friend class KeyCache;
  static constexpr std::size_t kCapacity = 64;  // a key is 44 bytes
  std::array<char, kCapacity> presented_{};
  std::size_t size_ = 0;
  std::uint64_t generation_ = 0;  // 0: empty
  std::shared_ptr<const ResolvedKey> key_;
  bool previous_ = false;
};

class KeyCache {
 public:
  KeyCache(storage::Store& store, const Clock& clock);
  ~KeyCache();
  KeyCache(const KeyCache&) = delete;
  KeyCache& operator=(const KeyCache&) = delete;

  // Reloads everything from the store and publishes a new snapshot.
  Status refresh();
  // Reloads only when the store's keys_version differs from the snapshot's. Returns
  // whether it reloaded.
  Result<bool> refresh_if_changed();

  // The presented secret (e.g. from "Authorization: Bearer bwk_..."). Fails with
  // unauthenticated for unknown, revoked and expired keys, and for a rotated-out secret
  // past its grace period. Never touches the store.
  Result<std::shared_ptr<const ResolvedKey>> resolve(std::string_view presented) const;
  // The same answer, taken from the connection's memo when it holds this secret under the
  // current generation (any key or team change moves the generation, so a revoked key is
  // refused as soon as the cache knows it). Expiry and a rotated-out secret's grace are
  // checked every time. A successful full resolve is remembered; a failure forgets.
  Result<std::shared_ptr<const ResolvedKey>> resolve(std::string_view presented, KeyMemo& memo) const;

  std::uint64_t store_version() const noexcept;
  std::size_t size() const noexcept;

 private:
  struct Snapshot;
  struct Current {
    std::uint64_t generation = 0;  // the snapshot is at least as new as this generation
    std::shared_ptr<const Snapshot> snapshot;
  };
  const Current& current() const;
  // The full resolve against `cur`; on success remembered in `memo` when there is one.
  Result<std::shared_ptr<const ResolvedKey>> resolve_in(const Current& cur, std::string_view presented,
                                                        KeyMemo* memo) const;
  // Revocation, expiry and a rotated-out secret's grace, against the wall clock now.
  Status usable(const ResolvedKey& key, bool previous) const;

  storage::Store& store_;
  const Clock& clock_;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  std::atomic<std::uint64_t> generation_;
  std::mutex publish_mu_;
};

}  // namespace bulwark::auth
