#include "auth/key_cache.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "auth/key_service.hpp"
#include "auth/virtual_key.hpp"

namespace bulwark::auth {

namespace {
// Generations are unique across all caches in the process, so a thread's remembered
// snapshot can never be mistaken for another cache's.
std::atomic<std::uint64_t> g_next_generation{1};

Error unauthenticated(std::string msg) {
  return Error::client(ErrorKind::unauthenticated, std::move(msg));
}

std::uint64_t bucket_of(std::string_view digest) noexcept {
  std::uint64_t b = 0;
  std::memcpy(&b, digest.data(), std::min(sizeof b, digest.size()));
  return b;
}
}  // namespace

bool ResolvedKey::allows_model(std::string_view model) const noexcept {
  if (key.allowed_models.empty()) return true;
  for (const auto& p : key.allowed_models) {
    if (glob_match(p, model)) return true;
  }
  return false;
}

struct KeyCache::Snapshot {
  struct Entry {
    std::string digest;
    std::shared_ptr<const ResolvedKey> key;
    bool previous = false;  // matched a rotated-out secret
  };
  std::uint64_t store_version = 0;
  std::size_t keys = 0;
  // Indexed by the digest's first 8 bytes; the full digest is then compared in constant time.
  std::unordered_multimap<std::uint64_t, Entry> by_hash;
};

KeyCache::KeyCache(storage::Store& store, const Clock& clock)
    : store_(store),
      clock_(clock),
      snapshot_(std::make_shared<const Snapshot>()),
      generation_(g_next_generation.fetch_add(1)) {}

KeyCache::~KeyCache() = default;

Status KeyCache::refresh() {
  // Read the version first: a change racing with the load leaves the snapshot marked
  // older than its contents, so the next poll reloads rather than missing it.
  auto version = store_.keys_version();
  if (!version) return std::unexpected(version.error());
  auto keys = store_.list_keys(std::nullopt);
  if (!keys) return std::unexpected(keys.error());
  auto teams = store_.list_teams();
  if (!teams) return std::unexpected(teams.error());

  std::unordered_map<std::string, storage::TeamRecord> team_by_id;
  for (auto& t : *teams) team_by_id.emplace(t.id, std::move(t));

  auto snap = std::make_shared<Snapshot>();
  snap->store_version = *version;
  snap->keys = keys->size();
  snap->by_hash.reserve(keys->size());
  for (auto& k : *keys) {
    auto r = std::make_shared<ResolvedKey>();
    if (!k.team_id.empty()) {
      if (auto it = team_by_id.find(k.team_id); it != team_by_id.end()) r->team = it->second;
    }
    r->key = std::move(k);
    r->key_subject = "key:" + r->key.id;
    if (r->team) r->team_subject = "team:" + r->team->id;
    std::shared_ptr<const ResolvedKey> rk = std::move(r);
    snap->by_hash.emplace(bucket_of(rk->key.secret_hash), Snapshot::Entry{rk->key.secret_hash, rk, false});
    if (rk->key.previous_hash) {
      snap->by_hash.emplace(bucket_of(*rk->key.previous_hash),
                            Snapshot::Entry{*rk->key.previous_hash, rk, true});
    }
  }
  std::lock_guard lock(publish_mu_);  // keeps each refresh's two stores together
  snapshot_.store(std::move(snap), std::memory_order_release);
  generation_.store(g_next_generation.fetch_add(1), std::memory_order_release);
  return {};
}

Result<bool> KeyCache::refresh_if_changed() {
  auto version = store_.keys_version();
  if (!version) return std::unexpected(version.error());
  if (*version == current().snapshot->store_version) return false;
  if (auto s = refresh(); !s) return std::unexpected(s.error());
  return true;
}

const KeyCache::Current& KeyCache::current() const {
  // By reference: the thread's own copy, so a resolve does not touch the shared count.
  thread_local Current mine;
  const std::uint64_t g = generation_.load(std::memory_order_acquire);
  if (mine.generation != g) {
    mine.snapshot = snapshot_.load(std::memory_order_acquire);
    mine.generation = g;
  }
  return mine;
}

std::uint64_t KeyCache::store_version() const noexcept { return current().snapshot->store_version; }
std::size_t KeyCache::size() const noexcept { return current().snapshot->keys; }

void KeyMemo::forget() noexcept {
  OPENSSL_cleanse(presented_.data(), presented_.size());
  size_ = 0;
  generation_ = 0;
  key_.reset();
  previous_ = false;
}

Status KeyCache::usable(const ResolvedKey& key, bool previous) const {
  const storage::KeyRecord& k = key.key;
  if (k.revoked) return std::unexpected(unauthenticated("API key revoked"));
  const storage::UnixMillis now = storage::to_unix_millis(clock_.wall());
  if (k.expires_at && now >= *k.expires_at) return std::unexpected(unauthenticated("API key expired"));
  if (previous && (!k.previous_valid_until || now >= *k.previous_valid_until)) {
    return std::unexpected(unauthenticated("API key was rotated; use the new secret"));
  }
  return {};
}

Result<std::shared_ptr<const ResolvedKey>> KeyCache::resolve(std::string_view presented) const {
  return resolve_in(current(), presented, nullptr);
}

Result<std::shared_ptr<const ResolvedKey>> KeyCache::resolve(std::string_view presented, KeyMemo& memo) const {
  const Current& cur = current();
  if (memo.generation_ == cur.generation &&
      constant_time_equal(presented, std::string_view(memo.presented_.data(), memo.size_))) {
    if (auto ok = usable(*memo.key_, memo.previous_); !ok) return std::unexpected(ok.error());
    return memo.key_;
  }
  if (memo.generation_ != 0) memo.forget();
  return resolve_in(cur, presented, &memo);
}

Result<std::shared_ptr<const ResolvedKey>> KeyCache::resolve_in(const Current& cur, std::string_view presented,
                                                                KeyMemo* memo) const {
  if (!looks_like_key(presented)) return std::unexpected(unauthenticated("invalid API key"));
  Digest d;
  sha256_into(presented, d);
  const std::string_view digest(d.data(), d.size());
  const Snapshot::Entry* found = nullptr;
  auto [it, end] = cur.snapshot->by_hash.equal_range(bucket_of(digest));
  for (; it != end; ++it) {
    if (constant_time_equal(it->second.digest, digest)) {
      found = &it->second;
      break;
    }
  }
  if (found == nullptr) return std::unexpected(unauthenticated("invalid API key"));
  if (auto ok = usable(*found->key, found->previous); !ok) return std::unexpected(ok.error());
  if (memo) {
    static_assert(KeyMemo::kCapacity >= kKeyPrefix.size() + kKeyBodyLength);
    std::memcpy(memo->presented_.data(), presented.data(), presented.size());  // looks_like_key bounds the size
    memo->size_ = presented.size();
    memo->generation_ = cur.generation;
    memo->key_ = found->key;
    memo->previous_ = found->previous;
  }
  return found->key;
}

}  // namespace bulwark::auth
