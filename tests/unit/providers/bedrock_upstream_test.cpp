// providers/upstream.hpp for kind bedrock (providers/bedrock/runtime.cpp): paths, SigV4
// (checked with sigv4.hpp's verifier) and Bearer auth, Converse and InvokeModel answers
// and event streams converted to OpenAI, in-stream exceptions and CRC failures, error
// classification, config and credentials, and real exchanges with bulwark-mock.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "api/bedrock/invoke.hpp"
#include "api/openai/translate.hpp"
#include "config/config.hpp"
#include "mock/engine.hpp"
#include "mock/server.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "providers/bedrock/sigv4.hpp"
#include "providers/upstream.hpp"
#include "upstream_support.hpp"

namespace bulwark::providers {
namespace {

using namespace testing;
namespace cn = api::canonical;
namespace es = bulwark::bedrock::eventstream;
namespace http = boost::beast::http;

constexpr std::string_view kKeyId = "AKIDEXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kClaude = "anthropic.claude-3-haiku-20240307-v1:0";

config::Provider bedrock_provider(config::Provider::Bedrock::Api api = config::Provider::Bedrock::Api::converse) {
  config::Provider p;
  p.name = "bedrock";
  p.kind = config::ProviderKind::bedrock;
  p.endpoint.tls = true;
  p.endpoint.host = "bedrock-runtime.us-east-1.amazonaws.com";
  p.endpoint.port = 443;
  p.bedrock.region = "us-east-1";
  p.bedrock.api = api;
  p.bedrock.access_key_id = Secret(std::string(kKeyId));
  p.bedrock.secret_access_key = Secret(std::string(kSecret));
  return p;
}

std::vector<std::pair<std::string, std::string>> all_headers(const UpstreamRequest& req) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.emplace_back(std::move(name), std::string(f.value()));
  }
  return out;
}

// Verifies the request's signature as AWS (and bulwark-mock) would.
std::expected<bulwark::bedrock::VerifiedRequest, bulwark::bedrock::VerifyError> verify(
    const UpstreamRequest& req, std::chrono::system_clock::time_point now, std::string session_token = {}) {
  const auto headers = all_headers(req);
  std::vector<bulwark::bedrock::HeaderField> fields;
  for (const auto& [k, v] : headers) fields.push_back({k, v});
  const bulwark::bedrock::SigningInput in{"POST", std::string_view(req.target().data(), req.target().size()), "", fields,
                                          req.body()};
  auto lookup = [session_token](std::string_view id) -> std::optional<bulwark::bedrock::VerifierSecret> {
    if (id != kKeyId) return std::nullopt;
    return bulwark::bedrock::VerifierSecret{std::string(kSecret), session_token};
  };
  bulwark::bedrock::VerifyOptions opts;
  opts.region = "us-east-1";
  opts.service = "bedrock";
  return bulwark::bedrock::verify(in, lookup, now, opts);
}

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

simdjson::dom::element parse(simdjson::dom::parser& parser, std::string_view text) {
  simdjson::dom::element e;
  EXPECT_EQ(parser.parse(text.data(), text.size()).get(e), simdjson::SUCCESS) << text;
  return e;
}

