#include "router/scorer/features.hpp"

#include <algorithm>
#include <array>

#include "router/scorer/feature_visit.hpp"

namespace bulwark::router {

std::string_view FeatureExtractor::dense_name(Dense d) noexcept {
  static constexpr std::array<std::string_view, kDenseCount> names = {
      "format",          "log_chars",        "log_stem_chars", "log_option_chars",
      "log_max_option",  "option_len_ratio", "numeric_options", "log_words",
      "log_sentences",   "log_numbers",      "digit_share",    "log_math_symbols",
      "log_decimal_points", "log_fractions", "log_percents", "log_fraction_words",
      "log_how_much",    "log_max_number_len", "log_caps_words", "mean_word_len",
      "long_word_share", "log_lines",        "log_questions",  "log_brackets",
      "non_ascii_share", "log_statements",   "subject_gain",   "subject_confidence"};
  const auto i = static_cast<std::size_t>(d);
  return i < names.size() ? names[i] : std::string_view{"?"};
}

void FeatureExtractor::extract(std::string_view t, std::vector<Feature>& out) const {
  out.clear();
  struct Collect {
    std::vector<Feature>& out;
    void hashed(std::uint32_t slot, FeatureKind kind, std::uint32_t begin, std::uint32_t end) {
      out.push_back(Feature{slot, 1.0f, kind, begin, end});
    }
    void dense(std::uint32_t index, float value) { out.push_back(Feature{index, value, FeatureKind::dense, 0, 0}); }
  };
  const HashScales scales = detail::visit_features(t, subject_.get(), Collect{out});
  for (Feature& f : out) {
    if (f.kind == FeatureKind::word || f.kind == FeatureKind::bigram) f.value = scales.word;
    if (f.kind == FeatureKind::prefix || f.kind == FeatureKind::suffix) f.value = scales.affix;
  }
}

SubjectPosterior subject_posterior(const SubjectModel& m, std::string_view prompt) {
  if (!m.valid()) return {};
  if (prompt.size() > 0xffffffffu) prompt = prompt.substr(0, 0xffffffffu);
  detail::SubjectAccumulator acc;
  detail::for_each_subject_slot(prompt, detail::layout_of(prompt), [&](std::uint32_t slot) {
    acc.add(m.table.data() + std::size_t{slot} * SubjectModel::kLanes);
  });
  return acc.finish(m);
}

SubjectPosterior subject_posterior_of_slots(const SubjectModel& m, const std::vector<std::uint32_t>& slots) {
  if (!m.valid()) return {};
  detail::SubjectAccumulator acc;
  for (std::uint32_t slot : slots) acc.add(m.table.data() + std::size_t{slot % SubjectModel::kSlots} * SubjectModel::kLanes);
  return acc.finish(m);
}

std::vector<std::uint32_t> subject_slots(std::string_view prompt) {
  std::vector<std::uint32_t> out;
  detail::for_each_subject_slot(prompt, detail::layout_of(prompt), [&](std::uint32_t slot) { out.push_back(slot); });
  return out;
}

std::vector<FeatureExtractor::Entry> FeatureExtractor::extract_merged(std::string_view prompt) const {
  std::vector<Feature> raw;
  extract(prompt, raw);
  std::vector<Entry> entries;
  entries.reserve(raw.size());
  for (const Feature& f : raw) entries.push_back(Entry{f.index, static_cast<double>(f.value)});
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.index < b.index; });
  std::vector<Entry> merged;
  merged.reserve(entries.size());
  for (const Entry& e : entries) {
    if (!merged.empty() && merged.back().index == e.index) {
      merged.back().value += e.value;
    } else {
      merged.push_back(e);
    }
  }
  return merged;
}

std::string FeatureExtractor::describe(const Feature& f, std::string_view prompt) {
  if (f.kind == FeatureKind::dense) {
    if (f.index < kHashSlots || f.index >= kFeatureDim) return "?";
    const std::uint32_t d = f.index - kHashSlots;
    const bool mc = d < kDenseCount;
    return std::string(mc ? "mc:" : "free:") +
           std::string(dense_name(static_cast<Dense>(mc ? d : d - kDenseCount)));
  }
  std::string name = f.kind == FeatureKind::word     ? "w:"
                     : f.kind == FeatureKind::bigram ? "w2:"
                     : f.kind == FeatureKind::prefix ? "p:"
                                                     : "s:";
  if (f.begin > f.end || f.end > prompt.size()) return name + "?";
  if (f.kind == FeatureKind::word &&
      std::all_of(prompt.begin() + f.begin, prompt.begin() + f.end,
                  [](char c) { return detail::is_digit(static_cast<unsigned char>(c)); })) {
    // Numbers are hashed by digit count, not value.
    return name + "#" + std::to_string(f.end - f.begin) + "-digit";
  }
  bool gap = false;
  for (std::uint32_t k = f.begin; k < f.end; ++k) {
    const auto c = static_cast<unsigned char>(prompt[k]);
    if (detail::is_word_byte(c)) {
      if (gap) name.push_back(' ');
      gap = false;
      name.push_back(static_cast<char>(detail::lower(c)));
    } else {
      gap = true;
    }
  }
  return name;
}

}  // namespace bulwark::router
