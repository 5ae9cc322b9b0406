#pragma once
// Prompt text -> sparse feature vector for the complexity scorer. The same code runs in the
// offline trainer and in the gateway, so a weights file is only valid for the feature set
// it was trained with (kFeatureSetId); change the id whenever extraction changes. The
// extraction itself lives in feature_visit.hpp.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bulwark::router {

inline constexpr std::string_view kFeatureSetId = "bulwark-complexity-fs1";

// Hashed n-grams share 2^kHashBits slots; the dense (named) features follow them.
inline constexpr unsigned kHashBits = 16;
inline constexpr std::uint32_t kHashSlots = 1u << kHashBits;

// Dense features come in two copies: one for multiple-choice prompts (options A.-D. and a
// trailing "Answer:") and one for free-form prompts, because the same cue can point opposite
// ways (many numbers: a one-token MC answer the strong model fumbles vs. a word problem
// it solves step by step).
enum class Dense : std::uint8_t {
  format,            // 1.0: per-format intercept
  log_chars,
  log_stem_chars,
  log_option_chars,  // options A.-D. only
  log_max_option,
  option_len_ratio,  // shortest / longest option
  numeric_options,   // share of options that are mostly digits/math
  log_words,
  log_sentences,
  log_numbers,       // digit runs
  digit_share,
  log_math_symbols,
  log_decimals,      // numbers with a decimal point, fraction bar or percent
  log_max_number_len,
  log_caps_words,    // all-caps words (NOT, EXCEPT, acronyms)
  mean_word_len,
  long_word_share,   // words of 9+ letters
  log_lines,
  log_questions,     // '?' count
  log_brackets,
  non_ascii_share,
  log_statements,    // "Statement 1 |" / "Scenario 1 |" style pairs
  count_
};
inline constexpr std::uint32_t kDenseCount = static_cast<std::uint32_t>(Dense::count_);
inline constexpr std::uint32_t kFeatureDim = kHashSlots + 2 * kDenseCount;

enum class FeatureKind : std::uint8_t { dense, word, bigram, prefix, suffix };

// One feature occurrence. A hashed feature may occur several times in a prompt; consumers
// add the values (score is linear, so order and merging never change the result).
struct Feature {
  std::uint32_t index = 0;
  float value = 0.0f;
  FeatureKind kind = FeatureKind::dense;
  // The prompt bytes [begin, end) that produced a hashed feature (for explanations).
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
};

class FeatureExtractor {
 public:
  // Appends the prompt's features to `out` (cleared first). Reusing `out` across calls keeps
  // extraction allocation-free once it has grown to the largest prompt seen.
  void extract(std::string_view prompt, std::vector<Feature>& out) const;

  // The same features with repeated indices summed, sorted by index (training, tests).
  struct Entry {
    std::uint32_t index;
    double value;
  };
  std::vector<Entry> extract_merged(std::string_view prompt) const;

  // Human-readable name: "mc:log_chars", "w:photosynthesis", "w2:which following", "p:phot"
  // (4-letter prefix), "s:esis" (4-letter suffix).
  static std::string describe(const Feature& f, std::string_view prompt);
  static std::string_view dense_name(Dense d) noexcept;
  static std::uint32_t dense_index(Dense d, bool multiple_choice) noexcept {
    return kHashSlots + (multiple_choice ? 0u : kDenseCount) + static_cast<std::uint32_t>(d);
  }
};

}  // namespace bulwark::router
