// Documents the gateway cannot read (PDFs, uploaded files, undecodable text): the
// profile's uninspectable_documents rule, its fail-closed default, and the raw fast path
// never calling a body with a document clean.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "policy/evaluate.hpp"

using namespace bulwark::policy;
using ::testing::HasSubstr;

namespace {

PolicyProfile make(void (*tweak)(PolicySpec&)) {
  PolicySpec spec;
  spec.id = "docs";
  tweak(spec);
  auto p = PolicyProfile::create(std::move(spec));
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error());
  return std::move(p.value());
}

const RequestFacts kFacts{"gpt-4o-mini", 100, 256};
const std::string_view kPdf[] = {"pdf"};

std::string file_part_body(std::string_view part) {
  return R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Summarise this."},)" + std::string(part) +
         "]}]}";
}

const std::string kPdfBody =
    file_part_body(R"({"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0xLjQK","filename":"q3.pdf"}})");

}  // namespace

TEST(UninspectableDocuments, DefaultFailsClosedForEveryContentRule) {
  const PolicyProfile pii = make([](PolicySpec& s) { s.detectors[PiiKind::email] = Action::redact; });
  const PolicyProfile deny = make([](PolicySpec& s) { s.deny.push_back({"codename", "falcon", Action::flag}); });
  const PolicyProfile injection = make([](PolicySpec& s) { s.injection = Action::flag; });
  for (const PolicyProfile* p : {&pii, &deny, &injection}) {
    EXPECT_EQ(p->uninspectable_documents(), Action::block);
    std::vector<std::string> parts{"Summarise this."};
    const PolicyDecision d = evaluate_input(*p, parts, kFacts, kPdf);
    ASSERT_TRUE(d.blocked());
    EXPECT_EQ(d.reason_code, "document_not_inspectable");
    EXPECT_EQ(d.detector, "pdf");
    const bulwark::Error e = block_error(d, false);
    EXPECT_EQ(e.kind, bulwark::ErrorKind::policy_blocked);
    EXPECT_THAT(e.message, HasSubstr("policy 'docs': document_not_inspectable (pdf)"));
  }
}

TEST(UninspectableDocuments, ProfileWithoutContentRulesIsUnaffected) {
  // Caps and a model list are no content rules; a deny pattern switched off is none either.
  const PolicyProfile p = make([](PolicySpec& s) {
    s.max_tokens = 1000;
    s.model_allow = {"gpt-*"};
    s.deny.push_back({"codename", "falcon", Action::off});
  });
  EXPECT_EQ(p.uninspectable_documents(), Action::off);
  std::vector<std::string> parts{"Summarise this."};
  const PolicyDecision d = evaluate_input(p, parts, kFacts, kPdf);
  EXPECT_EQ(d.verdict, Verdict::allow);
  EXPECT_TRUE(d.hits.empty());
  // The raw path needs no walk at all: nothing in the body can change its verdict.
  auto quick = evaluate_input_raw(p, kPdfBody, kFacts);
  ASSERT_TRUE(quick.has_value());
  EXPECT_TRUE(quick->hits.empty());
}

TEST(UninspectableDocuments, FlagLetsThroughAndRecordsEachDocument) {
  const PolicyProfile p = make([](PolicySpec& s) {
    s.detectors[PiiKind::email] = Action::redact;
    s.uninspectable_documents = Action::flag;
  });
  std::vector<std::string> parts{"Mail jane.doe@example.com"};
  const std::string_view two[] = {"pdf", "file_id"};
  const PolicyDecision d = evaluate_input(p, parts, kFacts, two);
  EXPECT_EQ(d.verdict, Verdict::redacted);  // the text rules still run
  EXPECT_EQ(parts[0], "Mail [REDACTED:EMAIL]");
  EXPECT_EQ(d.flags(), 2U);
  EXPECT_THAT(d.hits, ::testing::Contains(RuleHit{Rule::document_not_inspectable, Action::flag, 0, 0, 2}));
}

