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

std::optional<CacheMark>& cache_of(ContentPart& part) noexcept {
  return std::visit([](auto& p) -> std::optional<CacheMark>& { return p.cache; }, part);
}

const std::optional<CacheMark>& cache_of(const ContentPart& part) noexcept {
  return std::visit([](const auto& p) -> const std::optional<CacheMark>& { return p.cache; }, part);
}

const CacheMark* system_cache_of(const ChatRequest& req, std::size_t index) noexcept {
  for (const auto& [i, mark] : req.system_cache)
    if (i == index) return &mark;
  return nullptr;
}

bool has_cache_marks(const ChatRequest& req) noexcept {
  if (!req.system_cache.empty()) return true;
  for (const Tool& t : req.tools)
    if (t.cache) return true;
  for (const Message& m : req.messages)
    for (const ContentPart& part : m.content) {
      if (cache_of(part)) return true;
      if (const auto* r = std::get_if<ToolResultPart>(&part))
        for (const ToolResultContent& c : r->content)
          if (std::visit([](const auto& x) { return x.cache.has_value(); }, c)) return true;
    }
  return false;
}

std::int64_t budget_for_effort(std::string_view effort) noexcept {
  if (effort == "minimal" || effort == "low") return 1024;
  if (effort == "medium") return 2048;
  if (effort == "high") return 4096;
  return 0;
}

std::string_view effort_for_budget(std::int64_t budget_tokens) noexcept {
  if (budget_tokens < 2048) return "low";
  if (budget_tokens < 4096) return "medium";
  return "high";
}

std::int64_t thinking_budget(const Reasoning& reasoning) noexcept {
  if (reasoning.mode != Reasoning::Mode::enabled) return 0;
  return reasoning.budget_tokens > 0 ? reasoning.budget_tokens : budget_for_effort(reasoning.effort);
}

std::string text_of(const ChatResponse& response) {
  std::string out;
  for (const ContentPart& part : response.content)
    if (const auto* t = std::get_if<TextPart>(&part)) out += t->text;
  return out;
}

}  // namespace bulwark::api::canonical
