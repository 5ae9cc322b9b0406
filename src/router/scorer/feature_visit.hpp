#pragma once
// Internal to router/scorer: the one feature-extraction routine, as a template over the
// consumer, so training (FeatureExtractor::extract) and inference (ComplexityScorer::logit,
// which sums weights on the fly without a feature buffer) run literally the same code.
//
// Sink: void hashed(std::uint32_t slot, FeatureKind kind, std::uint32_t begin, std::uint32_t end)
//         (one occurrence of unit value; the value is the returned HashScales entry)
//       void dense(std::uint32_t index, float value)
//
// Feature set fs3: one pass over the prompt bytes produces the dense counts, the hashed
// n-grams and the subject-model rows together (fs2 scanned the text twice).
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

// One table lookup classifies a byte. kUpper is 0x20 so that `c | (class & kUpper)`
// lower-cases an ASCII letter without a branch or a second table.
enum : std::uint8_t {
  kWord = 1,
  kDigit = 2,
  kMath = 4,
  kSpace = 8,
  kBracket = 16,
  kUpper = 0x20,
  kEnd = 64,        // . ? !
  kNumPunct = 128,  // . , (count as numeric inside an option: "3.5", "1,000")
};
static_assert(kUpper == 'a' - 'A');
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
    if (b == '.' || b == ',') v |= kNumPunct;
    c[static_cast<std::size_t>(b)] = v;
  }
  return c;
}
inline constexpr std::array<std::uint8_t, 256> kClass = make_classes();
constexpr std::uint8_t cls(unsigned char c) noexcept { return kClass[c]; }
constexpr bool is_word_byte(unsigned char c) noexcept { return (cls(c) & kWord) != 0; }
constexpr bool is_digit(unsigned char c) noexcept { return (cls(c) & kDigit) != 0; }
constexpr bool is_upper(unsigned char c) noexcept { return (cls(c) & kUpper) != 0; }
constexpr unsigned char lower(unsigned char c) noexcept { return static_cast<unsigned char>(c | (cls(c) & kUpper)); }
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
// Top bits of one multiply: the inputs are already well mixed token hashes (or short raw
// byte strings, for the affixes), so a full mix per slot would be wasted work.
constexpr std::uint32_t slot_bits(std::uint64_t h, unsigned bits) noexcept {
  return static_cast<std::uint32_t>((h * 0x9e3779b97f4a7c15ULL) >> (64 - bits));
}
constexpr std::uint32_t slot(std::uint64_t h) noexcept { return slot_bits(h, kHashBits); }

// Namespaces keep words, bigrams and affixes from landing on one another's hashes
// by construction (they still collide by chance, as any hashed feature does).
constexpr std::uint64_t kWordSeed = 0x57a11d0f00000001ULL;
constexpr std::uint64_t kBigramSeed = 0x57a11d0f00000002ULL;
constexpr std::uint64_t kPrefixSeed = 0x57a11d0f00000003ULL;
constexpr std::uint64_t kSuffixSeed = 0x57a11d0f00000005ULL;
constexpr std::uint64_t kNumberSeed = 0x57a11d0f00000004ULL;
constexpr std::uint64_t kSubjectSeed = 0x57a11d0f00000006ULL;
constexpr std::uint32_t kAffix = 4;
constexpr std::uint64_t kTokenSeed = 0x9ae16a3b2f90404fULL;
constexpr std::uint64_t kBlockMul = 0xff51afd7ed558ccdULL;

// All-digit tokens are bucketed by length: the value of a number says little, its size some.
constexpr std::uint64_t number_hash(std::size_t len, bool multiple_choice) noexcept {
  const std::uint64_t bucket = len <= 1 ? 1 : len <= 2 ? 2 : len <= 4 ? 4 : 8;
  return mix(kNumberSeed ^ (bucket << 1) ^ (multiple_choice ? 1u : 0u));
}

// The hash the tokenizer gives a lower-case, non-numeric word: bytes packed eight at a time
// and mixed per block (a per-byte multiply chain would dominate the scan). Used to build the
// keyword table at compile time; the tokenizer computes the same inline.
constexpr std::uint64_t word_hash(std::string_view lower_word) noexcept {
  std::uint64_t h = kTokenSeed, block = 0;
  unsigned filled = 0;
  for (char ch : lower_word) {
    block = (block << 8) | static_cast<unsigned char>(ch);
    if (++filled == 8) {
      h = (h ^ block) * kBlockMul;
      h ^= h >> 32;
      block = 0;
      filled = 0;
    }
  }
  return mix(h ^ block ^ (std::uint64_t{lower_word.size()} << 56));
}

