// bulwark-train-router: fits the smart-routing complexity scorer offline and writes the
// shipped weights file plus a markdown report. See docs/routing.md for the command line.
//
// Protocol: fit on mmlu_train + gsm8k_dev; choose the target and hyper-parameters by k-fold
// cross-validation on those two files only; report mmlu_calib (never used in fitting or in
// choosing), gsm8k_dev out-of-fold and mmlu_train in-sample; calibrate the strong-fraction
// thresholds on mmlu_calib.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstdarg>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "logistic.hpp"
#include "router/scorer/features.hpp"
#include "router/scorer/metrics.hpp"
#include "router/scorer/scorer.hpp"
#include "router/scorer/weights.hpp"

namespace fs = std::filesystem;
using namespace bulwark::router;
using bulwark::router::train::FitOptions;
using bulwark::router::train::LinearModel;
using bulwark::router::train::SparseRows;

namespace {

struct Record {
  std::string id;
  std::string source;  // "mmlu/<subject>" or "gsm8k"
  std::string prompt;
  bool weak = false;
  bool strong = false;
};

struct Dataset {
  std::string file;
  std::string sha256;
  std::vector<Record> rows;
};

__attribute__((format(printf, 1, 2))) std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
  std::vsnprintf(out.data(), out.size() + 1, fmt, ap2);
  va_end(ap2);
  return out;
}

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "bulwark-train-router: " << msg << '\n';
  std::exit(1);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) die("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) die("sha256 failed");
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += strf("%02x", md[i]);
  return hex;
}

Dataset load(const fs::path& dir, const std::string& name) {
  Dataset d;
  d.file = name;
  const std::string text = read_file(dir / name);
  d.sha256 = sha256_hex(text);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto v = boost::json::parse(line).as_object();
    Record r;
    r.id = std::string(v.at("id").as_string());
    if (const auto* src = v.if_contains("source"); src != nullptr && src->is_string()) {
      r.source = std::string(src->as_string());
    }
    r.prompt = std::string(v.at("prompt").as_string());
    r.weak = v.at("weak_correct").as_bool();
    r.strong = v.at("strong_correct").as_bool();
    d.rows.push_back(std::move(r));
  }
  if (d.rows.empty()) die(name + " is empty");
  return d;
}

// What the logit is trained to predict. All three rank prompts by a proxy of the gain from
// the strong model; cross-validation picks one.
enum class Target { weak_wrong, strong_only, gain_soft, gain_group };
const char* target_name(Target t) {
  switch (t) {
    case Target::weak_wrong: return "weak_wrong";
    case Target::strong_only: return "strong_only";
    case Target::gain_soft: return "gain_soft";
    case Target::gain_group: return "gain_group";
  }
  return "?";
}
const char* target_description(Target t) {
  switch (t) {
    case Target::weak_wrong: return "P(weak model wrong)";
    case Target::strong_only: return "P(strong right and weak wrong)";
    case Target::gain_soft:
      return "soft label (1 + strong_correct - weak_correct) / 2, so the score is monotone in the "
             "expected gain E[strong - weak]";
    case Target::gain_group:
      return "soft label (1 + (1 - a) * (strong_correct - weak_correct) + a * g) / 2, where g is the "
             "mean gain of the row's source group (MMLU subject) in the fitting rows, shrunk towards "
             "the file mean; a denoised gain_soft (a = 0 is gain_soft)";
  }
  return "?";
}
// `group_gain`: the shrunk mean gain of the row's group (gain_group only).
double label(Target t, const Record& r, double alpha, double group_gain) {
  const double s = r.strong ? 1 : 0, w = r.weak ? 1 : 0;
  switch (t) {
    case Target::weak_wrong: return 1 - w;
    case Target::strong_only: return s * (1 - w);
    case Target::gain_soft: return (1 + s - w) / 2;
    case Target::gain_group: return (1 + (1 - alpha) * (s - w) + alpha * group_gain) / 2;
  }
  return 0;
}

struct Config {
  Target target;
  double l2;
  double gsm_weight;   // example weight of GSM8K rows relative to MMLU rows
  double alpha = 0;    // gain_group: weight of the group mean in the label
  double dense_l2 = 1; // L2 of the dense (named) features, as a multiple of l2
  double subject_temp = 0;  // SubjectModel temperature (0: no subject model)
};
std::string config_name(const Config& c) {
  std::string s = strf("%s l2=%g gsm_weight=%g", target_name(c.target), c.l2, c.gsm_weight);
  if (c.target == Target::gain_group) s += strf(" alpha=%g", c.alpha);
  if (c.dense_l2 != 1) s += strf(" dense_l2=%g", c.dense_l2);
  if (c.subject_temp > 0) s += strf(" subject_temp=%g", c.subject_temp);
  return s;
}
// Pseudo-count of the shrinkage of a group's mean gain towards its file's mean.
constexpr double kGroupPrior = 20;

