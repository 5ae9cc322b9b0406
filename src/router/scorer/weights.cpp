#include "router/scorer/weights.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "router/scorer/features.hpp"

namespace bulwark::router {
namespace {

Error bad(std::size_t line, std::string_view what) {
  return Error::gateway(ErrorKind::internal,
                        "router weights, line " + std::to_string(line) + ": " + std::string(what));
}

// Splits off the first space-separated word of `rest`.
std::string_view next_word(std::string_view& rest) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const std::size_t end = rest.find(' ');
  const std::string_view word = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
  return word;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

bool parse_hex_byte(std::string_view s, std::uint8_t& out) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc{} || ptr != s.data() + s.size() || s.size() != 2 || v > 255) return false;
  out = static_cast<std::uint8_t>(v);
  return true;
}

std::string format_double(double v, int digits) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

}  // namespace

Result<Weights> parse_weights(std::string_view text) {
  Weights out;
  out.w.assign(kFeatureDim, 0.0f);
  bool have_format = false, have_feature_set = false, have_dim = false, have_bias = false;
  bool ended = false;
  std::size_t line_no = 0;
  std::shared_ptr<SubjectModel> subject;
  std::uint32_t classes_seen = 0;
  while (!text.empty() && !ended) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::string_view rest = line;
    const std::string_view key = next_word(rest);
    if (!have_format && key != "format") return std::unexpected(bad(line_no, "expected 'format' first"));
    if (key == "format") {
      int version = 0;
      if (next_word(rest) != kWeightsFormatName || !parse_number(next_word(rest), version)) {
        return std::unexpected(bad(line_no, "not a bulwark router weights file"));
      }
      if (version != kWeightsFormatVersion) {
        return std::unexpected(bad(line_no, "unsupported format version " + std::to_string(version)));
      }
      out.meta.format_version = version;
      have_format = true;
    } else if (key == "feature_set") {
      out.meta.feature_set_id = std::string(next_word(rest));
      if (out.meta.feature_set_id != kFeatureSetId) {
        return std::unexpected(bad(line_no, "feature set '" + out.meta.feature_set_id +
                                                "' does not match this build's '" +
                                                std::string(kFeatureSetId) + "'"));
      }
      have_feature_set = true;
    } else if (key == "created") {
      out.meta.created = std::string(rest);
    } else if (key == "model") {
      out.meta.model = std::string(rest);
    } else if (key == "target") {
      out.meta.target = std::string(rest);
    } else if (key == "data") {
      DataHash d;
      d.role = std::string(next_word(rest));
      d.file = std::string(next_word(rest));
      d.sha256 = std::string(next_word(rest));
      if (d.sha256.size() != 64 || !parse_number(next_word(rest), d.records)) {
        return std::unexpected(bad(line_no, "malformed data line"));
      }
      out.meta.data.push_back(std::move(d));
    } else if (key == "threshold") {
      CalibrationPoint p;
      if (!parse_number(next_word(rest), p.strong_fraction) ||
          !parse_number(next_word(rest), p.threshold) || p.strong_fraction < 0 ||
          p.strong_fraction > 1 || !std::isfinite(p.threshold)) {
        return std::unexpected(bad(line_no, "malformed threshold line"));
      }
      if (!out.meta.thresholds.empty() &&
          p.strong_fraction <= out.meta.thresholds.back().strong_fraction) {
        return std::unexpected(bad(line_no, "threshold fractions must ascend"));
      }
      out.meta.thresholds.push_back(p);
    } else if (key == "dim") {
      std::uint64_t dim = 0;
      if (!parse_number(next_word(rest), dim) || dim != kFeatureDim) {
        return std::unexpected(bad(line_no, "dimension does not match this build"));
      }
      have_dim = true;
    } else if (key == "bias") {
      if (!parse_number(next_word(rest), out.bias) || !std::isfinite(out.bias)) {
        return std::unexpected(bad(line_no, "malformed bias"));
      }
      have_bias = true;
    } else if (key == "w") {
      std::uint32_t index = 0;
      float value = 0;
      if (!parse_number(next_word(rest), index) || !parse_number(next_word(rest), value) ||
          !std::isfinite(value)) {
        return std::unexpected(bad(line_no, "malformed weight"));
      }
      if (index >= kFeatureDim) return std::unexpected(bad(line_no, "weight index out of range"));
      out.w[index] = value;
    } else if (key == "subject") {
      if (subject) return std::unexpected(bad(line_no, "duplicate subject model"));
      subject = std::make_shared<SubjectModel>();
      if (!parse_number(next_word(rest), subject->classes) || subject->classes == 0 ||
          subject->classes > SubjectModel::kLanes || !parse_number(next_word(rest), subject->step) ||
          !parse_number(next_word(rest), subject->temperature) || !(subject->step > 0) ||
          !std::isfinite(subject->step) || !(subject->temperature > 0) || !std::isfinite(subject->temperature)) {
        return std::unexpected(bad(line_no, "malformed subject line"));
      }
      subject->table.assign(std::size_t{SubjectModel::kSlots} * SubjectModel::kLanes, 0);
    } else if (key == "class") {
      std::uint32_t index = 0;
      float prior = 0, norm = 0, gain = 0;
      if (!subject || !parse_number(next_word(rest), index) || index != classes_seen ||
          index >= subject->classes || !parse_number(next_word(rest), prior) ||
          !parse_number(next_word(rest), norm) || !parse_number(next_word(rest), gain) ||
          !std::isfinite(prior) || !std::isfinite(norm) || !std::isfinite(gain)) {
        return std::unexpected(bad(line_no, "malformed class line"));
      }
      subject->prior[index] = prior;
      subject->log_norm[index] = norm;
      subject->gain[index] = gain;
      subject->names.emplace_back(rest);
      ++classes_seen;
    } else if (key == "q") {
      std::uint32_t index = 0;
      if (!subject || !parse_number(next_word(rest), index) || index >= SubjectModel::kSlots) {
        return std::unexpected(bad(line_no, "malformed subject row"));
      }
      const std::string_view hex = next_word(rest);
      if (hex.size() != 2 * std::size_t{subject->classes}) return std::unexpected(bad(line_no, "malformed subject row"));
      std::uint8_t* row = subject->table.data() + std::size_t{index} * SubjectModel::kLanes;
      for (std::uint32_t c = 0; c < subject->classes; ++c) {
        if (!parse_hex_byte(hex.substr(2 * c, 2), row[c])) return std::unexpected(bad(line_no, "malformed subject row"));
      }
    } else if (key == "end") {
      ended = true;
    } else {
      return std::unexpected(bad(line_no, "unknown key '" + std::string(key) + "'"));
    }
  }
  if (!ended) return std::unexpected(bad(line_no, "missing 'end' (truncated file?)"));
  if (!have_feature_set) return std::unexpected(bad(line_no, "missing feature_set"));
  if (!have_dim || !have_bias) return std::unexpected(bad(line_no, "missing dim or bias"));
  if (subject) {
    if (classes_seen != subject->classes) return std::unexpected(bad(line_no, "subject model lacks class lines"));
    out.subject = std::move(subject);
  }
  return out;
}