// Word-problem cue words, found by one probe of a small open-addressing table per token.
enum class Keyword : std::uint8_t { none, fraction, how, much };
struct KeywordEntry {
  std::uint64_t hash = 0;
  Keyword kind = Keyword::none;
};
inline constexpr unsigned kKeywordBits = 6;
constexpr std::array<KeywordEntry, 1u << kKeywordBits> make_keywords() {
  std::array<KeywordEntry, 1u << kKeywordBits> table{};
  const auto put = [&](std::string_view w, Keyword k) {
    const std::uint64_t h = word_hash(w);
    std::size_t i = h >> (64 - kKeywordBits);
    while (table[i].kind != Keyword::none) i = (i + 1) & (table.size() - 1);
    table[i] = {h, k};
  };
  for (std::string_view w : {"half", "halves", "halved", "third", "thirds", "quarter", "quarters", "fourth",
                             "fourths", "fifth", "fifths", "twice", "double", "doubled", "triple", "tripled",
                             "thrice"}) {
    put(w, Keyword::fraction);
  }
  put("how", Keyword::how);
  put("much", Keyword::much);
  return table;
}
inline constexpr auto kKeywords = make_keywords();
constexpr Keyword keyword_of(std::uint64_t token_hash) noexcept {
  std::size_t i = token_hash >> (64 - kKeywordBits);
  while (kKeywords[i].kind != Keyword::none) {
    if (kKeywords[i].hash == token_hash) return kKeywords[i].kind;
    i = (i + 1) & (kKeywords.size() - 1);
  }
  return Keyword::none;
}

// SubjectModel row of a word token.
constexpr std::uint32_t subject_slot(std::uint64_t token_hash) noexcept {
  return slot_bits(kSubjectSeed ^ token_hash, SubjectModel::kBits);
}

inline double log1p_count(double n) noexcept { return std::log1p(n); }

// Sums the SubjectModel rows of a prompt's tokens: 16-bit lanes flushed into 32-bit totals
// before they can overflow.
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

// Byte- and token-level counts of one scan (over the segments only: for multiple choice the
// "\nA. " markers and the trailing "\nAnswer:" are constant and left out).
struct Counts {
  std::uint32_t continuation = 0;  // UTF-8 continuation bytes (code points = bytes - these)
  std::uint32_t non_ascii = 0, digits = 0, math = 0, lines = 0, questions = 0, brackets = 0;
  std::uint32_t sentences = 0, numbers = 0, decimal_points = 0, fractions = 0, percents = 0, statements = 0;
  std::uint32_t max_number_len = 0, words = 0, word_bytes = 0, long_words = 0, caps_words = 0, affixes = 0;
  std::uint32_t fraction_words = 0, how_much = 0;
  std::uint32_t spaces = 0, num_punct = 0;  // for the numeric-option test
};

struct Token {
  std::uint32_t begin;
  std::uint32_t end;
  std::uint64_t hash;    // hash of the lowercased token (number_hash for all-digit tokens)
  std::uint64_t prefix;  // first and last four lowercased bytes, big-endian (tokens > 4 bytes)
  std::uint64_t suffix;
};