// A row of the fitting pool: which file it came from and its merged features.
struct PoolRow {
  const Record* rec = nullptr;
  bool gsm = false;
  std::size_t fold = 0;
  std::vector<FeatureExtractor::Entry> features;  // without the subject features
  bool mc = false;                                // multiple-choice layout
  std::vector<std::uint32_t> subject_slots;       // SubjectModel rows of its tokens
  int subject_class = -1;                         // index of its source among the classes, if any
  // The subject features of the current fit (set per fold; see subject_features()).
  std::array<FeatureExtractor::Entry, 2> subject{};
};

// ---- Subject model (naive Bayes over MMLU subjects; features.hpp) ----------------------
// Smoothing pseudo-count of a word's count per class.
constexpr double kSubjectSmoothing = 0.5;

// Builds the table from the rows with a class whose fold is not in `excluded` (bit mask).
SubjectModel build_subject_model(const std::vector<PoolRow>& pool, const std::vector<std::string>& classes,
                                 std::uint32_t excluded) {
  SubjectModel m;
  m.classes = static_cast<std::uint32_t>(classes.size());
  m.names = classes;
  const std::size_t lanes = SubjectModel::kLanes;
  std::vector<double> counts(std::size_t{SubjectModel::kSlots} * lanes, 0.0);
  std::vector<double> tokens(lanes, 0.0), docs(lanes, 0.0), gain(lanes, 0.0);
  double all_docs = 0, all_gain = 0;
  for (const PoolRow& r : pool) {
    if (r.subject_class < 0 || ((excluded >> r.fold) & 1u) != 0) continue;
    const auto c = static_cast<std::size_t>(r.subject_class);
    for (std::uint32_t slot : r.subject_slots) counts[slot * lanes + c] += 1;
    tokens[c] += static_cast<double>(r.subject_slots.size());
    docs[c] += 1;
    const double g = (r.rec->strong ? 1.0 : 0.0) - (r.rec->weak ? 1.0 : 0.0);
    gain[c] += g;
    all_docs += 1;
    all_gain += g;
  }
  double vocabulary = 0;
  m.table.assign(counts.size(), 0);
  for (std::size_t slot = 0; slot < SubjectModel::kSlots; ++slot) {
    const double* row = counts.data() + slot * lanes;
    double low = 1e300, any = 0;
    for (std::size_t c = 0; c < m.classes; ++c) {
      low = std::min(low, std::log(row[c] + kSubjectSmoothing));
      any += row[c];
    }
    if (any == 0) continue;
    vocabulary += 1;
    for (std::size_t c = 0; c < m.classes; ++c) {
      const double q = std::round((std::log(row[c] + kSubjectSmoothing) - low) / static_cast<double>(m.step));
      m.table[slot * lanes + c] = static_cast<std::uint8_t>(std::clamp(q, 0.0, 255.0));
    }
  }
  for (std::size_t c = 0; c < m.classes; ++c) {
    m.prior[c] = static_cast<float>(std::log((docs[c] + 1) / (all_docs + static_cast<double>(m.classes))));
    m.log_norm[c] = static_cast<float>(std::log(tokens[c] + kSubjectSmoothing * vocabulary));
    m.gain[c] = static_cast<float>((gain[c] + kGroupPrior * all_gain / std::max(all_docs, 1.0)) / (docs[c] + kGroupPrior));
  }
  return m;
}

std::array<FeatureExtractor::Entry, 2> subject_features(const SubjectModel& m, const PoolRow& r) {
  // The same routine the scorer runs (detail::SubjectAccumulator), fed the cached slots.
  const SubjectPosterior p = subject_posterior_of_slots(m, r.subject_slots);
  return {FeatureExtractor::Entry{FeatureExtractor::dense_index(Dense::subject_gain, r.mc), 10.0 * p.expected_gain},
          FeatureExtractor::Entry{FeatureExtractor::dense_index(Dense::subject_confidence, r.mc), p.confidence}};
}

