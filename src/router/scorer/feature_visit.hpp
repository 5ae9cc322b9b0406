#pragma once
// Internal to router/scorer: the one feature-extraction routine, as a template over the
// consumer, so training (FeatureExtractor::extract) and inference (ComplexityScorer::logit,
// which sums weights on the fly without a feature buffer) run literally the same code.
// Sink: void(std::uint32_t index, float value, FeatureKind kind, std::uint32_t begin, std::uint32_t end).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "router/scorer/features.hpp"

namespace bulwark::router::detail {

// Pieces of text the tokenizer walks: the question stem, then each option body.
struct Segment {
  std::uint32_t begin;
  std::uint32_t end;
  bool option;
};

struct Layout {
  bool multiple_choice = false;
  std::array<Segment, 5> segments{};
  std::size_t count = 0;
};

// One table lookup classifies a byte; the scans below run once per prompt byte.
enum : std::uint8_t { kWord = 1, kDigit = 2, kUpper = 4, kMath = 8, kSpace = 16, kBracket = 32, kEnd = 64 };
constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    std::uint8_t v = 0;
    if ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80) v |= kWord;
    if (b >= '0' && b <= '9') v |= kDigit;
    if (b >= 'A' && b <= 'Z') v |= kUpper;
    for (char m : {'+', '-', '*', '/', '=', '^', '<', '>', '%', '|', '$'}) {
      if (b == m) v |= kMath;
    }
    if (b == ' ' || b == '\n' || b == '\t' || b == '\r') v |= kSpace;
    for (char m : {'(', ')', '[', ']', '{', '}'}) {
      if (b == m) v |= kBracket;
    }
    if (b == '.' || b == '?' || b == '!') v |= kEnd;
    c[static_cast<std::size_t>(b)] = v;
  }
  return c;
}
inline constexpr std::array<std::uint8_t, 256> kClass = make_classes();
constexpr std::uint8_t cls(unsigned char c) noexcept { return kClass[c]; }
constexpr bool is_word_byte(unsigned char c) noexcept { return (cls(c) & kWord) != 0; }
constexpr bool is_digit(unsigned char c) noexcept { return (cls(c) & kDigit) != 0; }
constexpr bool is_upper(unsigned char c) noexcept { return (cls(c) & kUpper) != 0; }
constexpr unsigned char lower(unsigned char c) noexcept {
  return is_upper(c) ? static_cast<unsigned char>(c + ('a' - 'A')) : c;
}
constexpr bool is_math(unsigned char c) noexcept { return (cls(c) & kMath) != 0; }
constexpr bool is_space(unsigned char c) noexcept { return (cls(c) & kSpace) != 0; }

