#include "policy/stream_redactor.hpp"

#include <algorithm>

#include "policy/compiled.hpp"
#include "policy/segmenter.hpp"

namespace bulwark::policy {
namespace {
constexpr std::size_t kKeepBytes = std::max(kLookbehindBytes, StreamRedactor::kDenyWindowBytes);
}  // namespace

StreamRedactor::StreamRedactor(PolicyProfile profile, TextForm form) : profile_(std::move(profile)), form_(form) {
  decision_.policy_id = profile_.id();
}

StreamStatus StreamRedactor::feed(std::string_view delta, std::string& out) {
  if (decision_.blocked()) return StreamStatus::blocked;
  if (form_ == TextForm::json) {
    decoded_.clear();
    decoder_.feed(delta, decoded_);
    buf_.append(decoded_);
  } else {
    buf_.append(delta);
  }
  return process(false, out);
}

StreamStatus StreamRedactor::finish(std::string& out) {
  if (decision_.blocked()) return StreamStatus::blocked;
  if (form_ == TextForm::json) decoder_.finish(buf_);
  return process(true, out);
}

StreamStatus StreamRedactor::process(bool at_eof, std::string& out) {
  const detail::CompiledPolicy& c = profile_.compiled();
  const std::string_view text = buf_;
  const std::size_t start = ctx_;
  std::size_t pos = ctx_;
  staged_.clear();
  while (pos < text.size()) {
    const Step st = next_step(text, pos, at_eof);
    if (st.kind == StepKind::need_more) break;
    const bool pem = st.kind == StepKind::pem;
    if (st.kind == StepKind::gap || c.pii_mask == 0 ||
        !segment_may_match(st.traits, st.end - pos, pem, c.pii_mask)) {
      staged_.append(text.substr(pos, st.end - pos));
      if (form_ == TextForm::json) json_.advance(text.substr(pos, st.end - pos));
      pos = st.end;
      continue;
    }
    scratch_.clear();
    scan_segment(text, pos, st.end, pem, st.traits, c.pii_mask, scratch_);
    if (!scratch_.empty() && !detail::apply_findings(c, text, scratch_, decision_))
      return StreamStatus::blocked;
    if (form_ == TextForm::json) detail::append_redacted_json(text, pos, st.end, scratch_, json_, staged_);
    else detail::append_redacted(text, pos, st.end, scratch_, staged_);
    pos = st.end;
  }
  if (pos > start && !detail::apply_deny(c, text.substr(0, pos), 0, start, decision_))
    return StreamStatus::blocked;
  out.append(staged_);
  if (decision_.redactions() > 0) decision_.verdict = Verdict::redacted;
  const std::size_t keep_from = pos > kKeepBytes ? pos - kKeepBytes : 0;
  buf_.erase(0, keep_from);
  ctx_ = pos - keep_from;
  return StreamStatus::ok;
}

}  // namespace bulwark::policy