std::uint64_t fnv(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

SparseRows rows_of(const std::vector<const PoolRow*>& rows) {
  SparseRows x;
  for (const PoolRow* r : rows) {
    for (const auto& e : r->features) {
      x.index.push_back(e.index);
      x.value.push_back(e.value);
    }
    for (const auto& e : r->subject) {
      if (e.value == 0.0) continue;
      x.index.push_back(e.index);
      x.value.push_back(e.value);
    }
    x.row_begin.push_back(x.index.size());
  }
  return x;
}

// Shrunk mean gain (strong - weak) per source group, from the given (fitting) rows only.
// A file whose rows all share one source gets no group label (its rows keep gain_soft).
std::map<std::string, double> group_gains(const std::vector<const PoolRow*>& rows) {
  std::map<std::string, std::pair<double, double>> by_group;  // source -> (sum gain, count)
  std::map<bool, std::pair<double, double>> by_file;
  std::map<bool, std::map<std::string, int>> sources;
  for (const PoolRow* r : rows) {
    const double g = (r->rec->strong ? 1.0 : 0.0) - (r->rec->weak ? 1.0 : 0.0);
    auto& a = by_group[r->rec->source];
    a.first += g;
    a.second += 1;
    auto& f = by_file[r->gsm];
    f.first += g;
    f.second += 1;
    sources[r->gsm][r->rec->source] = 1;
  }
  std::map<std::string, double> out;
  for (const PoolRow* r : rows) {
    if (sources[r->gsm].size() < 2 || out.contains(r->rec->source)) continue;
    const auto& a = by_group[r->rec->source];
    const auto& f = by_file[r->gsm];
    out[r->rec->source] = (a.first + kGroupPrior * f.first / f.second) / (a.second + kGroupPrior);
  }
  return out;
}

LinearModel fit(const std::vector<const PoolRow*>& rows, const Config& c, const LinearModel* start) {
  const SparseRows x = rows_of(rows);
  const auto groups = c.target == Target::gain_group ? group_gains(rows) : std::map<std::string, double>{};
  std::vector<double> y, cw;
  for (const PoolRow* r : rows) {
    const auto g = groups.find(r->rec->source);
    y.push_back(g == groups.end() ? label(c.target == Target::gain_group ? Target::gain_soft : c.target, *r->rec, 0, 0)
                                  : label(c.target, *r->rec, c.alpha, g->second));
    cw.push_back(r->gsm ? c.gsm_weight : 1.0);
  }
  FitOptions o;
  o.l2 = c.l2;
  o.l2_tail_from = kHashSlots;
  o.l2_tail = c.l2 * c.dense_l2;
  return train::fit_logistic(x, y, cw, kFeatureDim, o, start);
}

Weights to_weights(const LinearModel& m) {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.bias = m.bias;
  w.w.resize(kFeatureDim);
  for (std::size_t i = 0; i < kFeatureDim; ++i) w.w[i] = static_cast<float>(m.w[i]);
  return w;
}

ComplexityScorer scorer_of(Weights w) {
  auto s = ComplexityScorer::from_weights(std::move(w));
  if (!s) die(s.error().message);
  return std::move(*s);
}

RoutingMetrics metrics(const std::vector<RoutedExample>& ex) {
  auto m = routing_metrics(ex);
  if (!m) die(m.error().message);
  return *m;
}

double length_of(std::string_view s) {
  double n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

struct Row {
  std::string router;
  RoutingMetrics m;
};

std::vector<Row> baselines(const std::vector<Record>& rows) {
  std::vector<Row> out;
  std::vector<RoutedExample> ex(rows.size());
  std::vector<RoutingMetrics> random_runs;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    bulwark::FastRandom rng(seed);
    for (std::size_t i = 0; i < rows.size(); ++i) ex[i] = {rng.uniform(), rows[i].weak, rows[i].strong};
    random_runs.push_back(metrics(ex));
  }
  out.push_back({"random (mean of 200 seeds)", mean_metrics(random_runs)});
  for (std::size_t i = 0; i < rows.size(); ++i) ex[i] = {length_of(rows[i].prompt), rows[i].weak, rows[i].strong};
  out.push_back({"length-only", metrics(ex)});
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ex[i] = {static_cast<double>(rows[i].strong) - static_cast<double>(rows[i].weak), rows[i].weak, rows[i].strong};
  }
  out.push_back({"oracle", metrics(ex)});
  return out;
}

std::string table(const std::vector<Row>& rows) {
  std::string s =
      "| router | APGR (11-pt mean) | APGR (trapezoid) | CPT(50%) | CPT(80%) | PGR@10% | 20% | 30% | 40% | "
      "50% | 60% | 70% | 80% | 90% |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    s += strf("| %s | %.4f | %.4f | %.1f%% | %.1f%% |", r.router.c_str(), r.m.apgr_mean, r.m.apgr_trapezoid,
                     100 * r.m.cpt50, 100 * r.m.cpt80);
    for (std::size_t i = 1; i <= 9; ++i) s += strf(" %.3f |", r.m.pgr[i]);
    s += '\n';
  }
  return s;
}