TEST(BedrockUpstream, ConverseRequestIsSignedWithEncodedModelPath) {
  const auto p = bedrock_provider();
  auto req = build_chat_request(p, kClaude, kOpenAIRequest, false, kNow);
  ASSERT_TRUE(req) << req.error().message;
  EXPECT_EQ(req->target(), "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
  EXPECT_EQ((*req)[http::field::host], "bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ((*req)["x-amz-date"], "20231114T221320Z");
  EXPECT_TRUE((*req)[http::field::authorization].starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request"));
  EXPECT_EQ((*req)["x-amz-security-token"], "");
  auto ok = verify(*req, kNow);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->service, "bedrock");
  simdjson::dom::parser parser;
  auto body = parse(parser, req->body());
  EXPECT_EQ(std::string_view(body["system"].at(0)["text"].get_string().value()), "Be brief.");
  EXPECT_EQ(body["inferenceConfig"]["maxTokens"].get_int64().value(), 50);
  EXPECT_EQ(std::string_view(body["messages"].at(0)["content"].at(0)["text"].get_string().value()), "say four words please");
  // A changed body no longer verifies.
  auto tampered = *req;
  tampered.body() += " ";
  EXPECT_FALSE(verify(tampered, kNow));
}

TEST(BedrockUpstream, SessionTokenAndStreamPathAndArnModel) {
  auto p = bedrock_provider();
  p.bedrock.session_token = Secret("FQoGZXIvYXdzEXAMPLE");
  p.endpoint.path_prefix = "/proxy";
  const std::string arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
  auto req = build_chat_request(p, arn, kOpenAIRequest, true, kNow);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->target(),
            "/proxy/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
  EXPECT_EQ((*req)[http::field::accept], "application/vnd.amazon.eventstream");
  EXPECT_EQ((*req)["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLE");
  EXPECT_TRUE(verify(*req, kNow, "FQoGZXIvYXdzEXAMPLE"));
  EXPECT_FALSE(verify(*req, kNow, "another-token"));
}

TEST(BedrockUpstream, BearerTokenInsteadOfSignature) {
  auto p = bedrock_provider();
  p.bedrock.access_key_id = Secret();
  p.bedrock.secret_access_key = Secret();
  p.bedrock.bearer_token = Secret("ABSKbedrockapikey");
  p.name = "bedrock-bearer";
  auto req = build_chat_request(p, kClaude, kOpenAIRequest, false, kNow);
  ASSERT_TRUE(req);
  EXPECT_EQ((*req)[http::field::authorization], "Bearer ABSKbedrockapikey");
  EXPECT_EQ((*req)["x-amz-date"], "");
}

TEST(BedrockUpstream, InvokeRequestsPerFamily) {
  const auto p = bedrock_provider(config::Provider::Bedrock::Api::invoke);
  simdjson::dom::parser parser;
  auto claude = build_chat_request(p, kClaude, kOpenAIRequest, false, kNow);
  ASSERT_TRUE(claude) << claude.error().message;
  EXPECT_EQ(claude->target(), "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke");
  auto body = parse(parser, claude->body());
  EXPECT_EQ(std::string_view(body["anthropic_version"].get_string().value()), "bedrock-2023-05-31");
  EXPECT_TRUE(body["model"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_TRUE(verify(*claude, kNow));

  auto llama = build_chat_request(p, "meta.llama3-1-70b-instruct-v1:0", kOpenAIRequest, true, kNow);
  ASSERT_TRUE(llama);
  EXPECT_EQ(llama->target(), "/model/meta.llama3-1-70b-instruct-v1%3A0/invoke-with-response-stream");
  auto lb = parse(parser, llama->body());
  EXPECT_TRUE(std::string_view(lb["prompt"].get_string().value()).starts_with("<|begin_of_text|>"));
  EXPECT_EQ(lb["max_gen_len"].get_int64().value(), 50);

  // Llama cannot take tools: the caller's request is refused, not silently stripped.
  auto tools = build_chat_request(p, "meta.llama3-1-70b-instruct-v1:0",
                                  R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]})",
                                  false, kNow);
  ASSERT_FALSE(tools);
  EXPECT_EQ(tools.error().kind, ErrorKind::bad_request);

  // A family the invoke translators do not know: a configuration problem, said clearly.
  auto mistral = build_chat_request(p, "mistral.mistral-large-2402-v1:0", kOpenAIRequest, false, kNow);
  ASSERT_FALSE(mistral);
  EXPECT_EQ(mistral.error().kind, ErrorKind::internal);
  EXPECT_NE(mistral.error().message.find("api: converse"), std::string::npos);
  EXPECT_FALSE(check_target(p, "mistral.mistral-large-2402-v1:0"));
  EXPECT_TRUE(check_target(p, kClaude));
  EXPECT_TRUE(check_target(bedrock_provider(), "mistral.mistral-large-2402-v1:0"));
}

TEST(BedrockUpstream, ConverseAnswerToChatCompletion) {
  const auto p = bedrock_provider();
  const std::string_view answer = R"({"output":{"message":{"role":"assistant","content":[{"text":"Sure."},
      {"toolUse":{"toolUseId":"tooluse_abc","name":"weather","input":{"city":"Oslo"}}}]}},
      "stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":9,"totalTokens":64,"cacheReadInputTokens":40,"cacheWriteInputTokens":10},
      "metrics":{"latencyMs":321}})";
  auto out = openai_answer(p, kClaude, answer, "0123abcd");
  ASSERT_TRUE(out) << out.error().message;
  simdjson::dom::parser parser;
  auto doc = parse(parser, *out);
  EXPECT_EQ(std::string_view(doc["id"].get_string().value()), "chatcmpl-0123abcd");
  EXPECT_EQ(std::string_view(doc["model"].get_string().value()), kClaude);
  EXPECT_GT(doc["created"].get_int64().value(), 1'600'000'000);
  auto choice = doc["choices"].at(0);
  EXPECT_EQ(std::string_view(choice["finish_reason"].get_string().value()), "tool_calls");
  EXPECT_EQ(std::string_view(choice["message"]["tool_calls"].at(0)["id"].get_string().value()), "call_abc");
  EXPECT_EQ(doc["usage"]["prompt_tokens"].get_int64().value(), 55);
  EXPECT_EQ(doc["usage"]["prompt_tokens_details"]["cached_tokens"].get_int64().value(), 40);
  EXPECT_EQ(doc["usage"]["cache_creation_input_tokens"].get_int64().value(), 10);
}

