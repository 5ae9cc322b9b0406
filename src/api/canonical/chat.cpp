#include "api/canonical/chat.hpp"

namespace bulwark::api::canonical {

std::string_view to_string(Role role) noexcept {
  switch (role) {
    case Role::user: return "user";
    case Role::assistant: return "assistant";
    case Role::tool: return "tool";
  }
  return "user";
}

std::string_view to_string(StopReason reason) noexcept {
  switch (reason) {
    case StopReason::none: return "none";
    case StopReason::end_turn: return "end_turn";
    case StopReason::max_tokens: return "max_tokens";
    case StopReason::stop_sequence: return "stop_sequence";
    case StopReason::tool_use: return "tool_use";
    case StopReason::content_filter: return "content_filter";
    case StopReason::refusal: return "refusal";
    case StopReason::guardrail: return "guardrail";
  }
  return "none";
}

std::string text_of(const ChatResponse& response) {
  std::string out;
  for (const ContentPart& part : response.content)
    if (const auto* t = std::get_if<TextPart>(&part)) out += t->text;
  return out;
}

}  // namespace bulwark::api::canonical