std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

struct Args {
  fs::path data_dir;  // default: ../shared/data/routing beside the checkout
  fs::path out_weights;
  fs::path report;
  std::size_t folds = 5;
  std::string created;
  bool cv_only = false;
  // The model-selection grid. v3 fixes it beforehand to the configuration v2's cross-validation
  // chose (gain_soft, L2 0.01, GSM8K weight 10, subject temperature 0.2), so the reported
  // out-of-fold figures are not selected on their own folds; flags widen it for experiments
  // (then the selection uses the same folds and the OOF figures are optimistic).
  // (weak_wrong, strong_only and gain_group lost to gain_soft in every setting tried; see
  // docs/routing.md. They stay available through --targets.)
  std::vector<Target> targets = {Target::gain_soft};
  std::vector<double> l2s = {1e-2};
  std::vector<double> gsm_weights = {10.0};
  std::vector<double> alphas = {0.5};
  std::vector<double> dense_l2s = {1.0};
  std::vector<double> subject_temps = {0.2};
};

std::vector<double> number_list(const std::string& s) {
  std::vector<double> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stod(item));
  if (out.empty()) die("empty list: " + s);
  return out;
}

Args parse_args(int argc, char** argv) {
  Args a;
#ifdef BULWARK_SOURCE_DIR
  a.data_dir = fs::path(BULWARK_SOURCE_DIR).parent_path() / "shared/data/routing";
  a.out_weights = fs::path(BULWARK_SOURCE_DIR) / "data/router" / kWeightsFileName;
  a.report = fs::path(BULWARK_SOURCE_DIR) / "data/router/complexity-v3-report.md";
#endif
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + k);
      return argv[++i];
    };
    if (k == "--data-dir") a.data_dir = value();
    else if (k == "--out") a.out_weights = value();
    else if (k == "--report") a.report = value();
    else if (k == "--folds") a.folds = std::stoul(value());
    else if (k == "--created") a.created = value();
    else if (k == "--cv-only") a.cv_only = true;
    else if (k == "--l2") a.l2s = number_list(value());
    else if (k == "--gsm-weights") a.gsm_weights = number_list(value());
    else if (k == "--alphas") a.alphas = number_list(value());
    else if (k == "--dense-l2") a.dense_l2s = number_list(value());
    else if (k == "--subject-temps") a.subject_temps = number_list(value());
    else if (k == "--targets") {
      a.targets.clear();
      std::istringstream in(value());
      std::string item;
      while (std::getline(in, item, ',')) {
        if (item == "weak_wrong") a.targets.push_back(Target::weak_wrong);
        else if (item == "strong_only") a.targets.push_back(Target::strong_only);
        else if (item == "gain_soft") a.targets.push_back(Target::gain_soft);
        else if (item == "gain_group") a.targets.push_back(Target::gain_group);
        else die("unknown target " + item);
      }
    }
    else if (k == "--help" || k == "-h") {
      std::cout << "usage: bulwark-train-router [--data-dir DIR] [--out FILE] [--report FILE]\n"
                   "                            [--folds K] [--created YYYY-MM-DD] [--cv-only]\n"
                   "                            [--targets weak_wrong,strong_only,gain_soft,gain_group]\n"
                   "                            [--l2 0.03,0.01,...] [--gsm-weights 1,3,...]\n"
                   "                            [--dense-l2 1,0.1,...] [--alphas 0.5,...]\n"
                   "                            [--subject-temps 0.2,0.4,... (0: no subject model)]\n"
                   "  --cv-only  run the cross-validation on the fitting files only; read no\n"
                   "             calibration data and write nothing (for feature development)\n";
      std::exit(0);
    } else {
      die("unknown argument " + k);
    }
  }
  if (a.folds < 2) die("--folds must be at least 2");
  if (a.created.empty()) a.created = today_utc();
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const Dataset mmlu = load(args.data_dir, "mmlu_train.jsonl");
  const Dataset gsm = load(args.data_dir, "gsm8k_dev.jsonl");

  const FeatureExtractor fx;
  std::vector<PoolRow> pool;
  // Occurrences of each n-gram per slot, to name a slot by its most frequent n-gram (report only).
  std::map<std::uint32_t, std::map<std::string, std::uint32_t>> slot_counts;
  std::vector<Feature> raw;
  // Subject classes: the sources of the main fit file, when it has several (MMLU subjects).
  std::vector<std::string> classes;
  for (const Record& r : mmlu.rows) classes.push_back(r.source);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  if (classes.size() < 2 || classes.size() > SubjectModel::kLanes) {
    std::cerr << strf("%zu sources in %s: no subject model\n", classes.size(), mmlu.file.c_str());
    classes.clear();
  }
  std::vector<double> temps = args.subject_temps;
  if (classes.empty()) temps = {0.0};
  for (const auto* d : {&mmlu, &gsm}) {
    for (const Record& r : d->rows) {
      // Folds by prompt hash keep duplicate prompts together.
      PoolRow row;
      row.rec = &r;
      row.gsm = d == &gsm;
      row.fold = fnv(r.prompt) % args.folds;
      row.features = fx.extract_merged(r.prompt);
      const std::uint32_t mc_format = FeatureExtractor::dense_index(Dense::format, true);
      row.mc = std::any_of(row.features.begin(), row.features.end(),
                           [&](const FeatureExtractor::Entry& e) { return e.index == mc_format; });
      row.subject_slots = subject_slots(r.prompt);
      if (d == &mmlu && !classes.empty()) {
        row.subject_class =
            static_cast<int>(std::lower_bound(classes.begin(), classes.end(), r.source) - classes.begin());
      }
      pool.push_back(std::move(row));
      fx.extract(r.prompt, raw);
      for (const Feature& f : raw) {
        if (f.kind != FeatureKind::dense) {
          // Every fit prompt of the MMLU file is multiple choice and every GSM8K one free-form.
          ++slot_counts[f.index][(d == &gsm ? "free:" : "mc:") + FeatureExtractor::describe(f, r.prompt)];
        }
      }
    }
  }
  std::size_t nnz = 0;
  for (const auto& r : pool) nnz += r.features.size();
  std::cerr << strf("pool: %zu rows, %zu non-zeros, %zu active slots, %zu subject classes (%.1fs)\n", pool.size(),
                    nnz, slot_counts.size(), classes.size(), elapsed());

  // Subject tables by excluded folds (bit mask), built on demand. A fit never sees subject
  // features computed from a table that counted the row itself (cross-fitting): a row of
  // fold j in a fit that holds out fold k gets the table without folds j and k; the held-out
  // rows get the table without fold k; the final fit's rows get the table without their own
  // fold, and the shipped table uses every fold.
  std::map<std::uint32_t, SubjectModel> tables;
  const auto table_without = [&](std::uint32_t mask) -> SubjectModel& {
    auto it = tables.find(mask);
    if (it == tables.end()) it = tables.emplace(mask, build_subject_model(pool, classes, mask)).first;
    return it->second;
  };
  // Sets every row's subject features for a fit that holds out `held_out` (folds: none).
  const auto set_subject_features = [&](double temp, std::size_t held_out) {
    for (auto& r : pool) {
      r.subject = {};
      if (temp <= 0) continue;
      std::uint32_t mask = 1u << r.fold;
      if (held_out < args.folds) mask |= 1u << held_out;
      SubjectModel& m = table_without(mask);
      m.temperature = static_cast<float>(temp);
      r.subject = subject_features(m, r);
    }
  };

  // Grid: per target, l2 descending so each fit warm-starts from the previous, stronger one.
  std::vector<Config> grid;
  std::vector<double> l2s = args.l2s;
  std::sort(l2s.begin(), l2s.end(), std::greater<>());
  for (double temp : temps) {
    for (Target t : args.targets) {
      for (double gw : args.gsm_weights) {
        for (double dl : args.dense_l2s) {
          for (double al : t == Target::gain_group ? args.alphas : std::vector<double>{0.0}) {
            for (double l2 : l2s) grid.push_back({t, l2, gw, al, dl, temp});
          }
        }
      }
    }
  }
  const auto same_but_l2 = [](const Config& a, const Config& b) {
    return a.target == b.target && a.gsm_weight == b.gsm_weight && a.alpha == b.alpha &&
           a.dense_l2 == b.dense_l2 && a.subject_temp == b.subject_temp;
  };
  const auto logit_of = [](const LinearModel& m, const PoolRow& r) {
    double z = m.bias;
    for (const auto& e : r.features) z += m.w[e.index] * e.value;
    for (const auto& e : r.subject) z += m.w[e.index] * e.value;
    return z;
  };
  // oof[config][pool row] = out-of-fold logit.
  std::vector<std::vector<double>> oof(grid.size(), std::vector<double>(pool.size()));
  for (std::size_t k = 0; k < args.folds; ++k) {
    std::vector<const PoolRow*> fit_rows;
    for (const auto& r : pool) {
      if (r.fold != k) fit_rows.push_back(&r);
    }
    LinearModel prev;
    double features_temp = -1;
    for (std::size_t g = 0; g < grid.size(); ++g) {
      if (grid[g].subject_temp != features_temp) {
        features_temp = grid[g].subject_temp;
        set_subject_features(features_temp, k);
      }
      const bool warm = g > 0 && same_but_l2(grid[g - 1], grid[g]);
      prev = fit(fit_rows, grid[g], warm ? &prev : nullptr);
      std::size_t i = 0;
      for (const auto& r : pool) {
        if (r.fold == k) oof[g][i] = logit_of(prev, r);
        ++i;
      }
    }
    std::cerr << strf("fold %zu/%zu done (%.1fs)\n", k + 1, args.folds, elapsed());
  }
  const auto domain_metrics = [&](const std::vector<double>& scores, bool want_gsm) {
    std::vector<RoutedExample> ex;
    for (std::size_t i = 0; i < pool.size(); ++i) {
      if (pool[i].gsm == want_gsm) ex.push_back({scores[i], pool[i].rec->weak, pool[i].rec->strong});
    }
    return metrics(ex);
  };
  std::string cv_table =
      "| target | l2 | gsm_weight | dense L2 x | subject temp | APGR mmlu_train (OOF) | APGR gsm8k_dev (OOF) | mean (selection) |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  std::size_t best = 0;
  double best_value = -1;
  for (std::size_t g = 0; g < grid.size(); ++g) {
    const double a = domain_metrics(oof[g], false).apgr_mean;
    const double b = domain_metrics(oof[g], true).apgr_mean;
    const double v = (a + b) / 2;
    cv_table += strf("| %s | %g | %g | %g | %g | %.4f | %.4f | %.4f |\n", target_name(grid[g].target), grid[g].l2,
                     grid[g].gsm_weight, grid[g].dense_l2, grid[g].subject_temp, a, b, v);
    std::cerr << strf("cv %-40s mmlu %.4f gsm %.4f mean %.4f\n", config_name(grid[g]).c_str(), a, b, v);
    if (v > best_value) {
      best_value = v;
      best = g;
    }
  }
  const Config chosen = grid[best];
  std::cerr << "chosen: " << config_name(chosen) << '\n';
  // Per-fold APGR of the chosen configuration (each fold's prompts scored by the model fitted
  // without that fold), to show the spread behind the pooled out-of-fold figure.
  std::string fold_table = "| fold | mmlu_train n | mmlu_train APGR | gsm8k_dev n | gsm8k_dev APGR |\n|---:|---:|---:|---:|---:|\n";
  {
    double sum_m = 0, sum_g = 0;
    for (std::size_t k = 0; k < args.folds; ++k) {
      std::vector<RoutedExample> em, eg;
      for (std::size_t i = 0; i < pool.size(); ++i) {
        if (pool[i].fold != k) continue;
        (pool[i].gsm ? eg : em).push_back({oof[best][i], pool[i].rec->weak, pool[i].rec->strong});
      }
      const double am = metrics(em).apgr_mean, ag = metrics(eg).apgr_mean;
      sum_m += am;
      sum_g += ag;
      fold_table += strf("| %zu | %zu | %.4f | %zu | %.4f |\n", k, em.size(), am, eg.size(), ag);
      std::cerr << strf("fold %zu: mmlu_train n %zu APGR %.4f, gsm8k_dev n %zu APGR %.4f\n", k, em.size(), am,
                        eg.size(), ag);
    }
    const auto n = static_cast<double>(args.folds);
    fold_table += strf("| mean of folds | | %.4f | | %.4f |\n", sum_m / n, sum_g / n);
    std::cerr << strf("mean of folds: mmlu_train %.4f, gsm8k_dev %.4f\n", sum_m / n, sum_g / n);
  }
  if (args.cv_only) return 0;

  // Only now is the calibration file read: nothing above could have looked at it.
  const Dataset calib = load(args.data_dir, "mmlu_calib.jsonl");

  // Reported gsm8k_dev numbers: out-of-fold scores from the chosen configuration, each fold
  // refit (cold start) and scored through the runtime scorer.
  std::vector<double> gsm_oof(gsm.rows.size());
  for (std::size_t k = 0; k < args.folds; ++k) {
    std::vector<const PoolRow*> fit_rows;
    for (const auto& r : pool) {
      if (r.fold != k) fit_rows.push_back(&r);
    }
    set_subject_features(chosen.subject_temp, k);
    Weights fold_weights = to_weights(fit(fit_rows, chosen, nullptr));
    if (chosen.subject_temp > 0) {
      auto table = std::make_shared<SubjectModel>(table_without(1u << k));
      table->temperature = static_cast<float>(chosen.subject_temp);
      fold_weights.subject = std::move(table);
    }
    const ComplexityScorer fold_scorer = scorer_of(std::move(fold_weights));
    std::size_t gi = 0;
    for (const auto& r : pool) {
      if (!r.gsm) continue;
      if (r.fold == k) gsm_oof[gi] = fold_scorer.score(r.rec->prompt);
      ++gi;
    }
  }

  std::vector<const PoolRow*> all_rows;
  for (const auto& r : pool) all_rows.push_back(&r);
  set_subject_features(chosen.subject_temp, args.folds);
  const LinearModel final_model = fit(all_rows, chosen, nullptr);
  Weights weights = to_weights(final_model);
  if (chosen.subject_temp > 0) {
    auto table = std::make_shared<SubjectModel>(table_without(0));
    table->temperature = static_cast<float>(chosen.subject_temp);
    weights.subject = std::move(table);
  }
  weights.meta.created = args.created;
  weights.meta.model = strf(
      "logistic regression, L2 %g on all weights but the bias, L-BFGS; GSM8K example weight %g; "
      "dense-feature L2 x%g; hash slots 2^%u; subject model: naive Bayes over %zu subjects, 2^%u rows, "
      "temperature %g, cross-fitted; selected by %zu-fold CV on the fit data",
      chosen.l2, chosen.gsm_weight, chosen.dense_l2, kHashBits, classes.size(), SubjectModel::kBits,
      chosen.subject_temp, args.folds);
  weights.meta.target = std::string(target_name(chosen.target)) + ": " + target_description(chosen.target);
  weights.meta.data = {{"fit", mmlu.file, mmlu.sha256, mmlu.rows.size()},
                       {"fit", gsm.file, gsm.sha256, gsm.rows.size()},
                       {"calib", calib.file, calib.sha256, calib.rows.size()}};

  // Calibration: thresholds on mmlu_calib that send each fraction of prompts strong.
  {
    const ComplexityScorer uncalibrated = scorer_of(weights);
    std::vector<double> s;
    for (const Record& r : calib.rows) s.push_back(uncalibrated.score(r.prompt));
    std::sort(s.begin(), s.end(), std::greater<>());
    const std::size_t n = s.size();
    for (int pct = 0; pct <= 100; pct += 5) {
      const double f = pct / 100.0;
      const auto k = static_cast<std::size_t>(std::llround(f * static_cast<double>(n)));
      double t;
      if (k == 0) t = std::nextafter(s.front(), 2.0);
      else if (k >= n) t = s.back();
      else t = (s[k - 1] + s[k]) / 2;  // the k highest-scoring prompts are at or above t
      weights.meta.thresholds.push_back({f, t});
    }
  }
  if (auto st = save_weights_file(args.out_weights, weights); !st) die(st.error().message);
  // Everything reported from here on uses the file as written, read back.
  const auto loaded = ComplexityScorer::load(args.out_weights);
  if (!loaded) die(loaded.error().message);
  const ComplexityScorer& scorer = *loaded;

  const auto scored = [&](const std::vector<Record>& rows, const std::vector<double>* precomputed) {
    std::vector<RoutedExample> ex;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      ex.push_back({precomputed ? (*precomputed)[i] : scorer.score(rows[i].prompt), rows[i].weak, rows[i].strong});
    }
    return metrics(ex);
  };
  const auto section = [&](const std::string& title, const std::string& note, const std::vector<Record>& rows,
                           const RoutingMetrics& ours) {
    std::vector<Row> r = {{"**bulwark complexity-v3**", ours}};
    for (auto& b : baselines(rows)) r.push_back(std::move(b));
    return strf("### %s\n\n%s\n\nW = %.2f%%, S = %.2f%%, n = %zu.\n\n%s\n", title.c_str(), note.c_str(),
                100 * r[0].m.weak_accuracy, 100 * r[0].m.strong_accuracy, rows.size(), table(r).c_str());
  };
  const RoutingMetrics calib_m = scored(calib.rows, nullptr);
  const RoutingMetrics gsm_m = scored(gsm.rows, &gsm_oof);
  const RoutingMetrics train_m = scored(mmlu.rows, nullptr);

  // Largest weights, named by the first n-gram seen in each slot.
  std::vector<std::pair<double, std::uint32_t>> ranked;
  for (std::uint32_t i = 0; i < kFeatureDim; ++i) {
    if (weights.w[i] != 0.0f) ranked.push_back({static_cast<double>(weights.w[i]), i});
  }
  std::sort(ranked.begin(), ranked.end());
  const auto name_of = [&](std::uint32_t i) {
    if (i >= kHashSlots) {
      const Feature f{i, 1.0f, FeatureKind::dense, 0, 0};
      return FeatureExtractor::describe(f, "");
    }
    const auto it = slot_counts.find(i);
    if (it == slot_counts.end()) return std::string("?");
    const auto top_name = std::max_element(it->second.begin(), it->second.end(),
                                           [](const auto& a, const auto& b) { return a.second < b.second; });
    return top_name->first + (it->second.size() > 1 ? strf(" (+%zu)", it->second.size() - 1) : std::string());
  };
  std::string top = "| towards strong | weight | towards weak | weight |\n|---|---:|---|---:|\n";
  for (std::size_t i = 0; i < 15 && i < ranked.size(); ++i) {
    const auto& hi = ranked[ranked.size() - 1 - i];
    const auto& lo = ranked[i];
    top += strf("| `%s` | %.3f | `%s` | %.3f |\n", name_of(hi.second).c_str(), hi.first, name_of(lo.second).c_str(),
                lo.first);
  }

  std::string thresholds = "| strong fraction | score threshold |\n|---:|---:|\n";
  for (const auto& p : weights.meta.thresholds) {
    if (std::fmod(p.strong_fraction * 100 + 0.5, 10.0) < 1.0 || p.strong_fraction == 0.2 || p.strong_fraction == 0.5 ||
        p.strong_fraction == 0.8) {
      thresholds += strf("| %.0f%% | %.6f |\n", 100 * p.strong_fraction, p.threshold);
    }
  }

  std::string report;
  report += "# Complexity scorer complexity-v3: training report\n\n";
  report += strf("Generated by `bulwark-train-router` on %s (feature set `%s`). Deterministic: the same data "
                 "and `--created` date give a byte-identical weights file and report.\n\n",
                 weights.meta.created.c_str(), std::string(kFeatureSetId).c_str());
  report += "## Data\n\n| role | file | records | sha256 |\n|---|---|---:|---|\n";
  for (const auto& d : weights.meta.data) {
    report += strf("| %s | %s | %llu | `%s` |\n", d.role.c_str(), d.file.c_str(),
                   static_cast<unsigned long long>(d.records), d.sha256.c_str());
  }
  report += strf("\n## Model selection (%zu-fold cross-validation on the fit data only)\n\n", args.folds);
  report += "Folds are assigned by a hash of the prompt text. Selection maximises the mean of the two "
            "out-of-fold APGRs (11-point mean). mmlu_calib is not read until the choice is made.\n\n";
  report += cv_table;
  report += strf("\nChosen: **%s**. Target: %s.\n\n", config_name(chosen).c_str(), target_description(chosen.target));
  report += strf("Per fold (fold = FNV-1a 64 of the prompt text mod %zu; APGR within the fold's prompts, "
                 "scored by the model fitted without that fold):\n\n",
                 args.folds) +
            fold_table + "\n";
  report += "## Results\n\n"
            "APGR is the mean of PGR(0.0..1.0) (11 points) and the trapezoid under the same points; "
            "CPT(x%) is the smallest strong-call fraction recovering x% of the weak-strong gap. "
            "Metric code: `src/router/scorer/metrics.hpp`.\n\n";
  report += section("mmlu_calib (held out: never used for fitting or model selection)",
                    "Scores from the shipped weights file. The thresholds below were also taken from this "
                    "file, which does not affect these rank-based metrics.",
                    calib.rows, calib_m);
  report += section("gsm8k_dev (out-of-fold)",
                    strf("Each prompt scored by a model fitted without its fold (%zu folds, chosen "
                         "configuration). %s The word-problem features of feature set fs3 were designed "
                         "while looking at gsm8k_dev (docs/routing.md), so this is not a clean hold-out.",
                         args.folds,
                         grid.size() == 1 ? "The configuration was fixed before this run, not selected on these folds."
                                          : "The configuration was selected by the same cross-validation, so "
                                            "this is slightly optimistic."),
                    gsm.rows, gsm_m);
  report += section("mmlu_train (in-sample: these prompts were used for fitting)", "Not a generalisation estimate.",
                    mmlu.rows, train_m);
  report += "## Strong-fraction thresholds (calibrated on mmlu_calib)\n\n" + thresholds;
  report += "\n## Largest weights\n\nA hashed slot is named by its most frequent n-gram in the fit data; "
            "(+k) counts the other n-grams that collide in it and share its weight.\n\n" + top;
  std::ofstream(args.report, std::ios::binary | std::ios::trunc) << report;
  std::cerr << strf("wrote %s and %s (%.1fs)\ncalib APGR %.4f, gsm8k OOF APGR %.4f\n",
                    args.out_weights.c_str(), args.report.c_str(), elapsed(), calib_m.apgr_mean,
                           gsm_m.apgr_mean);
  return 0;
}
