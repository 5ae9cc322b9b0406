#include "mock/answer.hpp"

#include <charconv>

namespace bulwark::mock {
namespace {

std::size_t digits(std::uint32_t v) noexcept {
  std::size_t d = 1;
  while (v >= 10) {
    v /= 10;
    ++d;
  }
  return d;
}

}  // namespace

std::size_t token_length(std::uint32_t i, std::uint32_t n) noexcept {
  return (i > 1 ? 1 : 0) + 1 + digits(i) + (i == n ? 1 : 0);
}

void append_token(std::string& out, std::uint32_t i, std::uint32_t n) {
  char buf[16];
  std::size_t len = 0;
  if (i > 1) buf[len++] = ' ';
  buf[len++] = 'w';
  auto [end, ec] = std::to_chars(buf + len, buf + sizeof buf, i);
  (void)ec;  // 10 digits always fit
  len = static_cast<std::size_t>(end - buf);
  if (i == n) buf[len++] = '.';
  out.append(buf, len);
}

std::string expected_answer(std::uint32_t n) {
  std::string out;
  out.reserve(static_cast<std::size_t>(n) * 8);
  for (std::uint32_t i = 1; i <= n; ++i) append_token(out, i, n);
  return out;
}

std::size_t count_words(std::string_view text) noexcept {
  std::size_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

std::optional<Resume> match_prefill(std::string_view prefix, std::uint32_t n) noexcept {
  std::string token;
  std::size_t pos = 0;
  for (std::uint32_t i = 1; i <= n; ++i) {
    token.clear();
    append_token(token, i, n);
    const std::size_t left = prefix.size() - pos;
    if (left < token.size()) {
      if (token.compare(0, left, prefix.substr(pos)) != 0) return std::nullopt;
      return Resume{i, static_cast<std::uint32_t>(left)};
    }
    if (prefix.compare(pos, token.size(), token) != 0) return std::nullopt;
    pos += token.size();
  }
  if (pos != prefix.size()) return std::nullopt;
  return Resume{n + 1, 0};
}

std::string expected_remainder(std::uint32_t n, std::string_view prefix) {
  const auto resume = match_prefill(prefix, n);
  if (!resume) return expected_answer(n);
  std::string out;
  for (std::uint32_t i = resume->first_token; i <= n; ++i) append_token(out, i, n);
  return out.substr(resume->skip_chars);
}

}  // namespace bulwark::mock