TEST(BedrockUpstream, InvokeAnswersPerFamily) {
  const auto p = bedrock_provider(config::Provider::Bedrock::Api::invoke);
  auto llama = openai_answer(p, "meta.llama3-8b-instruct-v1:0",
                             R"({"generation":"Hello there","prompt_token_count":7,"generation_token_count":3,"stop_reason":"length"})", "r");
  ASSERT_TRUE(llama) << llama.error().message;
  auto resp = api::openai::decode_response(*llama);
  ASSERT_TRUE(resp);
  EXPECT_EQ(cn::text_of(*resp), "Hello there");
  EXPECT_EQ(resp->stop_reason, cn::StopReason::max_tokens);
  EXPECT_EQ(resp->usage.prompt(), 7);
  auto titan = openai_answer(p, "amazon.titan-text-express-v1",
                             R"({"inputTextTokenCount":4,"results":[{"tokenCount":2,"outputText":"Hi!","completionReason":"FINISH"}]})", "r");
  ASSERT_TRUE(titan);
  EXPECT_NE(titan->find("\"Hi!\""), std::string::npos);
}

std::string event(std::string_view type, std::string payload) {
  return *es::encode(es::make_event(type, std::move(payload)));
}

std::string converse_stream() {
  std::string s;
  s += event("messageStart", R"({"role":"assistant","p":"abc"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Let me"},"p":"x"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":" look."}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":0})");
  s += event("contentBlockStart", R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_q1","name":"weather"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"ci"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"ty\":\"Oslo\"}"}}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":1})");
  s += event("messageStop", R"({"stopReason":"tool_use"})");
  s += event("metadata", R"({"usage":{"inputTokens":3,"outputTokens":11,"totalTokens":24,"cacheReadInputTokens":8,"cacheWriteInputTokens":2},"metrics":{"latencyMs":99}})");
  return s;
}

TEST(BedrockUpstream, ConverseStreamToOpenAIChunks) {
  const auto p = bedrock_provider();
  auto stream = OpenAIStream::make(p, kClaude, "feedbeef");
  Status st;
  const std::string out = convert_bytewise(*stream, converse_stream(), &st);
  ASSERT_TRUE(st) << st.error().message;
  auto r = read_openai_sse(out);
  EXPECT_TRUE(r.done);
  ASSERT_TRUE(r.built.stopped());
  const auto& resp = r.built.response();
  EXPECT_EQ(cn::text_of(resp), "Let me look.");
  ASSERT_EQ(resp.content.size(), 2u);
  const auto* call = std::get_if<cn::ToolCallPart>(&resp.content[1]);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(call->id, "call_q1");
  EXPECT_EQ(call->arguments, R"({"city":"Oslo"})");
  EXPECT_EQ(resp.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(resp.usage, (cn::Usage{3, 11, 8, 2}));
  EXPECT_NE(r.events.front().find("chatcmpl-feedbeef"), std::string::npos) << r.events.front();
}

TEST(BedrockUpstream, StreamExceptionBecomesErrorEvent) {
  const auto p = bedrock_provider();
  auto stream = OpenAIStream::make(p, kClaude, "r");
  std::string in;
  in += event("messageStart", R"({"role":"assistant"})");
  in += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"w1"}})");
  in += *es::encode(es::make_exception("throttlingException", R"({"message":"Too many requests, please wait."})"));
  std::string out;
  ASSERT_TRUE(stream->feed(in, out));
  ASSERT_TRUE(stream->finish(out));
  auto r = read_openai_sse(out);
  ASSERT_TRUE(r.error_message);
  EXPECT_NE(r.error_message->find("Too many requests"), std::string::npos);
  EXPECT_FALSE(r.done);
}

