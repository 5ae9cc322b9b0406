#pragma once
// The scorer's weights file: plain text, versioned, with the metadata needed to tell which
// code and data produced it. A file whose feature-set id differs from the running code's
// (kFeatureSetId) is rejected: its weights would be applied to the wrong features.
//
//   format bulwark-router-weights 2
//   feature_set bulwark-complexity-fs3
//   created 2026-11-24
//   model <free text: learner and hyper-parameters>
//   target <free text: what the logit predicts>
//   data <role> <file name> <sha256 hex> <records>      (repeated)
//   threshold <strong fraction> <score threshold>        (repeated, fractions ascending)
//   dim <feature dimension>
//   bias <logit intercept>
//   w <index> <weight>                                   (repeated, non-zero weights only)
//   subject <classes> <step> <temperature>               (optional: the SubjectModel)
//   class <index> <log prior> <log norm> <gain> <name>   (one per class, after `subject`)
//   q <slot> <2 hex digits per class>                    (repeated, non-zero rows only)
//   end
//
// Version 2 added the subject lines (feature set bulwark-complexity-fs2); version 1 files
// are refused (their feature set is refused anyway). Feature set fs3 (complexity-v3.weights)
// keeps format version 2; fs2 files are refused by their feature-set id.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "router/scorer/features.hpp"

namespace bulwark::router {

inline constexpr int kWeightsFormatVersion = 2;
inline constexpr std::string_view kWeightsFormatName = "bulwark-router-weights";

struct DataHash {
  std::string role;  // "fit" or "calib"
  std::string file;
  std::string sha256;
  std::uint64_t records = 0;
};

struct CalibrationPoint {
  double strong_fraction = 0;  // share of traffic sent to the strong tier
  double threshold = 0;        // score >= threshold goes strong
};

struct WeightsMetadata {
  int format_version = kWeightsFormatVersion;
  std::string feature_set_id;
  std::string created;
  std::string model;
  std::string target;
  std::vector<DataHash> data;
  std::vector<CalibrationPoint> thresholds;  // ascending strong_fraction
};

struct Weights {
  WeightsMetadata meta;
  double bias = 0;
  std::vector<float> w;  // kFeatureDim entries
  std::shared_ptr<const SubjectModel> subject;  // optional
};

Result<Weights> parse_weights(std::string_view text);
std::string serialize_weights(const Weights& weights);
Result<Weights> load_weights_file(const std::filesystem::path& path);
Status save_weights_file(const std::filesystem::path& path, const Weights& weights);

}  // namespace bulwark::router