std::string serialize_weights(const Weights& weights) {
  std::ostringstream o;
  o << "# Bulwark smart-routing complexity scorer (docs/routing.md). Generated by\n"
    << "# bulwark-train-router; do not edit by hand.\n";
  o << "format " << kWeightsFormatName << ' ' << weights.meta.format_version << '\n';
  o << "feature_set " << weights.meta.feature_set_id << '\n';
  o << "created " << weights.meta.created << '\n';
  o << "model " << weights.meta.model << '\n';
  o << "target " << weights.meta.target << '\n';
  for (const DataHash& d : weights.meta.data) {
    o << "data " << d.role << ' ' << d.file << ' ' << d.sha256 << ' ' << d.records << '\n';
  }
  for (const CalibrationPoint& p : weights.meta.thresholds) {
    o << "threshold " << format_double(p.strong_fraction, 6) << ' ' << format_double(p.threshold, 17)
      << '\n';
  }
  o << "dim " << weights.w.size() << '\n';
  o << "bias " << format_double(weights.bias, 17) << '\n';
  for (std::size_t i = 0; i < weights.w.size(); ++i) {
    // 9 significant digits round-trip a float exactly.
    if (weights.w[i] != 0.0f) o << "w " << i << ' ' << format_double(static_cast<double>(weights.w[i]), 9) << '\n';
  }
  if (const SubjectModel* m = weights.subject.get(); m != nullptr && m->valid()) {
    o << "subject " << m->classes << ' ' << format_double(static_cast<double>(m->step), 9) << ' '
      << format_double(static_cast<double>(m->temperature), 9) << '\n';
    for (std::uint32_t c = 0; c < m->classes; ++c) {
      o << "class " << c << ' ' << format_double(static_cast<double>(m->prior[c]), 9) << ' '
        << format_double(static_cast<double>(m->log_norm[c]), 9) << ' '
        << format_double(static_cast<double>(m->gain[c]), 9) << ' '
        << (c < m->names.size() && !m->names[c].empty() ? m->names[c] : "class" + std::to_string(c)) << '\n';
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (std::uint32_t slot = 0; slot < SubjectModel::kSlots; ++slot) {
      const std::uint8_t* row = m->table.data() + std::size_t{slot} * SubjectModel::kLanes;
      bool any = false;
      hex.clear();
      for (std::uint32_t c = 0; c < m->classes; ++c) {
        any = any || row[c] != 0;
        hex.push_back(kHex[row[c] >> 4]);
        hex.push_back(kHex[row[c] & 15]);
      }
      if (any) o << "q " << slot << ' ' << hex << '\n';
    }
  }
  o << "end\n";
  return o.str();
}

Result<Weights> load_weights_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "cannot open router weights " + path.string()));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  auto parsed = parse_weights(buf.str());
  if (!parsed) parsed.error().message = path.string() + ": " + parsed.error().message;
  return parsed;
}

Status save_weights_file(const std::filesystem::path& path, const Weights& weights) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "cannot write router weights " + path.string()));
  }
  out << serialize_weights(weights);
  out.close();
  if (!out) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "failed writing router weights " + path.string()));
  }
  return {};
}

}  // namespace bulwark::router
