#pragma once
// Redacts a streamed answer delta by delta with exactly the one-shot result
// (evaluate_output's PII handling) whatever the chunking. Text is forwarded as soon as the
// segment holding it is complete (segmenter.hpp): only the trailing partial segment is
// held back, which is what could still grow into a match (a word that may become an
// e-mail, the groups of a card number, an open PEM block). Held-back text is bounded by
// kMaxSegmentBytes (kMaxPemBytes inside a private key block). Output never splits a UTF-8
// sequence. Replacements are ASCII labels.
//
// Deny patterns are checked over the newly completed text plus the last 256 forwarded
// bytes, before the new text is forwarded; a match longer than that window is missed.
// A block-action detector or deny pattern ends the stream: feed()/finish() return
// blocked, nothing of the offending delta is forwarded, and decision() says why.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/decision.hpp"
#include "policy/json_text.hpp"
#include "policy/pii.hpp"
#include "policy/profile.hpp"

namespace bulwark::policy {

enum class StreamStatus : std::uint8_t { ok, blocked };

class StreamRedactor {
 public:
  static constexpr std::size_t kDenyWindowBytes = 256;

  // `form` json: the deltas are pieces of JSON text (a tool call's streamed arguments),
  // their printable \u escapes spelled out (decode_printable_escapes, across pieces) and
  // redacted as evaluate_output redacts TextForm::json, so what is forwarded stays JSON.
  explicit StreamRedactor(PolicyProfile profile, TextForm form = TextForm::plain);

  // Appends to `out` what is safe to forward after `delta`.
  StreamStatus feed(std::string_view delta, std::string& out);
  // End of the answer: flushes everything still held back.
  StreamStatus finish(std::string& out);

  // Counts, flags and the block reason so far.
  const PolicyDecision& decision() const noexcept { return decision_; }
  std::size_t pending_bytes() const noexcept { return buf_.size() - ctx_; }

 private:
  StreamStatus process(bool at_eof, std::string& out);

  PolicyProfile profile_;
  TextForm form_;
  detail::JsonCursor json_;  // form_ json: where the text forwarded so far leaves the JSON
  detail::EscapeDecoder decoder_;  // form_ json: escapes spelled out before the scan
  std::string decoded_;
  std::string buf_;      // [0, ctx_) already forwarded (kept as lookbehind), then pending
  std::size_t ctx_ = 0;
  PolicyDecision decision_;
  std::vector<Finding> scratch_;
  std::string staged_;
};

}  // namespace bulwark::policy
