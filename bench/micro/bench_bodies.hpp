#pragma once
// What bench/run.sh's governed scenario (g) sends and gets back, and its policy profile:
// the bodies the policy and governance micro-benchmarks time.
#include <string>

#include "policy/profile.hpp"

namespace bulwark::bench {

// bench/wrk/chat.lua's request.
inline const std::string kBenchRequest =
    R"({"model":"bench","messages":[{"role":"system","content":"You are terse."},)"
    R"({"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16,"temperature":0})";
// bulwark-mock's default answer to it.
inline const std::string kMockAnswer =
    R"({"id":"chatcmpl-b3f2af6d0fc710c5","object":"chat.completion","created":1795554675,"model":"bench",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 )"
    R"(w14 w15 w16.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,)"
    R"("completion_tokens":16,"total_tokens":25},"system_fingerprint":"fp_bulwark_mock"})";

// Scenario g's profile: e-mail and phone redacted, cards and secrets blocked.
inline policy::PolicyProfile bench_profile() {
  policy::PolicySpec spec;
  spec.id = "bench";
  spec.detectors[policy::PiiKind::email] = policy::Action::redact;
  spec.detectors[policy::PiiKind::phone] = policy::Action::redact;
  spec.detectors[policy::PiiKind::card] = policy::Action::block;
  spec.detectors[policy::PiiKind::secret] = policy::Action::block;
  return std::move(policy::PolicyProfile::create(std::move(spec)).value());
}

}  // namespace bulwark::bench
