#pragma once
// A credential held by the gateway. It has no stream operator or implicit conversion, so
// it cannot end up in a log line or an error message by accident; reveal() is greppable.
#include <string>
#include <utility>

namespace bulwark {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }
  friend bool operator==(const Secret&, const Secret&) = delete;  // use a constant-time compare

 private:
  std::string value_;
};

}  // namespace bulwark
