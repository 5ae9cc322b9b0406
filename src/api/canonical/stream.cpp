#include "api/canonical/stream.hpp"

namespace bulwark::api::canonical {

ContentPart* ResponseBuilder::block(std::uint32_t index) {
  for (auto& [i, pos] : blocks_)
    if (i == index) return &response_.content[pos];
  return nullptr;
}

void ResponseBuilder::add(const StreamEvent& event) {
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, MessageStart>) {
          response_.id = e.id;
          response_.model = e.model;
          response_.usage = e.usage;
        } else if constexpr (std::is_same_v<E, TextDelta>) {
          if (ContentPart* part = block(e.index)) {
            if (auto* t = std::get_if<TextPart>(part)) t->text += e.text;
            return;
          }
          blocks_.emplace_back(e.index, response_.content.size());
          response_.content.emplace_back(TextPart{e.text});
        } else if constexpr (std::is_same_v<E, CitationDelta>) {
          // A citation may open its text block (Anthropic sends it before the cited text).
          TextPart* t = nullptr;
          if (ContentPart* part = block(e.index)) t = std::get_if<TextPart>(part);
          else {
            blocks_.emplace_back(e.index, response_.content.size());
            t = &std::get<TextPart>(response_.content.emplace_back(TextPart{}));
          }
          if (t == nullptr || e.citation.empty()) return;
          // TextPart::citations stays a JSON array: "[a]" + b -> "[a,b]" ("" and "[]" -> "[b]").
          if (t->citations.size() <= 2) {
            t->citations.clear();
            t->citations += '[';
          } else {
            t->citations.pop_back();
            t->citations += ',';
          }
          t->citations += e.citation;
          t->citations += ']';
        } else if constexpr (std::is_same_v<E, ToolCallStart>) {
          blocks_.emplace_back(e.index, response_.content.size());
          response_.content.emplace_back(ToolCallPart{e.id, e.name, {}});
        } else if constexpr (std::is_same_v<E, ToolArgsDelta>) {
          if (ContentPart* part = block(e.index))
            if (auto* call = std::get_if<ToolCallPart>(part)) call->arguments += e.partial_json;
        } else if constexpr (std::is_same_v<E, ReasoningDelta> || std::is_same_v<E, SignatureDelta>) {
          ReasoningPart* r = nullptr;
          if (ContentPart* part = block(e.index)) r = std::get_if<ReasoningPart>(part);
          else {
            blocks_.emplace_back(e.index, response_.content.size());
            r = &std::get<ReasoningPart>(response_.content.emplace_back(ReasoningPart{}));
          }
          if (r == nullptr) return;
          if constexpr (std::is_same_v<E, ReasoningDelta>) r->text += e.text;
          else r->signature += e.signature;
        } else if constexpr (std::is_same_v<E, RedactedReasoning>) {
          blocks_.emplace_back(e.index, response_.content.size());
          response_.content.emplace_back(ReasoningPart{{}, {}, e.data});
        } else if constexpr (std::is_same_v<E, MessageDelta>) {
          if (e.stop_reason != StopReason::none) response_.stop_reason = e.stop_reason;
          if (!e.stop_sequence.empty()) response_.stop_sequence = e.stop_sequence;
          if (e.usage) response_.usage = *e.usage;
          if (e.latency_ms) response_.latency_ms = e.latency_ms;
        } else if constexpr (std::is_same_v<E, MessageStop>) {
          stopped_ = true;
        } else if constexpr (std::is_same_v<E, StreamError>) {
          error_ = e.error;
        }
        // BlockStop and Ping change nothing in the answer.
      },
      event);
}

}  // namespace bulwark::api::canonical