// MMLU-style prompts: "<stem>\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:". Anything else is
// free-form and tokenized as one segment.
inline Layout layout_of(std::string_view t) {
  Layout l;
  const auto whole = [&] {
    l.multiple_choice = false;
    l.segments[0] = {0, static_cast<std::uint32_t>(t.size()), false};
    l.count = 1;
    return l;
  };
  std::string_view body = t;
  while (!body.empty() && is_space(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
  constexpr std::string_view answer = "\nAnswer:";
  if (!body.ends_with(answer)) return whole();
  const std::size_t answer_pos = body.size() - answer.size();
  const std::size_t a = t.rfind("\nA. ", answer_pos);
  if (a == std::string_view::npos) return whole();
  std::array<std::size_t, 5> starts{};
  starts[0] = a;
  constexpr std::array<std::string_view, 3> marks = {"\nB. ", "\nC. ", "\nD. "};
  for (std::size_t i = 0; i < marks.size(); ++i) {
    const std::size_t p = t.find(marks[i], starts[i] + 1);
    if (p == std::string_view::npos || p >= answer_pos) return whole();
    starts[i + 1] = p;
  }
  starts[4] = answer_pos;
  l.multiple_choice = true;
  l.segments[0] = {0, static_cast<std::uint32_t>(a), false};
  for (std::size_t i = 0; i < 4; ++i) {
    l.segments[i + 1] = {static_cast<std::uint32_t>(starts[i] + 4),
                         static_cast<std::uint32_t>(starts[i + 1]), true};
  }
  l.count = 5;
  return l;
}

constexpr std::uint64_t mix(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr std::uint32_t slot(std::uint64_t h) noexcept {
  return static_cast<std::uint32_t>(mix(h) >> (64 - kHashBits));
}

// Namespaces keep words, bigrams and affixes from landing on one another's hashes
// by construction (they still collide by chance, as any hashed feature does).
constexpr std::uint64_t kWordSeed = 0x57a11d0f00000001ULL;
constexpr std::uint64_t kBigramSeed = 0x57a11d0f00000002ULL;
constexpr std::uint64_t kPrefixSeed = 0x57a11d0f00000003ULL;
constexpr std::uint64_t kSuffixSeed = 0x57a11d0f00000005ULL;
constexpr std::uint64_t kNumberSeed = 0x57a11d0f00000004ULL;
constexpr std::uint64_t kSubjectSeed = 0x57a11d0f00000006ULL;
constexpr std::uint32_t kAffix = 4;

// All-digit tokens are bucketed by length: the value of a number says little, its size some.
inline std::uint64_t number_hash(std::size_t len, bool multiple_choice) noexcept {
  const std::uint64_t bucket = len <= 1 ? 1 : len <= 2 ? 2 : len <= 4 ? 4 : 8;
  return mix(kNumberSeed ^ (bucket << 1) ^ (multiple_choice ? 1u : 0u));
}

struct Token {
  std::uint32_t begin;
  std::uint32_t end;
  std::uint64_t hash;  // namespace-free hash of the lowercased token
};

// Calls fn(Token) for every word token inside [seg.begin, seg.end).
template <class Fn>
void for_each_token(std::string_view t, const Segment& seg, bool multiple_choice, Fn&& fn) {
  std::uint32_t i = seg.begin;
  while (i < seg.end) {
    while (i < seg.end && !is_word_byte(static_cast<unsigned char>(t[i]))) ++i;
    if (i >= seg.end) break;
    const std::uint32_t b = i;
    // Bytes are packed eight at a time and mixed per block: a per-byte multiply chain
    // would dominate the scan.
    std::uint64_t h = 0x9ae16a3b2f90404fULL, block = 0;
    unsigned filled = 0;
    std::uint8_t all = 0xff;  // AND of the token's byte classes
    while (i < seg.end) {
      const auto c = static_cast<unsigned char>(t[i]);
      const std::uint8_t k = cls(c);
      if ((k & kWord) == 0) break;
      all &= k;
      block = (block << 8) | (c | ((k & kUpper) != 0 ? 0x20u : 0u));  // lower-case
      if (++filled == 8) {
        h = (h ^ block) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        block = 0;
        filled = 0;
      }
      ++i;
    }
    h = (all & kDigit) != 0 ? number_hash(i - b, multiple_choice) : mix(h ^ block ^ (std::uint64_t{i - b} << 56));
    fn(Token{b, i, h});
  }
}

inline double log1p_count(double n) noexcept { return std::log1p(n); }

// SubjectModel row of a word token.
constexpr std::uint32_t subject_slot(std::uint64_t token_hash) noexcept {
  return static_cast<std::uint32_t>(mix(kSubjectSeed ^ token_hash) >> (64 - SubjectModel::kBits));
}

// Sums the SubjectModel rows of a prompt's tokens: 16-bit lanes (which the compiler
// vectorises) flushed into 32-bit totals before they can overflow.
class SubjectAccumulator {
 public:
  void add(const std::uint8_t* row) noexcept {
#if defined(__SSE2__)
    // Explicit: the compiler cannot vectorise the scalar loop at -O2 (the byte row may alias
    // the accumulator).
    const __m128i zero = _mm_setzero_si128();
    for (std::uint32_t c = 0; c < SubjectModel::kLanes; c += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c));
      auto* lo = reinterpret_cast<__m128i*>(acc_.data() + c);
      auto* hi = reinterpret_cast<__m128i*>(acc_.data() + c + 8);
      _mm_store_si128(lo, _mm_add_epi16(_mm_load_si128(lo), _mm_unpacklo_epi8(v, zero)));
      _mm_store_si128(hi, _mm_add_epi16(_mm_load_si128(hi), _mm_unpackhi_epi8(v, zero)));
    }
#else
    for (std::uint32_t c = 0; c < SubjectModel::kLanes; ++c) acc_[c] = static_cast<std::uint16_t>(acc_[c] + row[c]);
#endif
    ++tokens_;
    if (++pending_ == 257) flush();  // 257 * 255 < 65536
  }
  SubjectPosterior finish(const SubjectModel& m) noexcept {
    flush();
    std::array<double, SubjectModel::kLanes> z{};
    double top = -1e300;
    for (std::uint32_t c = 0; c < m.classes; ++c) {
      z[c] = static_cast<double>(m.temperature) *
             (static_cast<double>(m.prior[c]) + static_cast<double>(m.step) * total_[c] -
              static_cast<double>(tokens_) * static_cast<double>(m.log_norm[c]));
      top = std::max(top, z[c]);
    }
    double norm = 0, gain = 0, peak = 0;
    for (std::uint32_t c = 0; c < m.classes; ++c) {
      // Classes 40 nats below the best weigh less than 1e-17 of it: skip their exp.
      if (z[c] < top - 40) continue;
      const double e = std::exp(z[c] - top);
      norm += e;
      gain += e * static_cast<double>(m.gain[c]);
      peak = std::max(peak, e);
    }
    return SubjectPosterior{gain / norm, peak / norm};
  }

 private:
  void flush() noexcept {
    for (std::uint32_t c = 0; c < SubjectModel::kLanes; ++c) {
      total_[c] += acc_[c];
      acc_[c] = 0;
    }
    pending_ = 0;
  }
  alignas(64) std::array<std::uint16_t, SubjectModel::kLanes> acc_{};
  std::array<std::uint32_t, SubjectModel::kLanes> total_{};
  std::uint32_t pending_ = 0;
  std::uint32_t tokens_ = 0;
};

// Calls fn(subject_slot) for every word token of the prompt (all segments).
template <class Fn>
void for_each_subject_slot(std::string_view t, const Layout& l, Fn&& fn) {
  for (std::size_t s = 0; s < l.count; ++s) {
    for_each_token(t, l.segments[s], l.multiple_choice, [&](const Token& tok) { fn(subject_slot(tok.hash)); });
  }
}

// `subject` may be null: the subject features are then not produced.
template <class Sink>
void visit_features(std::string_view t, const SubjectModel* subject, Sink&& sink) {
  // Prompts past 4 GiB do not reach a router; offsets are 32-bit to keep Feature small.
  if (t.size() > 0xffffffffu) t = t.substr(0, 0xffffffffu);
  const Layout l = layout_of(t);
  const bool mc = l.multiple_choice;

  // Pass 1: counts for the dense features and for scaling the hashed ones. Integer
  // counters: a floating-point add per byte would serialise the loop.
  std::uint32_t code_points = 0, digits = 0, math = 0, non_ascii = 0, lines = 0, questions = 0;
  std::uint32_t brackets = 0, sentences = 0, numbers = 0, decimals = 0, statements = 0;
  std::size_t max_number_len = 0;
  const std::size_t size = t.size();
  // Word statistics come from the same scan (over the whole prompt, option letters and
  // "Answer" included): a separate tokenising pass would cost a third of the time.
  std::uint32_t words = 0, word_bytes = 0, long_words = 0, caps_words = 0, affixes = 0;
  std::size_t i = 0;
  while (i < size) {
    const auto c = static_cast<unsigned char>(t[i]);
    const std::uint8_t k = cls(c);
    if ((k & kWord) == 0) {
      ++code_points;  // non-word bytes are ASCII
      math += (k & kMath) != 0 ? 1u : 0u;
      brackets += (k & kBracket) != 0 ? 1u : 0u;
      lines += c == '\n' ? 1u : 0u;
      questions += c == '?' ? 1u : 0u;
      if ((k & kEnd) != 0 && (i + 1 == size || is_space(static_cast<unsigned char>(t[i + 1])))) ++sentences;
      ++i;
      continue;
    }
    std::size_t j = i;
    std::uint8_t all = 0xff;  // AND of the word's byte classes
    while (j < size) {
      const auto cj = static_cast<unsigned char>(t[j]);
      const std::uint8_t kj = cls(cj);
      if ((kj & kWord) == 0) break;
      all &= kj;
      if (cj >= 0x80) {  // rare: UTF-8 lead or continuation byte
        ++non_ascii;
        if ((cj & 0xC0) != 0x80) ++code_points;
      } else {
        ++code_points;
      }
      if ((kj & kDigit) != 0 && (j == i || !is_digit(static_cast<unsigned char>(t[j - 1])))) {
        std::size_t e = j;
        while (e < size && is_digit(static_cast<unsigned char>(t[e]))) ++e;
        digits += static_cast<std::uint32_t>(e - j);
        ++numbers;
        max_number_len = std::max(max_number_len, e - j);
        if (e + 1 < size && (t[e] == '.' || t[e] == '/') && is_digit(static_cast<unsigned char>(t[e + 1]))) {
          ++decimals;
        } else if (e < size && t[e] == '%') {
          ++decimals;
        }
        if (e + 2 < size && t[e] == ' ' && t[e + 1] == '|') ++statements;
      }
      ++j;
    }
    const auto len = static_cast<std::uint32_t>(j - i);
    ++words;
    word_bytes += len;
    if (len >= 9) ++long_words;
    if (len >= 2 && (all & kUpper) != 0) ++caps_words;
    if (len > kAffix) affixes += 2;
    i = j;
  }
  double option_chars = 0, max_option = 0, min_option = 1e18, numeric_options = 0;
  if (mc) {
    for (std::size_t s = 1; s < l.count; ++s) {
      const Segment& seg = l.segments[s];
      const double len = seg.end - seg.begin;
      option_chars += len;
      max_option = std::max(max_option, len);
      min_option = std::min(min_option, len);
      double numeric = 0, visible = 0;
      for (std::uint32_t k = seg.begin; k < seg.end; ++k) {
        const auto c = static_cast<unsigned char>(t[k]);
        if (is_space(c)) continue;
        visible += 1;
        if (is_digit(c) || is_math(c) || c == '.' || c == ',') numeric += 1;
      }
      if (visible > 0 && numeric * 2 >= visible) numeric_options += 0.25;
    }
  }
  const double stem_chars = l.segments[0].end - l.segments[0].begin;

  const auto dense = [&](Dense d, double v) {
    if (v != 0.0) sink(FeatureExtractor::dense_index(d, mc), static_cast<float>(v), FeatureKind::dense, 0u, 0u);
  };
  const double chars = std::max(static_cast<double>(code_points), 1.0);
  dense(Dense::format, 1.0);
  dense(Dense::log_chars, log1p_count(code_points));
  dense(Dense::log_stem_chars, log1p_count(stem_chars));
  dense(Dense::log_option_chars, log1p_count(option_chars));
  dense(Dense::log_max_option, log1p_count(max_option));
  dense(Dense::option_len_ratio, mc && max_option > 0 ? min_option / max_option : 0.0);
  dense(Dense::numeric_options, numeric_options);
  dense(Dense::log_words, log1p_count(words));
  dense(Dense::log_sentences, log1p_count(sentences));
  dense(Dense::log_numbers, log1p_count(numbers));
  dense(Dense::digit_share, digits / chars);
  dense(Dense::log_math_symbols, log1p_count(math));
  dense(Dense::log_decimals, log1p_count(decimals));
  dense(Dense::log_max_number_len, log1p_count(static_cast<double>(max_number_len)));
  dense(Dense::log_caps_words, log1p_count(caps_words));
  dense(Dense::mean_word_len, words > 0 ? static_cast<double>(word_bytes) / words / 10.0 : 0.0);
  dense(Dense::long_word_share, words > 0 ? static_cast<double>(long_words) / words : 0.0);
  dense(Dense::log_lines, log1p_count(lines));
  dense(Dense::log_questions, log1p_count(questions));
  dense(Dense::log_brackets, log1p_count(brackets));
  dense(Dense::non_ascii_share, non_ascii / chars);
  dense(Dense::log_statements, log1p_count(statements));

  // Pass 2: hashed n-grams, each occurrence weighted so a prompt's n-gram block has unit
  // L2 norm when no n-gram repeats (long prompts must not win on n-gram count alone).
  const float word_value = words > 0 ? static_cast<float>(1.0 / std::sqrt(words)) : 0.0f;
  const float affix_value = affixes > 0 ? static_cast<float>(1.0 / std::sqrt(affixes)) : 0.0f;
  // N-grams are format-specific: on one-token multiple choice the strong model loses on
  // arithmetic, while on free-form word problems arithmetic is where it wins.
  const std::uint64_t format_seed = mc ? 0 : 0x5eed0f0f5eed0f0fULL;
  const bool use_subject = subject != nullptr && subject->valid();
  SubjectAccumulator subjects;
  for (std::size_t s = 0; s < l.count; ++s) {
    bool have_prev = false;
    Token prev{0, 0, 0};
    for_each_token(t, l.segments[s], mc, [&](const Token& tok) {
      if (use_subject) subjects.add(subject->table.data() + std::size_t{subject_slot(tok.hash)} * SubjectModel::kLanes);
      sink(slot(kWordSeed ^ format_seed ^ tok.hash), word_value, FeatureKind::word, tok.begin, tok.end);
      if (have_prev) {
        sink(slot(kBigramSeed ^ format_seed ^ (prev.hash * 0x9e3779b97f4a7c15ULL) ^ mix(tok.hash)), word_value,
             FeatureKind::bigram, prev.begin, tok.end);
      }
      prev = tok;
      have_prev = true;
      // Four-letter prefix and suffix of longer words catch morphology (chem-, -ology,
      // -ation) at two lookups per word; shorter words are covered by their unigram.
      const std::uint32_t len = tok.end - tok.begin;
      if (len > kAffix) {
        std::uint64_t pre = 0, suf = 0;
        for (std::uint32_t k = 0; k < kAffix; ++k) {
          pre = (pre << 8) | lower(static_cast<unsigned char>(t[tok.begin + k]));
          suf = (suf << 8) | lower(static_cast<unsigned char>(t[tok.end - kAffix + k]));
        }
        sink(slot(kPrefixSeed ^ format_seed ^ pre), affix_value, FeatureKind::prefix, tok.begin, tok.begin + kAffix);
        sink(slot(kSuffixSeed ^ format_seed ^ suf), affix_value, FeatureKind::suffix, tok.end - kAffix, tok.end);
      }
    });
  }
  if (use_subject) {
    const SubjectPosterior p = subjects.finish(*subject);
    dense(Dense::subject_gain, 10.0 * p.expected_gain);
    dense(Dense::subject_confidence, p.confidence);
  }
}

}  // namespace bulwark::router::detail