TEST(UninspectableDocuments, AllowLetsThroughWithoutARecord) {
  const PolicyProfile p = make([](PolicySpec& s) {
    s.detectors[PiiKind::card] = Action::block;
    s.uninspectable_documents = Action::off;
  });
  std::vector<std::string> parts{"Summarise this."};
  const PolicyDecision d = evaluate_input(p, parts, kFacts, kPdf);
  EXPECT_EQ(d.verdict, Verdict::allow);
  EXPECT_TRUE(d.hits.empty());
}

TEST(UninspectableDocuments, ExplicitBlockAppliesWithoutContentRules) {
  const PolicyProfile p = make([](PolicySpec& s) { s.uninspectable_documents = Action::block; });
  std::vector<std::string> parts;
  EXPECT_TRUE(evaluate_input(p, parts, kFacts, kPdf).blocked());
  // ...and the raw path, which would not walk a body for such a profile before, does.
  EXPECT_FALSE(evaluate_input_raw(p, kPdfBody, kFacts).has_value());
  EXPECT_TRUE(evaluate_input_raw(p, file_part_body(R"({"type":"text","text":"no document"})"), kFacts).has_value());
}

TEST(UninspectableDocuments, RedactIsNoDocumentAction) {
  PolicySpec spec;
  spec.id = "bad";
  spec.uninspectable_documents = Action::redact;
  auto p = PolicyProfile::create(std::move(spec));
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error(), HasSubstr("uninspectable_documents"));
}

// A body with a document is never shown clean without the exact path: its text is base64
// (or unreadable), which only the exact path decodes. Without documents, as before.
TEST(UninspectableDocuments, RawPathDefersEveryDocumentToTheExactPath) {
  const PolicyProfile p = make([](PolicySpec& s) {
    s.detectors[PiiKind::email] = Action::redact;
    s.uninspectable_documents = Action::off;  // even when PDFs may pass: text documents are read
  });
  for (const std::string& part : {
           std::string(R"({"type":"file","file":{"file_data":"data:text/plain;base64,amFuZUBleGFtcGxlLmNvbQ=="}})"),
           std::string(R"({"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0xLjQK"}})"),
           std::string(R"({"type":"file","file":{"file_id":"file-abc"}})"),
           std::string(R"({"type":"file"})"),
           std::string(R"({"type":"fil\u0065"})"),
           std::string(R"({"type":"file","file":{"file_data":"data:text/plain;base64,aGk=","context":"a \"quoted\" context"}})"),
       }) {
    EXPECT_FALSE(evaluate_input_raw(p, file_part_body(part), kFacts).has_value()) << part;
  }
  auto plain = evaluate_input_raw(p, file_part_body(R"({"type":"text","text":"a file is mentioned, \"file\": no document"})"), kFacts);
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->hits.empty());
  EXPECT_TRUE(evaluate_input_raw(p, file_part_body(R"({"type":"text","text":"the type is file"})"), kFacts).has_value());
  // A tool whose parameter is called "file" is no document: the raw path still decides.
  const std::string tools =
      R"({"model":"m","messages":[{"role":"user","content":"Read it."}],"tools":[{"type":"function","function":{"name":"read_file",)"
      R"("parameters":{"type":"object","properties":{"file":{"type":"string"}}}}}]})";
  EXPECT_TRUE(evaluate_input_raw(p, tools, kFacts).has_value());
}

// Answers: a citation's cited_text is scanned on the raw path like the answer's text.
TEST(UninspectableDocuments, RawOutputPathScansCitedText) {
  const PolicyProfile p = make([](PolicySpec& s) { s.detectors[PiiKind::email] = Action::redact; });
  const auto answer = [](std::string_view cited) {
    return R"({"choices":[{"message":{"role":"assistant","content":"The sky is blue.","text_blocks":[{"text":"The sky is blue.",)"
           R"("citations":[{"type":"char_location","cited_text":")" +
           std::string(cited) + R"(","document_index":0,"start_char_index":0,"end_char_index":9}]}]},"finish_reason":"stop"}]})";
  };
  EXPECT_TRUE(evaluate_output_raw(p, answer("The sky is")).has_value());
  EXPECT_FALSE(evaluate_output_raw(p, answer("write to jane.doe@example.com")).has_value());
}
