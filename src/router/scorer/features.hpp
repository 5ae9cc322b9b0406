#pragma once
// Prompt text -> sparse feature vector for the complexity scorer. The same code runs in the
// offline trainer and in the gateway, so a weights file is only valid for the feature set
// it was trained with (kFeatureSetId); change the id whenever extraction changes. The
// extraction itself lives in feature_visit.hpp.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bulwark::router {

inline constexpr std::string_view kFeatureSetId = "bulwark-complexity-fs3";

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
  log_numbers,       // number tokens (word tokens that start with a digit)
  digit_share,
  log_math_symbols,
  log_decimal_points,  // "12.5": numbers with a decimal point (money, measures)
  log_fractions,     // "3/4": numbers with a fraction bar
  log_percents,      // "40%"
  log_fraction_words,  // half, third(s), quarter(s), twice, double, triple, ...
  log_how_much,      // "how much" (amount questions)
  log_max_number_len,
  log_caps_words,    // all-caps words (NOT, EXCEPT, acronyms)
  mean_word_len,
  long_word_share,   // words of 9+ letters
  log_lines,
  log_questions,     // '?' count
  log_brackets,
  non_ascii_share,
  log_statements,    // "Statement 1 |" / "Scenario 1 |" style pairs
  subject_gain,      // 10 x expected gain under the subject posterior (SubjectModel)
  subject_confidence,  // largest subject posterior
  count_
};
inline constexpr std::uint32_t kDenseCount = static_cast<std::uint32_t>(Dense::count_);
inline constexpr std::uint32_t kFeatureDim = kHashSlots + 2 * kDenseCount;

enum class FeatureKind : std::uint8_t { dense, word, bigram, prefix, suffix };

// What a hashed occurrence is worth: visit_features emits hashed features with unit value and
// returns these scales (known only after the scan), so the scorer sums raw weights per group
// and multiplies once. Word unigrams and bigrams share `word`, prefixes and suffixes `affix`.
struct HashScales {
  float word = 0;
  float affix = 0;
};

// Multinomial naive Bayes over the prompt's word tokens, trained offline on the subject labels
// of the fit data (MMLU subjects), with each subject's mean gain (strong - weak correct). It
// feeds two dense features: the expected gain under the posterior and the posterior's peak.
// Learned from ~8,000 labelled subjects instead of ~8,000 noisy gain labels, it tells the
// linear model which domain a prompt is from far better than the n-gram weights alone.
//
// Per word token: one row of kLanes bytes (one cache line), q[c] = round((log(count(word, c) +
// a) - min_c log(count(word, c) + a)) / step); the per-row minimum is the same for every class
// and cancels in the posterior. log P(c | prompt) = temperature * (prior[c] + step * sum q[c] -
// tokens * log_norm[c]) + const.
struct SubjectModel {
  static constexpr unsigned kBits = 14;
  static constexpr std::uint32_t kSlots = 1u << kBits;
  static constexpr std::uint32_t kLanes = 64;  // classes, padded
  std::uint32_t classes = 0;                   // <= kLanes
  float step = 1.0f / 24;                      // nats per quantisation unit
  float temperature = 1.0f;
  std::array<float, kLanes> prior{};           // log P(c)
  std::array<float, kLanes> log_norm{};        // log(total tokens of c + a * vocabulary)
  std::array<float, kLanes> gain{};            // mean gain of c (shrunk)
  std::vector<std::string> names;              // class names (report and explain only)
  std::vector<std::uint8_t> table;             // kSlots * kLanes
  bool valid() const noexcept {
    return classes > 0 && classes <= kLanes && table.size() == std::size_t{kSlots} * kLanes;
  }
};

struct SubjectPosterior {
  double expected_gain = 0;
  double confidence = 0;
};
// The subject features of a prompt (what visit_features emits as subject_gain/confidence,
// before scaling), and the hashed rows it reads (for training the table).
SubjectPosterior subject_posterior(const SubjectModel& m, std::string_view prompt);
std::vector<std::uint32_t> subject_slots(std::string_view prompt);
SubjectPosterior subject_posterior_of_slots(const SubjectModel& m, const std::vector<std::uint32_t>& slots);

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
  FeatureExtractor() = default;
  // With a subject model (may be null: the subject features are then absent).
  explicit FeatureExtractor(std::shared_ptr<const SubjectModel> subject) : subject_(std::move(subject)) {}

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

 private:
  std::shared_ptr<const SubjectModel> subject_;
};

}  // namespace bulwark::router
