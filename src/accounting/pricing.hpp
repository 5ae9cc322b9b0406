#pragma once
// Model prices and request cost in exact integers.
//
// Prices are held as nano-USD per million tokens (so any price quoted with up to nine
// decimals of a dollar per million tokens is exact), costs as nano-USD (1e-9 USD) in
// int64 (range +-9.2e9 USD). A request's cost is sum(tokens_i * price_i) / 1e6 computed in
// 128-bit, rounded up once per request: at most one nano-dollar per request above the
// exact value, never drift from floating point.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"

namespace bulwark::accounting {

struct ModelPrice {
  std::int64_t input = 0;         // nano-USD per million uncached input tokens
  std::int64_t output = 0;        // nano-USD per million output tokens
  std::int64_t cached_input = 0;  // nano-USD per million tokens read from the prompt cache
  std::int64_t cache_write = 0;   // nano-USD per million tokens written to the prompt cache
};

// Each input token belongs to exactly one of the three input categories. Adapters
// normalise: OpenAI's prompt_tokens include cached ones (input = prompt - cached);
// Anthropic reports the three separately.
struct Usage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t cache_write_tokens = 0;
  std::int64_t total() const noexcept {
    return input_tokens + output_tokens + cached_input_tokens + cache_write_tokens;
  }
};

struct Cost {
  std::int64_t nano_usd = 0;
  bool estimated = false;  // usage was estimated, not reported by the upstream
};

Cost cost_of(const ModelPrice& price, const Usage& usage, bool estimated = false) noexcept;

// Upper bound for a request before it runs: every input token at the dearest input
// rate, plus max_output_tokens at the output rate. This is what a budget reserves.
std::int64_t max_cost(const ModelPrice& price, std::int64_t input_tokens,
                      std::int64_t max_output_tokens) noexcept;

// For a stream cut before the upstream reported usage: ~4 bytes per token, rounded up.
// The resulting Cost must be flagged estimated.
Usage estimate_usage(std::size_t prompt_bytes, std::size_t output_bytes) noexcept;

// "2.50" -> 2'500'000'000 (nano-USD). Exact decimal parse; at most 9 fractional digits.
Result<std::int64_t> parse_usd(std::string_view decimal);
// 2'500'000'000 -> "2.500000000"
std::string format_usd(std::int64_t nano_usd);

class PriceTable {
 public:
  // YAML layout (see data/pricing/default-prices.yaml):
  //   prices_as_of: "YYYY-MM-DD"
  //   models:
  //     <model id or prefix*>: {input: "2.50", output: "10.00", cached_input: "1.25", cache_write: "3.75"}
  //   targets:
  //     <target name>:
  //       <model id>: {...}
  // Prices are USD per million tokens, written as strings or plain numbers. cached_input
  // and cache_write default to the input price when a provider does not discount them.
  static Result<PriceTable> parse_yaml(std::string_view text);
  static Result<PriceTable> load_file(const std::filesystem::path& path);

  void set(std::string model, const ModelPrice& price);
  void set_override(std::string target, std::string model, const ModelPrice& price);

  // Target override first, then the model: exact id, then the Bedrock id without its
  // cross-region prefix (us., eu., apac., global., ...), then the longest "prefix*" entry.
  std::optional<ModelPrice> find(std::string_view model, std::string_view target = {}) const;

  const std::string& as_of() const noexcept { return as_of_; }
  std::size_t size() const noexcept { return models_.size(); }

 private:
  using Map = std::unordered_map<std::string, ModelPrice>;
  static std::optional<ModelPrice> find_in(const Map& m, const std::vector<std::string>& prefixes,
                                           std::string_view model);
  Map models_;
  std::vector<std::string> prefixes_;  // keys of models_ that end in '*', longest first
  std::unordered_map<std::string, Map> overrides_;
  std::unordered_map<std::string, std::vector<std::string>> override_prefixes_;
  std::string as_of_;
};

}  // namespace bulwark::accounting
