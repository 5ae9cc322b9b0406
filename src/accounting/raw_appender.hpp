#pragma once
// Appending to a std::string through a raw pointer into its spare room, for the record
// writers of the ledger and the audit trail: std::string's append and push_back are
// out-of-line calls, and a record is some hundred of them. Internal to accounting/.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace bulwark::accounting::detail {

class RawAppender {
 protected:
  // Writes from s[start]; the string is grown to at least start + initial bytes (its
  // size is then the room, not the text: written() says how much is text).
  RawAppender(std::string& s, std::size_t start, std::size_t initial) : s_(s) {
    s_.resize(std::max(s_.capacity(), start + initial));
    p_ = s_.data() + start;
    end_ = s_.data() + s_.size();
  }
  RawAppender(const RawAppender&) = delete;
  RawAppender& operator=(const RawAppender&) = delete;
  ~RawAppender() = default;

  // At least n bytes of room at p_. The check is inlined at each of a record's fields;
  // growing, which almost never happens (the buffer is reused), is not.
  void room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) [[unlikely]]
      grow(n);
  }
  [[gnu::noinline]] void grow(std::size_t n) {
    const auto used = written();
    s_.resize(std::max(2 * s_.size(), used + n + 256));
    p_ = s_.data() + used;
    end_ = s_.data() + s_.size();
  }
  void put(char c) {
    room(1);
    *p_++ = c;
  }
  void put(std::string_view v) {
    if (v.empty()) return;  // a default view's data() is null: no memcpy from it
    room(v.size());
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
  }
  std::size_t written() const { return static_cast<std::size_t>(p_ - s_.data()); }

  std::string& s_;
  char* p_ = nullptr;
  char* end_ = nullptr;
};

}  // namespace bulwark::accounting::detail