// The single scan: counts into `n` and calls on_token(Token, bool first_in_segment) for every
// word token inside the segment.
template <class OnToken>
void scan_segment(std::string_view t, const Segment& seg, bool multiple_choice, Counts& n, OnToken&& on_token) {
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  const std::uint32_t size = static_cast<std::uint32_t>(t.size());
  const std::uint32_t end = seg.end;
  std::uint32_t i = seg.begin;
  bool first = true;
  while (i < end) {
    unsigned char c = p[i];
    std::uint8_t k = cls(c);
    if ((k & kWord) == 0) {
      n.spaces += (k & kSpace) != 0 ? 1u : 0u;
      n.math += (k & kMath) != 0 ? 1u : 0u;
      n.brackets += (k & kBracket) != 0 ? 1u : 0u;
      n.num_punct += (k & kNumPunct) != 0 ? 1u : 0u;
      n.lines += c == '\n' ? 1u : 0u;
      n.questions += c == '?' ? 1u : 0u;
      if ((k & kEnd) != 0 && (i + 1 == size || is_space(p[i + 1]))) ++n.sentences;
      ++i;
      continue;
    }
    const std::uint32_t b = i;
    std::uint64_t h = kTokenSeed, block = 0, first_block = 0, prev_block = 0;
    unsigned filled = 0;
    std::uint8_t all = 0xff;  // AND of the token's byte classes
    std::uint32_t digits = 0;
    for (;;) {
      all &= k;
      digits += (k & kDigit) != 0 ? 1u : 0u;
      if (c >= 0x80) {  // rare: UTF-8 lead or continuation byte
        ++n.non_ascii;
        n.continuation += (c & 0xC0) == 0x80 ? 1u : 0u;
      }
      block = (block << 8) | (c | (k & kUpper));
      if (++filled == 8) {
        h = (h ^ block) * kBlockMul;
        h ^= h >> 32;
        if (i - b == 7) first_block = block;
        prev_block = block;
        block = 0;
        filled = 0;
      }
      if (++i >= end) break;
      c = p[i];
      k = cls(c);
      if ((k & kWord) == 0) break;
    }
    const std::uint32_t len = i - b;
    n.digits += digits;
    ++n.words;
    n.word_bytes += len;
    n.long_words += len >= 9 ? 1u : 0u;
    n.caps_words += len >= 2 && (all & kUpper) != 0 ? 1u : 0u;
    Token tok{b, i, 0, 0, 0};
    if (is_digit(p[b])) {
      ++n.numbers;
      if ((all & kDigit) != 0) n.max_number_len = std::max(n.max_number_len, len);
      if (is_digit(p[i - 1]) && i < size) {
        // What follows the number: "12.5", "3/4", "40%", "Statement 1 |".
        const unsigned char next = p[i];
        const bool digit_after = i + 1 < size && is_digit(p[i + 1]);
        n.decimal_points += next == '.' && digit_after ? 1u : 0u;
        n.fractions += next == '/' && digit_after ? 1u : 0u;
        n.percents += next == '%' ? 1u : 0u;
        n.statements += next == ' ' && i + 1 < size && p[i + 1] == '|' ? 1u : 0u;
      }
    }
    tok.hash = (all & kDigit) != 0 ? number_hash(len, multiple_choice)
                                   : mix(h ^ block ^ (std::uint64_t{len} << 56));
    if (len > kAffix) {
      n.affixes += 2;
      // The last four bytes straddle the current and the previous block when fewer than four
      // are in the current one.
      tok.suffix = ((prev_block << (8 * filled)) | block) & 0xffffffffu;
      tok.prefix = len < 8 ? block >> (8 * (len - kAffix)) : first_block >> 32;
    }
    on_token(tok, first);
    first = false;
  }
}

template <class OnToken>
void scan(std::string_view t, const Layout& l, Counts& n, OnToken&& on_token) {
  for (std::size_t s = 0; s < l.count; ++s) scan_segment(t, l.segments[s], l.multiple_choice, n, on_token);
}

// Calls fn(subject_slot) for every word token of the prompt (all segments).
template <class Fn>
void for_each_subject_slot(std::string_view t, const Layout& l, Fn&& fn) {
  Counts n;
  scan(t, l, n, [&](const Token& tok, bool) { fn(subject_slot(tok.hash)); });
}