TEST(BedrockUpstream, CorruptFrameIsAProtocolErrorAndTruncationAnErrorEvent) {
  const auto p = bedrock_provider();
  std::string in = converse_stream();
  in[in.size() - 1] ^= 0x01;  // the last message's CRC
  auto stream = OpenAIStream::make(p, kClaude, "r");
  std::string out;
  auto st = stream->feed(in, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::upstream_protocol);

  std::string cut = converse_stream();
  cut.resize(cut.size() - 5);  // inside the metadata message
  auto s2 = OpenAIStream::make(p, kClaude, "r");
  std::string out2;
  ASSERT_TRUE(s2->feed(cut, out2));
  ASSERT_TRUE(s2->finish(out2));
  auto r = read_openai_sse(out2);
  EXPECT_FALSE(r.done);
  EXPECT_TRUE(r.error_message);
}

TEST(BedrockUpstream, InvokeStreamChunksOfClaude) {
  const auto p = bedrock_provider(config::Provider::Bedrock::Api::invoke);
  auto chunk = [](std::string_view json) {
    return *es::encode(es::make_event("chunk", api::bedrock::invoke::chunk_payload(json)));
  };
  std::string in;
  in += chunk(R"({"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":4,"output_tokens":1}}})");
  in += chunk(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  in += chunk(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w1 w2."}})");
  in += chunk(R"({"type":"content_block_stop","index":0})");
  in += chunk(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}})");
  in += chunk(R"({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":4,"outputTokenCount":2,"invocationLatency":10,"firstByteLatency":5}})");
  auto stream = OpenAIStream::make(p, kClaude, "r");
  Status st;
  auto out = convert_bytewise(*stream, in, &st);
  ASSERT_TRUE(st) << st.error().message;
  auto r = read_openai_sse(out);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(cn::text_of(r.built.response()), "w1 w2.");
  EXPECT_EQ(r.built.response().usage.output, 2);
}

// The prompt's tokens from a Claude message_start inside the binary frames: what an
// attempt cut before its end is charged with (no raw-text scan can read those frames).
TEST(BedrockUpstream, InvokeStreamReportsThePromptsTokensAtTheStart) {
  const auto p = bedrock_provider(config::Provider::Bedrock::Api::invoke);
  auto stream = OpenAIStream::make(p, kClaude, "r");
  EXPECT_FALSE(stream->start_usage());
  std::string out;
  ASSERT_TRUE(stream->feed(*es::encode(es::make_event("chunk", api::bedrock::invoke::chunk_payload(
                               R"({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":40,"cache_read_input_tokens":300,"cache_creation_input_tokens":7,"output_tokens":1}}})"))),
                           out));
  ASSERT_TRUE(stream->start_usage());
  EXPECT_EQ(*stream->start_usage(), (cn::Usage{40, 1, 300, 7}));
}

TEST(BedrockUpstream, ConverseStreamReportsNoTokensAtTheStart) {
  const auto p = bedrock_provider();
  auto stream = OpenAIStream::make(p, kClaude, "r");
  std::string out;
  ASSERT_TRUE(stream->feed(*es::encode(es::make_event("messageStart", R"({"role":"assistant"})")), out));
  EXPECT_FALSE(stream->start_usage());  // Converse reports usage in its last event only
}

struct ClassifyCase {
  unsigned status;
  std::string type;
  std::string message;
  ErrorKind kind;
  bool retryable;
};

