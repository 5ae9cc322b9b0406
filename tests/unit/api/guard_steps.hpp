#pragma once
// What pipeline/chat.cpp's guard phases run on a body, for tests of the policy over the
// OpenAI form: the raw fast path when it can tell, else the exact path (which redacts).
// Shared by the tests of text extraction and of documents.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "api/openai/text.hpp"
#include "policy/evaluate.hpp"

namespace bulwark::test {

struct Guarded {
  policy::PolicyDecision decision;
  std::string body;
  bool raw = false;  // decided on the raw fast path
};

// guard_input
inline Guarded guard_input(const policy::PolicyProfile& p, const std::string& body, const policy::RequestFacts& facts) {
  if (auto quick = policy::evaluate_input_raw(p, body, facts)) return {*quick, body, true};
  auto texts = api::openai::request_texts(body);
  EXPECT_TRUE(texts.has_value());
  if (!texts) return {};
  Guarded g{policy::evaluate_input(p, texts->texts, facts, texts->uninspectable, texts->json), body};
  if (g.decision.verdict == policy::Verdict::redacted) {
    auto rewritten = api::openai::with_request_texts(body, texts->texts);
    EXPECT_TRUE(rewritten.has_value());
    if (rewritten) g.body = *rewritten;
  }
  return g;
}

// guard_answer: every text on its own (JSON texts as JSON); the first block wins, and the
// hits of the others are collected.
inline Guarded guard_answer(const policy::PolicyProfile& p, const std::string& body) {
  if (auto quick = policy::evaluate_output_raw(p, body)) return {*quick, body, true};
  auto texts = api::openai::answer_texts(body);
  EXPECT_TRUE(texts.has_value());
  if (!texts) return {};
  Guarded g{{}, body};
  g.decision.policy_id = p.id();
  for (std::size_t i = 0; i < texts->texts.size(); ++i) {
    const bool json = std::ranges::binary_search(texts->json, i);
    policy::PolicyDecision d =
        policy::evaluate_output(p, texts->texts[i], json ? policy::TextForm::json : policy::TextForm::plain);
    if (d.blocked()) return {std::move(d), body};
    if (d.verdict == policy::Verdict::redacted) g.decision.verdict = policy::Verdict::redacted;
    g.decision.hits.insert(g.decision.hits.end(), d.hits.begin(), d.hits.end());
  }
  if (g.decision.verdict == policy::Verdict::redacted) g.body = *api::openai::with_answer_texts(body, texts->texts);
  return g;
}

}  // namespace bulwark::test