// `subject` may be null: the subject features are then not produced.
template <class Sink>
HashScales visit_features(std::string_view t, const SubjectModel* subject, Sink&& sink) {
  // Prompts past 4 GiB do not reach a router; offsets are 32-bit to keep Feature small.
  if (t.size() > 0xffffffffu) t = t.substr(0, 0xffffffffu);
  const Layout l = layout_of(t);
  const bool mc = l.multiple_choice;
  // N-grams are format-specific: on one-token multiple choice the strong model loses on
  // arithmetic, while on free-form word problems arithmetic is where it wins.
  const std::uint64_t format_seed = mc ? 0 : 0x5eed0f0f5eed0f0fULL;
  const bool use_subject = subject != nullptr && subject->valid();
  SubjectAccumulator subjects;
  Counts n;

  // Per option, for the numeric-option share: a mostly digit/math/".," option.
  double option_chars = 0, max_option = 0, min_option = 1e18, numeric_options = 0;
  std::uint64_t prev_hash = 0;
  std::uint32_t prev_begin = 0;
  bool prev_how = false;
  for (std::size_t s = 0; s < l.count; ++s) {
    const Segment& seg = l.segments[s];
    const Counts before = n;
    scan_segment(t, seg, mc, n, [&](const Token& tok, bool first) {
      if (use_subject) subjects.add(subject->table.data() + std::size_t{subject_slot(tok.hash)} * SubjectModel::kLanes);
      const Keyword kw = keyword_of(tok.hash);
      n.fraction_words += kw == Keyword::fraction ? 1u : 0u;
      n.how_much += kw == Keyword::much && prev_how && !first ? 1u : 0u;
      prev_how = kw == Keyword::how;
      sink.hashed(slot(kWordSeed ^ format_seed ^ tok.hash), FeatureKind::word, tok.begin, tok.end);
      if (!first) {
        sink.hashed(slot(kBigramSeed ^ format_seed ^ (prev_hash * 0x9e3779b97f4a7c15ULL) ^ tok.hash),
                    FeatureKind::bigram, prev_begin, tok.end);
      }
      prev_hash = tok.hash;
      prev_begin = tok.begin;
      // Four-letter prefix and suffix of longer words catch morphology (chem-, -ology,
      // -ation) at two lookups per word; shorter words are covered by their unigram.
      if (tok.end - tok.begin > kAffix) {
        sink.hashed(slot(kPrefixSeed ^ format_seed ^ tok.prefix), FeatureKind::prefix, tok.begin, tok.begin + kAffix);
        sink.hashed(slot(kSuffixSeed ^ format_seed ^ tok.suffix), FeatureKind::suffix, tok.end - kAffix, tok.end);
      }
    });
    if (seg.option) {
      const double len = seg.end - seg.begin;
      option_chars += len;
      max_option = std::max(max_option, len);
      min_option = std::min(min_option, len);
      const double visible = len - (n.spaces - before.spaces);
      const double numeric = (n.digits - before.digits) + (n.math - before.math) + (n.num_punct - before.num_punct);
      if (visible > 0 && numeric * 2 >= visible) numeric_options += 0.25;
    }
  }
  const double stem_chars = l.segments[0].end - l.segments[0].begin;
  const double code_points = static_cast<double>(t.size() - n.continuation);

  const auto dense = [&](Dense d, double v) {
    if (v != 0.0) sink.dense(FeatureExtractor::dense_index(d, mc), static_cast<float>(v));
  };
  const double chars = std::max(code_points, 1.0);
  const double words = n.words;
  dense(Dense::format, 1.0);
  dense(Dense::log_chars, log1p_count(code_points));
  dense(Dense::log_stem_chars, log1p_count(stem_chars));
  dense(Dense::log_option_chars, log1p_count(option_chars));
  dense(Dense::log_max_option, log1p_count(max_option));
  dense(Dense::option_len_ratio, mc && max_option > 0 ? min_option / max_option : 0.0);
  dense(Dense::numeric_options, numeric_options);
  dense(Dense::log_words, log1p_count(words));
  dense(Dense::log_sentences, log1p_count(n.sentences));
  dense(Dense::log_numbers, log1p_count(n.numbers));
  dense(Dense::digit_share, n.digits / chars);
  dense(Dense::log_math_symbols, log1p_count(n.math));
  dense(Dense::log_decimal_points, log1p_count(n.decimal_points));
  dense(Dense::log_fractions, log1p_count(n.fractions));
  dense(Dense::log_percents, log1p_count(n.percents));
  dense(Dense::log_fraction_words, log1p_count(n.fraction_words));
  dense(Dense::log_how_much, log1p_count(n.how_much));
  dense(Dense::log_max_number_len, log1p_count(n.max_number_len));
  dense(Dense::log_caps_words, log1p_count(n.caps_words));
  dense(Dense::mean_word_len, words > 0 ? n.word_bytes / words / 10.0 : 0.0);
  dense(Dense::long_word_share, words > 0 ? n.long_words / words : 0.0);
  dense(Dense::log_lines, log1p_count(n.lines));
  dense(Dense::log_questions, log1p_count(n.questions));
  dense(Dense::log_brackets, log1p_count(n.brackets));
  dense(Dense::non_ascii_share, n.non_ascii / chars);
  dense(Dense::log_statements, log1p_count(n.statements));
  if (use_subject) {
    const SubjectPosterior p = subjects.finish(*subject);
    dense(Dense::subject_gain, 10.0 * p.expected_gain);
    dense(Dense::subject_confidence, p.confidence);
  }
  // Each occurrence is worth 1/sqrt(count of its group), so a prompt's n-gram block has unit
  // L2 norm when no n-gram repeats (long prompts must not win on n-gram count alone).
  return HashScales{n.words > 0 ? static_cast<float>(1.0 / std::sqrt(words)) : 0.0f,
                    n.affixes > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(n.affixes))) : 0.0f};
}

}  // namespace bulwark::router::detail