TEST(BedrockUpstream, ClassifiesErrors) {
  const auto p = bedrock_provider();
  const std::vector<ClassifyCase> cases = {
      {429, "ThrottlingException", "Too many requests", ErrorKind::upstream_rate_limited, true},
      {429, "ModelNotReadyException", "Model is not ready", ErrorKind::upstream_overloaded, true},
      {503, "ServiceUnavailableException", "unavailable", ErrorKind::upstream_overloaded, true},
      {500, "InternalServerException", "oops", ErrorKind::upstream_server_error, true},
      {408, "ModelTimeoutException", "timed out", ErrorKind::first_token_timeout, true},
      {400, "ValidationException", "Input is too long for requested model.", ErrorKind::context_length_exceeded, false},
      {400, "ValidationException", "messages: field required", ErrorKind::upstream_bad_request, false},
      {403, "AccessDeniedException", "User arn:aws:iam::123456789012:user/x is not authorized", ErrorKind::upstream_auth, false},
      {403, "UnrecognizedClientException", "The security token included in the request is invalid.", ErrorKind::upstream_auth, false},
      {404, "ResourceNotFoundException", "Could not resolve the foundation model", ErrorKind::upstream_not_found, false},
  };
  for (const auto& c : cases) {
    // The type arrives in the header (as AWS sends it) ...
    Error e = classify_error(p, c.status, headers_of({{"x-amzn-errortype", c.type + ":http://internal.amazon.com/coral/"}}),
                             R"({"message":")" + c.message + R"("})", "bedrock/claude");
    EXPECT_EQ(e.kind, c.kind) << c.type;
    EXPECT_EQ(e.retryable, c.retryable) << c.type;
    EXPECT_EQ(e.upstream_status, static_cast<int>(c.status));
    EXPECT_EQ(e.message.find("arn:aws"), std::string::npos) << e.message;  // auth: no account details
    // ... or only in the body's __type.
    Error b = classify_error(p, c.status, {}, R"({"__type":"com.amazon.bedrock#)" + c.type + R"(","message":")" + c.message + R"("})",
                             "bedrock/claude");
    EXPECT_EQ(b.kind, c.kind) << c.type;
  }
  EXPECT_EQ(classify_error(p, 502, {}, "", "t").kind, ErrorKind::upstream_server_error);
}

TEST(BedrockUpstream, ConfigLoadsKindBedrock) {
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_SECRET") return "secret-from-env";
    return std::nullopt;
  };
  const std::string yaml = R"(
providers:
  aws:
    kind: bedrock
    region: eu-west-3
    aws_access_key_id: AKIDEXAMPLE
    aws_secret_access_key: ${AWS_SECRET}
  aws-invoke:
    kind: bedrock
    region: us-west-2
    api: invoke
    base_url: http://127.0.0.1:9000
    bearer_token: ABSK123
  aws-chain:
    kind: bedrock
    region: us-east-1
models:
  haiku:
    targets:
      - provider: aws
        model: anthropic.claude-3-haiku-20240307-v1:0
)";
  auto cfg = config::load_string(yaml, env);
  ASSERT_TRUE(cfg) << cfg.error().front().to_string();
  const auto* aws = (*cfg)->find_provider("aws");
  ASSERT_NE(aws, nullptr);
  EXPECT_EQ(aws->endpoint.host, "bedrock-runtime.eu-west-3.amazonaws.com");
  EXPECT_TRUE(aws->endpoint.tls);
  EXPECT_EQ(aws->bedrock.api, config::Provider::Bedrock::Api::converse);
  EXPECT_EQ(aws->bedrock.secret_access_key.reveal(), "secret-from-env");
  const auto* inv = (*cfg)->find_provider("aws-invoke");
  ASSERT_NE(inv, nullptr);
  EXPECT_EQ(inv->bedrock.api, config::Provider::Bedrock::Api::invoke);
  EXPECT_EQ(inv->endpoint.port, 9000);
  EXPECT_EQ(inv->bedrock.region, "us-west-2");

  struct Bad {
    std::string yaml;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {"providers:\n  a:\n    kind: bedrock\n", "needs 'region'"},
      {"providers:\n  a:\n    kind: bedrock\n    region: us-east-1\n    api: chat\n", "api must be converse or invoke"},
      {"providers:\n  a:\n    kind: bedrock\n    region: US East\n", "region must be"},
      {"providers:\n  a:\n    kind: bedrock\n    region: us-east-1\n    aws_access_key_id: AKID\n", "go together"},
      {"providers:\n  a:\n    kind: bedrock\n    region: us-east-1\n    aws_session_token: tok\n", "needs aws_access_key_id"},
      {"providers:\n  a:\n    kind: bedrock\n    region: us-east-1\n    api_key: k\n", "bearer_token"},
      {"providers:\n  a:\n    kind: bedrock\n    region: us-east-1\n    aws_secret_access_key: ${NOPE}\n    aws_access_key_id: x\n", "NOPE"},
      {"providers:\n  a:\n    kind: openai\n    base_url: http://x\n    region: us-east-1\n", "unknown key 'region'"},
  };
  for (const auto& b : bad) {
    auto r = config::load_string(b.yaml, env);
    ASSERT_FALSE(r) << b.yaml;
    std::string all;
    for (const auto& e : r.error()) all += e.to_string() + "\n";
    EXPECT_NE(all.find(b.says), std::string::npos) << all;
    EXPECT_EQ(all.find("secret-from-env"), std::string::npos);
    EXPECT_GT(r.error().front().line, 0) << all;
  }
}

