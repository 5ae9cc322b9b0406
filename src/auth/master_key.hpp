#pragma once
// The admin master key. Its value comes from config or BULWARK_MASTER_KEY (the caller
// resolves which); it is kept only as a SHA-256 digest and compared in constant time.
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace bulwark::auth {

class MasterKey {
 public:
  // Refuses values shorter than 32 characters: the master key guards every admin action.
  static Result<MasterKey> create(std::string_view value);
  // Config wins over the environment value (pass std::getenv("BULWARK_MASTER_KEY")).
  static Result<MasterKey> from(std::optional<std::string_view> config_value,
                                const char* env_value);

  // Constant time in the presented value's content; both sides are hashed first so the
  // comparison length is fixed and the stored key's length does not leak.
  bool check(std::string_view presented) const noexcept;

 private:
  explicit MasterKey(std::string digest) : digest_(std::move(digest)) {}
  std::string digest_;
};

}  // namespace bulwark::auth
