#pragma once
// Ids in each format's style (chatcmpl-..., msg_..., call_..., toolu_..., tooluse_...).
// An id that exists is restyled deterministically (a known prefix swapped for the target's),
// so a tool call's id and the tool result naming it stay matched across translations.
// A missing id is generated from a caller-given seed: no global randomness, reproducible.
#include <cstdint>
#include <string>
#include <string_view>

namespace bulwark::api::canonical {

namespace id_prefix {
inline constexpr std::string_view openai_completion = "chatcmpl-";
inline constexpr std::string_view openai_tool_call = "call_";
inline constexpr std::string_view anthropic_message = "msg_";
inline constexpr std::string_view anthropic_tool_use = "toolu_";
inline constexpr std::string_view bedrock_tool_use = "tooluse_";
}  // namespace id_prefix

// splitmix64 over the seed: each next() gives a fresh 24-character base62 suffix.
class IdSource {
 public:
  explicit IdSource(std::uint64_t seed) noexcept : state_(seed) {}
  std::string next(std::string_view prefix);

 private:
  std::uint64_t state_;
};

// `id` with `prefix`: unchanged if it already has it; a known prefix of another format
// (above) is replaced; otherwise the prefix is prepended. Empty: a new id from `ids`.
std::string restyle_id(std::string_view id, std::string_view prefix, IdSource& ids);

}  // namespace bulwark::api::canonical
