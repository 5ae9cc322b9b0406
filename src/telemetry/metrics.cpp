#include "telemetry/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace bulwark::telemetry {
namespace {

struct FamilyInfo {
  std::string_view name;
  std::string_view help;
  std::vector<std::string_view> labels;
};

const FamilyInfo kCounters[] = {
    {"bulwark_requests_total", "Client requests by model asked for and HTTP status returned.", {"model", "status"}},
    {"bulwark_upstream_attempts_total", "Upstream attempts by target and outcome.", {"target", "outcome"}},
    {"bulwark_route_decisions_total", "Routed-model decisions by model, tier chosen and what decided it.", {"model", "tier", "source"}},
};
const FamilyInfo kHistograms[] = {
    {"bulwark_request_duration_seconds", "Total time from request received to response complete.", {"model"}},
    {"bulwark_upstream_duration_seconds", "Time of each upstream attempt until its response completed.", {"target"}},
    {"bulwark_gateway_overhead_seconds", "Time spent inside the gateway: total minus upstream time.", {"model"}},
    {"bulwark_time_to_first_token_seconds", "Time from request received to the first streamed token sent.", {"model"}},
};
const FamilyInfo kGauges[] = {
    {"bulwark_in_flight_requests", "Requests being processed.", {}},
    {"bulwark_open_connections", "Open client connections.", {}},
};

std::span<const double> buckets_for(HistogramId id) {
  if (id == HistogramId::overhead) return kOverheadBuckets;
  return kLatencyBuckets;
}

void append_escaped_label(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') { out += "\\n"; continue; }
    out.push_back(c);
  }
}

void append_labels(std::string& out, const FamilyInfo& fam, std::string_view key, std::string_view extra = {}) {
  if (fam.labels.empty() && extra.empty()) return;
  out.push_back('{');
  std::size_t start = 0;
  for (std::size_t i = 0; i < fam.labels.size(); ++i) {
    const std::size_t end = std::min(key.find('\x1f', start), key.size());
    if (i) out.push_back(',');
    out += fam.labels[i];
    out += "=\"";
    append_escaped_label(out, key.substr(start, end - start));
    out.push_back('"');
    start = end + 1;
  }
  if (!extra.empty()) {
    if (!fam.labels.empty()) out.push_back(',');
    out += extra;
  }
  out.push_back('}');
}

void append_number(std::string& out, double v) {
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
  out.append(buf, static_cast<std::size_t>(n));
}

}  // namespace

void Histogram::observe(double value) noexcept {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, value) * 1e9), std::memory_order_relaxed);
}

Shard::Shard() = default;

void Shard::inc(CounterId id, std::string_view labels, std::uint64_t n) {
  auto& fam = counters_[static_cast<std::size_t>(id)];
  // Owner-only modification makes this unlocked lookup safe (see header).
  if (auto it = fam.series.find(labels); it != fam.series.end()) {
    it->second->fetch_add(n, std::memory_order_relaxed);
    return;
  }
  std::lock_guard lock(fam.mutex);
  auto [it, _] = fam.series.emplace(std::string(labels), std::make_unique<std::atomic<std::uint64_t>>(0));
  it->second->fetch_add(n, std::memory_order_relaxed);
}

void Shard::observe(HistogramId id, std::string_view labels, double seconds) {
  auto& fam = histograms_[static_cast<std::size_t>(id)];
  if (auto it = fam.series.find(labels); it != fam.series.end()) {
    it->second->observe(seconds);
    return;
  }
  std::lock_guard lock(fam.mutex);
  auto [it, _] = fam.series.emplace(std::string(labels), std::make_unique<Histogram>(buckets_for(id)));
  it->second->observe(seconds);
}

Registry::Registry(std::size_t shards) {
  shards_.reserve(std::max<std::size_t>(1, shards));
  for (std::size_t i = 0; i < std::max<std::size_t>(1, shards); ++i) shards_.push_back(std::make_unique<Shard>());
}

void Registry::add_collector(std::function<void(std::string&)> collector) {
  std::lock_guard lock(collectors_mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  std::string out;
  out.reserve(8192);
  for (std::size_t f = 0; f < std::size(kCounters); ++f) {
    std::map<std::string, std::uint64_t> sums;
    for (const auto& shard : shards_) {
      auto& fam = shard->counters_[f];
      std::lock_guard lock(fam.mutex);
      for (const auto& [k, v] : fam.series) sums[k] += v->load(std::memory_order_relaxed);
    }
    out += "# HELP "; out += kCounters[f].name; out += ' '; out += kCounters[f].help; out += '\n';
    out += "# TYPE "; out += kCounters[f].name; out += " counter\n";
    for (const auto& [k, v] : sums) {
      out += kCounters[f].name;
      append_labels(out, kCounters[f], k);
      out += ' ';
      out += std::to_string(v);
      out += '\n';
    }
  }
  for (std::size_t f = 0; f < std::size(kHistograms); ++f) {
    const auto bounds = buckets_for(static_cast<HistogramId>(f));
    struct Agg { std::vector<std::uint64_t> buckets; std::uint64_t count = 0; double sum = 0; };
    std::map<std::string, Agg> sums;
    for (const auto& shard : shards_) {
      auto& fam = shard->histograms_[f];
      std::lock_guard lock(fam.mutex);
      for (const auto& [k, h] : fam.series) {
        Agg& a = sums[k];
        a.buckets.resize(bounds.size() + 1);
        for (std::size_t i = 0; i <= bounds.size(); ++i) a.buckets[i] += h->bucket(i);
        a.count += h->count();
        a.sum += h->sum();
      }
    }
    const FamilyInfo& info = kHistograms[f];
    out += "# HELP "; out += info.name; out += ' '; out += info.help; out += '\n';
    out += "# TYPE "; out += info.name; out += " histogram\n";
    for (const auto& [k, a] : sums) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += a.buckets[i];
        out += info.name; out += "_bucket";
        std::string le = "le=\"";
        if (i < bounds.size()) {
          char buf[32];
          le.append(buf, static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "%g", bounds[i])));
        } else {
          le += "+Inf";
        }
        le += '"';
        append_labels(out, info, k, le);
        out += ' '; out += std::to_string(cumulative); out += '\n';
      }
      out += info.name; out += "_sum"; append_labels(out, info, k); out += ' '; append_number(out, a.sum); out += '\n';
      out += info.name; out += "_count"; append_labels(out, info, k); out += ' '; out += std::to_string(a.count); out += '\n';
    }
  }
  for (std::size_t g = 0; g < std::size(kGauges); ++g) {
    std::int64_t total = 0;
    for (const auto& shard : shards_) total += shard->gauges_[g].load(std::memory_order_relaxed);
    out += "# HELP "; out += kGauges[g].name; out += ' '; out += kGauges[g].help; out += '\n';
    out += "# TYPE "; out += kGauges[g].name; out += " gauge\n";
    out += kGauges[g].name; out += ' '; out += std::to_string(total); out += '\n';
  }
  std::lock_guard lock(collectors_mutex_);
  for (const auto& c : collectors_) c(out);
  return out;
}

std::string label_key(std::initializer_list<std::string_view> values) {
  std::string key;
  bool first = true;
  for (std::string_view v : values) {
    if (!first) key.push_back('\x1f');
    first = false;
    key += v;
  }
  return key;
}

void append_family(std::string& out, std::string_view name, std::string_view help, std::string_view type,
                   std::uint64_t value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace bulwark::telemetry
