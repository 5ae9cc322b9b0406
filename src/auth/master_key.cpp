#include "auth/master_key.hpp"

#include "auth/virtual_key.hpp"

namespace bulwark::auth {

inline constexpr std::size_t kMinMasterKeyLength = 32;

Result<MasterKey> MasterKey::create(std::string_view value) {
  if (value.size() < kMinMasterKeyLength) {
    return std::unexpected(Error::gateway(
        ErrorKind::internal, "master key must be at least 32 characters long"));
  }
  return MasterKey(sha256(value));
}

Result<MasterKey> MasterKey::from(std::optional<std::string_view> config_value,
                                  const char* env_value) {
  if (config_value && !config_value->empty()) return create(*config_value);
  if (env_value != nullptr && *env_value != '\0') return create(env_value);
  return std::unexpected(Error::gateway(
      ErrorKind::internal, "no master key: set it in config or BULWARK_MASTER_KEY"));
}

bool MasterKey::check(std::string_view presented) const noexcept {
  try {
    return constant_time_equal(sha256(presented), digest_);
  } catch (...) {
    return false;
  }
}

}  // namespace bulwark::auth