TEST(BedrockUpstream, CredentialsFromEnvironmentAndSharedFile) {
  config::Provider p;
  p.name = "chain";
  p.kind = config::ProviderKind::bedrock;
  p.bedrock.region = "us-east-1";
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_ACCESS_KEY_ID") return "AKIDENV";
    if (name == "AWS_SECRET_ACCESS_KEY") return "envsecret";
    if (name == "AWS_SESSION_TOKEN") return "envtoken";
    return std::nullopt;
  };
  auto auth = resolve_auth(p, env);
  ASSERT_TRUE(auth);
  const auto& creds = std::get<bulwark::bedrock::Credentials>(*auth);
  EXPECT_EQ(creds.access_key_id, "AKIDENV");
  EXPECT_EQ(creds.session_token, "envtoken");

  auto none = [](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_SHARED_CREDENTIALS_FILE") return "/nonexistent/credentials";
    return std::nullopt;
  };
  auto missing = resolve_auth(p, none);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::upstream_auth);
  EXPECT_FALSE(check_target(p, kClaude, none));
  config::Provider openai;
  EXPECT_TRUE(check_target(openai, "gpt", none));
}

// Real exchanges with bulwark-mock verifying SigV4 (and the session token) as AWS does.
TEST(BedrockUpstream, MockAcceptsSignedConverseAndInvoke) {
  mock::Engine engine(mock::Config{}, SteadyClock::instance(), 7);
  mock::ServerOptions opts;
  opts.aws_keys = mock::ServerOptions::AwsKeys{std::string(kKeyId), std::string(kSecret), "session-tok"};
  opts.aws_region = "us-east-1";
  mock::Server server(opts, engine, SteadyClock::instance());
  ASSERT_TRUE(server.start());
  auto p = bedrock_provider();
  p.name = "bedrock-mock";
  p.endpoint = loopback(server.port());
  p.bedrock.session_token = Secret("session-tok");
  const std::string expected = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16.";

  for (const auto api : {config::Provider::Bedrock::Api::converse, config::Provider::Bedrock::Api::invoke}) {
    p.bedrock.api = api;
    const auto now = std::chrono::system_clock::now();
    auto req = build_chat_request(p, kClaude, kOpenAIRequest, false, now);
    ASSERT_TRUE(req);
    auto res = roundtrip(server.port(), *req);
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    auto answer = openai_answer(p, kClaude, res.body(), "r");
    ASSERT_TRUE(answer) << answer.error().message << " " << res.body();
    auto resp = api::openai::decode_response(*answer);
    ASSERT_TRUE(resp);
    EXPECT_EQ(cn::text_of(*resp), expected);

    auto sreq = build_chat_request(p, kClaude, kOpenAIRequest, true, now);
    ASSERT_TRUE(sreq);
    auto sres = roundtrip(server.port(), *sreq);
    ASSERT_EQ(sres.result_int(), 200u) << sres.body();
    EXPECT_EQ(sres[http::field::content_type], "application/vnd.amazon.eventstream");
    auto stream = OpenAIStream::make(p, kClaude, "r");
    Status st;
    auto out = convert_bytewise(*stream, sres.body(), &st);
    ASSERT_TRUE(st) << st.error().message;
    auto r = read_openai_sse(out);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(cn::text_of(r.built.response()), expected);
    EXPECT_EQ(r.built.response().usage.output, 16);
  }

  // A wrong secret: the mock rejects the signature; classified as refused credentials.
  p.bedrock.secret_access_key = Secret("wrong-secret");
  auto bad = build_chat_request(p, kClaude, kOpenAIRequest, false, std::chrono::system_clock::now());
  ASSERT_TRUE(bad);
  auto bres = roundtrip(server.port(), *bad);
  EXPECT_EQ(bres.result_int(), 403u);
  auto lookup = [&bres](std::string_view name) -> std::optional<std::string_view> {
    auto it = bres.find(name);
    if (it == bres.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  };
  const Error e = classify_error(p, 403, lookup, bres.body(), "t");
  EXPECT_EQ(e.kind, ErrorKind::upstream_auth);
  EXPECT_NE(e.message.find("InvalidSignatureException"), std::string::npos) << e.message;
  server.stop();
}

}  // namespace
}  // namespace bulwark::providers
