#pragma once
// OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp server, Ollama, Groq, Together...):
// the request they take, how their errors and usage read, and how their SSE streams split.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/error.hpp"

namespace bulwark::providers::openai {

namespace bhttp = boost::beast::http;

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
  std::int64_t cached_prompt_tokens = 0;
  std::int64_t cache_write_tokens = 0;  // prompt-cache writes (Anthropic, Bedrock), within prompt_tokens
  bool present = false;
};

bhttp::request<bhttp::string_body> build_request(const config::Provider& provider, std::string body, bool stream);

// An error answer (status >= 400) classified for the retry and fallback rules. The
// message is safe for the caller: provider messages are kept only where they explain
// the caller's own mistake, never for authentication failures (they can echo key hints).
Error classify_error(unsigned status, std::string_view body, std::string_view target_id);

// The usage object of a complete (non-streamed) chat completion.
Usage read_usage(std::string_view body);

// Splits an SSE byte stream into events as bytes arrive; an event may span reads.
class SseSplitter {
 public:
  // Calls on_event(std::string_view event) for every complete event, the blank line
  // that ends it included, so the bytes can be relayed exactly as received.
  template <class F>
  void feed(std::string_view bytes, F&& on_event) {
    if (pending_.empty()) {
      std::size_t start = 0;
      while (true) {
        const std::size_t end = find_event_end(bytes, start);
        if (end == std::string_view::npos) break;
        on_event(bytes.substr(start, end - start));
        start = end;
      }
      pending_.assign(bytes.substr(start));
      return;
    }
    const std::size_t scan_from = pending_.size() >= 3 ? pending_.size() - 3 : 0;
    pending_.append(bytes);
    std::size_t start = 0;
    std::size_t from = scan_from;
    while (true) {
      const std::size_t end = find_event_end(pending_, std::max(start, from));
      if (end == std::string_view::npos) break;
      on_event(std::string_view(pending_).substr(start, end - start));
      start = end;
      from = end;
    }
    pending_.erase(0, start);
  }
  bool has_partial() const noexcept { return !pending_.empty(); }
  std::size_t partial_size() const noexcept { return pending_.size(); }

 private:
  // Index just past the "\n\n" (or "\r\n\r\n") that ends the event starting at or before from.
  static std::size_t find_event_end(std::string_view s, std::size_t from);
  std::string pending_;
};

// What the gateway needs to know of one SSE event of a chat completion stream.
struct StreamEvent {
  enum class Kind : std::uint8_t { data, done, comment, error, malformed } kind = Kind::data;
  bool usage_only = false;      // the include_usage chunk: no choices, just usage
  bool has_finish = false;      // some choice carries a finish_reason
  int content_deltas = 0;       // choices with non-empty content, tool-call (or legacy function_call) or reasoning deltas
  std::size_t text_bytes = 0;   // of the content and tool-call argument strings, decoded
  Usage usage;                  // set when the event carries usage
  std::string error_message;    // for Kind::error
};
StreamEvent inspect_event(std::string_view event);

}  // namespace bulwark::providers::openai
