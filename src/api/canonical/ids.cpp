#include "api/canonical/ids.hpp"

#include <array>

namespace bulwark::api::canonical {

std::string IdSource::next(std::string_view prefix) {
  static constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(prefix);
  // Two splitmix64 outputs give 24 base62 digits (~142 bits of which ~128 are used).
  for (int word = 0; word < 2; ++word) {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int i = 0; i < 12; ++i) {
      out.push_back(kBase62[z % 62]);
      z /= 62;
    }
  }
  return out;
}

std::string restyle_id(std::string_view id, std::string_view prefix, IdSource& ids) {
  if (id.empty()) return ids.next(prefix);
  if (id.starts_with(prefix)) return std::string(id);
  // Longest first: "tooluse_" must win over "toolu_".
  static constexpr std::array<std::string_view, 5> kKnown{id_prefix::bedrock_tool_use, id_prefix::openai_completion,
                                                          id_prefix::anthropic_tool_use, id_prefix::openai_tool_call,
                                                          id_prefix::anthropic_message};
  for (std::string_view known : kKnown) {
    if (id.starts_with(known) && id.size() > known.size()) {
      id.remove_prefix(known.size());
      break;
    }
  }
  std::string out(prefix);
  out.append(id);
  return out;
}

}  // namespace bulwark::api::canonical
