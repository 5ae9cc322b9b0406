#pragma once
// The deterministic answer of bulwark-mock. A healthy completion of N tokens is
// "w1 w2 ... wN." so a truncated answer can never pass as complete: every token is
// distinct and only the last one carries the full stop. Tests of other modules include
// this header to know exactly what a healthy upstream answer looks like.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bulwark::mock {

// Appends token i (1-based) of an N-token answer: " w<i>" (no space when i == 1), with a
// trailing "." when i == n.
void append_token(std::string& out, std::uint32_t i, std::uint32_t n);

// Length in bytes of token i of an N-token answer, as append_token writes it.
std::size_t token_length(std::uint32_t i, std::uint32_t n) noexcept;

// The whole healthy answer of n tokens ("" for n == 0).
std::string expected_answer(std::uint32_t n);

// Number of whitespace-separated words (space, tab, CR, LF, FF, VT separate words).
std::size_t count_words(std::string_view text) noexcept;

// Where an answer resumes after an assistant prefill.
struct Resume {
  std::uint32_t first_token = 1;  // first token not entirely inside the prefill (n + 1: none)
  std::uint32_t skip_chars = 0;   // bytes of first_token already in the prefill
  // Tokens still to send (a token partly in the prefill counts as one).
  std::uint32_t remaining(std::uint32_t n) const noexcept { return n + 1 - first_token; }
};

// If `prefix` is a prefix of expected_answer(n), where the remainder starts; otherwise
// nullopt. Works without building the answer.
std::optional<Resume> match_prefill(std::string_view prefix, std::uint32_t n) noexcept;

// The remainder of expected_answer(n) after `prefix` when it is a prefix, else the whole
// answer: the text a prefilled request receives.
std::string expected_remainder(std::uint32_t n, std::string_view prefix);

}  // namespace bulwark::mock
