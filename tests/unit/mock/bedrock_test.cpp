// Bedrock Runtime: routes, model families, event-stream framing, faults and SigV4 on a
// real socket.
#include "mock/bedrock.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "mock/answer.hpp"
#include "mock_client.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "providers/bedrock/sigv4.hpp"

namespace bulwark::mock {
namespace {

using namespace bulwark::mock::testing;
namespace es = bulwark::bedrock::eventstream;
namespace aws = bulwark::bedrock;

TEST(MockBedrockRoute, DecodesPercentEncodedModelIdsAndOperations) {
  auto r = bedrock::parse_route("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->model_id, "anthropic.claude-3-haiku-20240307-v1:0");
  EXPECT_EQ(r->api, bedrock::Api::converse);
  EXPECT_FALSE(r->stream());
  r = bedrock::parse_route("/model/us.meta.llama3-1-8b-instruct-v1%3a0/invoke-with-response-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->model_id, "us.meta.llama3-1-8b-instruct-v1:0");
  EXPECT_TRUE(r->stream());
  EXPECT_EQ(r->api_name(), "invoke-with-response-stream");
  r = bedrock::parse_route(
      "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-lite-v1%3A0/converse-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->model_id, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0");
  EXPECT_EQ(bedrock::family_of(r->model_id), bedrock::Family::nova);
  bool known = true;
  EXPECT_FALSE(bedrock::parse_route("/model/x/generate", &known));
  EXPECT_FALSE(known);
  EXPECT_FALSE(bedrock::parse_route("/v1/messages"));
  EXPECT_FALSE(bedrock::parse_route("/model//converse"));
}

TEST(MockBedrockRoute, FamiliesFromModelIds) {
  using bedrock::Family;
  EXPECT_EQ(bedrock::family_of("anthropic.claude-3-haiku-20240307-v1:0"), Family::anthropic);
  EXPECT_EQ(bedrock::family_of("eu.anthropic.claude-3-5-sonnet-20240620-v1:0"), Family::anthropic);
  EXPECT_EQ(bedrock::family_of("meta.llama3-8b-instruct-v1:0"), Family::meta);
  EXPECT_EQ(bedrock::family_of("us.meta.llama3-1-8b-instruct-v1:0"), Family::meta);
  EXPECT_EQ(bedrock::family_of("amazon.titan-text-express-v1"), Family::titan_text);
  EXPECT_EQ(bedrock::family_of("amazon.nova-micro-v1:0"), Family::nova);
  EXPECT_EQ(bedrock::family_of("amazon.titan-embed-text-v2:0"), Family::unknown);
  EXPECT_EQ(bedrock::family_of("mistral.mistral-large-2402-v1:0"), Family::unknown);
}

TEST(MockBedrockEncode, ExceptionNamesAndBase64) {
  EXPECT_EQ(bedrock::http_exception(ErrorType::rate_limit, 429), "ThrottlingException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::model_not_ready, 429), "ModelNotReadyException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::invalid_request, 400), "ValidationException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::auth, 403), "AccessDeniedException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::invalid_request, 404), "ResourceNotFoundException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::model_timeout, 408), "ModelTimeoutException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::model_error, 424), "ModelErrorException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::server_error, 500), "InternalServerException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::overloaded, 503), "ServiceUnavailableException");
  EXPECT_EQ(bedrock::http_exception(ErrorType::bad_gateway, 502), "InternalServerException");
  EXPECT_EQ(bedrock::stream_exception(ErrorType::rate_limit), "throttlingException");
  EXPECT_EQ(bedrock::stream_exception(ErrorType::model_error), "modelStreamErrorException");
  EXPECT_EQ(bedrock::stream_exception(ErrorType::server_error), "internalServerException");
  EXPECT_EQ(bedrock::stream_exception(ErrorType::overloaded), "serviceUnavailableException");
  EXPECT_EQ(bedrock::stream_exception(ErrorType::invalid_request), "validationException");
  EXPECT_EQ(bedrock::base64(""), "");
  EXPECT_EQ(bedrock::base64("f"), "Zg==");
  EXPECT_EQ(bedrock::base64("fo"), "Zm8=");
  EXPECT_EQ(bedrock::base64("foo"), "Zm9v");
  EXPECT_EQ(bedrock::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(bedrock::base64(std::string("\xff\x00\x80", 3)), "/wCA");
}

TEST(MockBedrockDecode, InvokeBodiesPerFamily) {
  const BedrockInvokeFormat meta{bedrock::Family::meta};
  auto r = meta.decode_chat(R"({"prompt":"one two three","max_gen_len":7,"temperature":0.5})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->prompt_tokens, 3u);
  EXPECT_EQ(r->max_tokens, 7u);
  auto extra = meta.decode_chat(R"({"prompt":"x","max_tokens":7})");
  ASSERT_FALSE(extra);
  EXPECT_NE(extra.error().message.find("extraneous key [max_tokens] is not permitted"), std::string::npos);

  const BedrockInvokeFormat titan{bedrock::Family::titan_text};
  r = titan.decode_chat(R"({"inputText":"a b","textGenerationConfig":{"maxTokenCount":4,"topP":0.9}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->prompt_tokens, 2u);
  EXPECT_EQ(r->max_tokens, 4u);
  EXPECT_FALSE(titan.decode_chat(R"({"prompt":"a b"})"));

  const BedrockInvokeFormat nova{bedrock::Family::nova};
  r = nova.decode_chat(R"({"schemaVersion":"messages-v1","system":[{"text":"be kind"}],
      "messages":[{"role":"user","content":[{"text":"hi there"}]},{"role":"assistant","content":[{"text":"w1"}]}],
      "inferenceConfig":{"max_new_tokens":9}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->prompt_tokens, 5u);
  EXPECT_EQ(r->max_tokens, 9u);
  EXPECT_TRUE(r->last_is_assistant);
  EXPECT_EQ(r->last_content, "w1");
  EXPECT_FALSE(nova.decode_chat(R"({"messages":[],"inferenceConfig":{"maxTokens":9}})"));

  const BedrockInvokeFormat unknown{bedrock::Family::unknown};
  EXPECT_FALSE(unknown.decode_chat(R"({"prompt":"x"})"));

  const BedrockConverseFormat converse;
  r = converse.decode_chat(R"({"messages":[{"role":"user","content":[{"text":"a b c"},{"image":{}}]}],
      "system":[{"text":"s"}],"inferenceConfig":{"maxTokens":2}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->prompt_tokens, 4u);
  EXPECT_EQ(r->max_tokens, 2u);
  EXPECT_FALSE(converse.decode_chat(R"({"messages":[{"role":"user","content":"not a list"}]})"));
  EXPECT_FALSE(converse.decode_chat(R"({"messages":[]})"));
  EXPECT_EQ(converse.decode_chat("{oops").error().kind, ErrorKind::invalid_json);
}

// ---- On a real socket ----

const std::string kHaiku = "anthropic.claude-3-haiku-20240307-v1:0";
const std::string kHaikuPath = "/model/anthropic.claude-3-haiku-20240307-v1%3A0";
const std::string kLlamaPath = "/model/us.meta.llama3-1-8b-instruct-v1%3A0";
const std::string kTitanPath = "/model/amazon.titan-text-express-v1";
const std::string kNovaPath = "/model/us.amazon.nova-lite-v1%3A0";

const std::string kConverseBody =
    R"({"messages":[{"role":"user","content":[{"text":"say four words please"}]}],"system":[{"text":"be brief"}]})";

std::string unbase64(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = val(c);
    if (v < 0) break;
    acc = acc << 6 | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Every message of an event-stream body; the decoder checks both CRCs of each.
std::vector<es::Message> frames(const std::string& body, bool complete = true) {
  es::Decoder d;
  d.feed(body);
  std::vector<es::Message> out;
  for (;;) {
    auto m = d.next();
    EXPECT_TRUE(m) << (m ? "" : m.error().message);
    if (!m || !*m) break;
    out.push_back(std::move(**m));
  }
  if (complete) {
    EXPECT_TRUE(d.finish()) << "a partial message at the end";
  }
  return out;
}

class MockBedrockServer : public MockServerTest {
 protected:
  // The model chunk JSON inside an invoke stream's chunk event.
  std::string chunk_json(const es::Message& m) {
    EXPECT_EQ(es::event_type(m), "chunk");
    auto outer = parse(m.payload);
    return unbase64(std::string_view(outer["bytes"]));
  }
};

TEST_F(MockBedrockServer, ConverseAnswersWithUsageAndMetrics) {
  Config c;
  c.default_behavior.tokens = 5;
  c.models[kHaiku].tokens = 3;  // behaviours are keyed by the decoded model id
  start(c);
  Client client(port());
  const auto res = client.call(Client::post(kHaikuPath + "/converse", kConverseBody));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res["x-amzn-RequestId"].size(), 36u);
  auto j = parse(res.body());
  EXPECT_EQ(std::string_view(j["output"]["message"]["role"]), "assistant");
  EXPECT_EQ(std::string_view(j["output"]["message"]["content"].at(0)["text"]), "w1 w2 w3.");
  EXPECT_EQ(std::string_view(j["stopReason"]), "end_turn");
  EXPECT_EQ(std::uint64_t(j["usage"]["inputTokens"]), 6u);
  EXPECT_EQ(std::uint64_t(j["usage"]["outputTokens"]), 3u);
  EXPECT_EQ(std::uint64_t(j["usage"]["totalTokens"]), 9u);
  EXPECT_EQ(std::uint64_t(j["metrics"]["latencyMs"]), 0u);
  EXPECT_EQ(engine_->stats_of(kHaiku).attempts, 1u);

  // inferenceConfig.maxTokens caps the answer; prefill continues it.
  const auto capped = client.call(Client::post(
      "/model/amazon.nova-pro-v1%3A0/converse",
      R"({"messages":[{"role":"user","content":[{"text":"x"}]},{"role":"assistant","content":[{"text":"w1 w2"}]}],"inferenceConfig":{"maxTokens":2}})"));
  auto cj = parse(capped.body());
  EXPECT_EQ(std::string_view(cj["output"]["message"]["content"].at(0)["text"]), " w3 w4");
  EXPECT_EQ(std::string_view(cj["stopReason"]), "max_tokens");

  // Stats and the last request name the format and the decoded model.
  auto stats = parse(client.get("/_mock/stats").body());
  EXPECT_EQ(std::uint64_t(stats["formats"]["bedrock"]["requests"]), 2u);
  auto last = parse(client.get("/_mock/last-request/bedrock").body());
  EXPECT_EQ(std::string_view(last["api"]), "converse");
  EXPECT_EQ(std::string_view(last["model"]), "amazon.nova-pro-v1:0");
  EXPECT_EQ(std::string_view(last["target"]), "/model/amazon.nova-pro-v1%3A0/converse");
}

TEST_F(MockBedrockServer, ConverseStreamIsAnEventStream) {
  Config c;
  c.default_behavior.tokens = 3;
  start(c);
  Client client(port());
  const auto res = client.call(Client::post(kHaikuPath + "/converse-stream", kConverseBody));
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "application/vnd.amazon.eventstream");
  const auto msgs = frames(res.body());
  std::vector<std::string> types;
  std::string text;
  for (const auto& m : msgs) {
    EXPECT_EQ(es::message_type(m), es::MessageType::event);
    EXPECT_EQ(es::content_type(m), "application/json");
    types.emplace_back(*es::event_type(m));
    auto j = parse(m.payload);
    if (types.back() == "contentBlockDelta") {
      EXPECT_EQ(std::uint64_t(j["contentBlockIndex"]), 0u);
      text += std::string_view(j["delta"]["text"]);
    } else if (types.back() == "messageStart") {
      EXPECT_EQ(std::string_view(j["role"]), "assistant");
    } else if (types.back() == "messageStop") {
      EXPECT_EQ(std::string_view(j["stopReason"]), "end_turn");
    } else if (types.back() == "metadata") {
      EXPECT_EQ(std::uint64_t(j["usage"]["inputTokens"]), 6u);
      EXPECT_EQ(std::uint64_t(j["usage"]["outputTokens"]), 3u);
      EXPECT_EQ(std::uint64_t(j["usage"]["totalTokens"]), 9u);
      EXPECT_EQ(std::uint64_t(j["metrics"]["latencyMs"]), 0u);
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"messageStart", "contentBlockDelta", "contentBlockDelta",
                                             "contentBlockDelta", "contentBlockStop", "messageStop",
                                             "metadata"}));
  EXPECT_EQ(text, expected_answer(3));
}

TEST_F(MockBedrockServer, InvokeEachFamily) {
  Config c;
  c.default_behavior.tokens = 4;
  start(c);
  Client client(port());
  {
    const auto res = client.call(Client::post(
        kHaikuPath + "/invoke",
        R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"a b"}]})"));
    ASSERT_EQ(res.result_int(), 200) << res.body();
    auto j = parse(res.body());
    EXPECT_TRUE(std::string_view(j["id"]).starts_with("msg_bdrk_"));
    EXPECT_EQ(std::string_view(j["type"]), "message");
    EXPECT_EQ(std::string_view(j["content"].at(0)["text"]), expected_answer(4));
    EXPECT_EQ(std::string_view(j["stop_reason"]), "end_turn");
    EXPECT_EQ(std::uint64_t(j["usage"]["input_tokens"]), 2u);
    EXPECT_EQ(res["x-amzn-bedrock-input-token-count"], "2");
    EXPECT_EQ(res["x-amzn-bedrock-output-token-count"], "4");
  }
  {
    const auto res = client.call(Client::post(kLlamaPath + "/invoke", R"({"prompt":"<|begin_of_text|>hi there","max_gen_len":3})"));
    ASSERT_EQ(res.result_int(), 200) << res.body();
    auto j = parse(res.body());
    EXPECT_EQ(std::string_view(j["generation"]), "w1 w2 w3");
    EXPECT_EQ(std::uint64_t(j["prompt_token_count"]), 2u);
    EXPECT_EQ(std::uint64_t(j["generation_token_count"]), 3u);
    EXPECT_EQ(std::string_view(j["stop_reason"]), "length");
  }
  {
    const auto res = client.call(Client::post(kTitanPath + "/invoke", R"({"inputText":"one two three"})"));
    ASSERT_EQ(res.result_int(), 200) << res.body();
    auto j = parse(res.body());
    EXPECT_EQ(std::uint64_t(j["inputTextTokenCount"]), 3u);
    EXPECT_EQ(std::string_view(j["results"].at(0)["outputText"]), expected_answer(4));
    EXPECT_EQ(std::uint64_t(j["results"].at(0)["tokenCount"]), 4u);
    EXPECT_EQ(std::string_view(j["results"].at(0)["completionReason"]), "FINISH");
  }
  {
    const auto res = client.call(Client::post(
        kNovaPath + "/invoke",
        R"({"schemaVersion":"messages-v1","messages":[{"role":"user","content":[{"text":"hey"}]}],"inferenceConfig":{"max_new_tokens":50}})"));
    ASSERT_EQ(res.result_int(), 200) << res.body();
    auto j = parse(res.body());
    EXPECT_EQ(std::string_view(j["output"]["message"]["content"].at(0)["text"]), expected_answer(4));
    EXPECT_EQ(std::string_view(j["stopReason"]), "end_turn");
    EXPECT_EQ(std::uint64_t(j["usage"]["outputTokens"]), 4u);
  }
  {
    // A model family the mock does not emulate for InvokeModel: a ValidationException.
    const auto res = client.call(Client::post("/model/cohere.command-r-v1%3A0/invoke", R"({"message":"x"})"));
    EXPECT_EQ(res.result_int(), 400);
    EXPECT_EQ(res["x-amzn-ErrorType"], "ValidationException");
    // A body of the wrong family is refused like Bedrock's schema check does.
    const auto wrong = client.call(Client::post(kLlamaPath + "/invoke", R"({"prompt":"x","max_tokens":3})"));
    EXPECT_EQ(wrong.result_int(), 400);
    EXPECT_NE(wrong.body().find("extraneous key [max_tokens]"), std::string::npos) << wrong.body();
  }
}

TEST_F(MockBedrockServer, InvokeWithResponseStreamEachFamily) {
  Config c;
  c.default_behavior.tokens = 3;
  start(c);
  Client client(port());
  struct Case {
    std::string path;
    std::string body;
    std::size_t chunks;
  };
  const Case cases[] = {
      {kHaikuPath, R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"a b"}]})", 2 + 3 + 3},
      {kLlamaPath, R"({"prompt":"a b"})", 3 + 1},
      {kTitanPath, R"({"inputText":"a b"})", 3 + 1},
      {kNovaPath, R"({"messages":[{"role":"user","content":[{"text":"a b"}]}]})", 1 + 3 + 3},
  };
  for (const auto& k : cases) {
    const auto res = client.call(Client::post(k.path + "/invoke-with-response-stream", k.body));
    ASSERT_EQ(res.result_int(), 200) << k.path << res.body();
    EXPECT_EQ(res[http::field::content_type], "application/vnd.amazon.eventstream");
    const auto msgs = frames(res.body());
    ASSERT_EQ(msgs.size(), k.chunks) << k.path;
    std::string text;
    std::uint64_t output_tokens = 0;
    for (const auto& m : msgs) {
      EXPECT_EQ(es::message_type(m), es::MessageType::event);
      auto j = parse(chunk_json(m));
      if (k.path == kHaikuPath) {
        if (std::string_view(j["type"]) == "content_block_delta") text += std::string_view(j["delta"]["text"]);
        if (std::string_view(j["type"]) == "message_delta") output_tokens = std::uint64_t(j["usage"]["output_tokens"]);
        if (std::string_view(j["type"]) == "message_stop") {
          EXPECT_EQ(std::uint64_t(j["amazon-bedrock-invocationMetrics"]["inputTokenCount"]), 2u);
        }
      } else if (k.path == kLlamaPath) {
        text += std::string_view(j["generation"]);
        output_tokens = std::uint64_t(j["generation_token_count"]);
      } else if (k.path == kTitanPath) {
        text += std::string_view(j["outputText"]);
        output_tokens = std::uint64_t(j["totalOutputTextTokenCount"]);
      } else {
        simdjson::dom::element delta;
        if (j["contentBlockDelta"].get(delta) == simdjson::SUCCESS) text += std::string_view(delta["delta"]["text"]);
        simdjson::dom::element meta;
        if (j["metadata"].get(meta) == simdjson::SUCCESS) output_tokens = std::uint64_t(meta["usage"]["outputTokens"]);
      }
    }
    EXPECT_EQ(text, expected_answer(3)) << k.path;
    EXPECT_EQ(output_tokens, 3u) << k.path;
  }
}

TEST_F(MockBedrockServer, HttpErrorsCarryTheExceptionName) {
  Config c;
  c.models["m-throttle"].faults.push_back(Fault{always(), error_act(ErrorType::rate_limit, 429)});
  c.models["m-notready"].faults.push_back(Fault{always(), error_act(ErrorType::model_not_ready, 429)});
  c.models["m-timeout"].faults.push_back(Fault{always(), error_act(ErrorType::model_timeout, 408)});
  c.models["m-modelerr"].faults.push_back(Fault{always(), error_act(ErrorType::model_error, 424)});
  c.models["m-internal"].faults.push_back(Fault{always(), error_act(ErrorType::server_error, 500)});
  c.models["m-unavail"].faults.push_back(Fault{always(), error_act(ErrorType::unavailable, 503)});
  c.models["m-denied"].faults.push_back(Fault{always(), error_act(ErrorType::auth, 401)});
  c.models["m-missing"].faults.push_back(Fault{always(), error_act(ErrorType::not_found, 404)});
  c.models["m-small"].context_window = 2;
  start(c);
  Client client(port());
  struct Case {
    const char* model;
    int status;
    const char* type;
  };
  for (const Case& k : {Case{"m-throttle", 429, "ThrottlingException"},
                        Case{"m-notready", 429, "ModelNotReadyException"},
                        Case{"m-timeout", 408, "ModelTimeoutException"},
                        Case{"m-modelerr", 424, "ModelErrorException"},
                        Case{"m-internal", 500, "InternalServerException"},
                        Case{"m-unavail", 503, "ServiceUnavailableException"},
                        Case{"m-denied", 403, "AccessDeniedException"},
                        Case{"m-missing", 404, "ResourceNotFoundException"},
                        Case{"m-small", 400, "ValidationException"}}) {
    for (const char* op : {"/converse", "/converse-stream"}) {
      const auto res = client.call(Client::post(std::string("/model/") + k.model + op, kConverseBody));
      EXPECT_EQ(res.result_int(), k.status) << k.model << op;
      EXPECT_EQ(res["x-amzn-ErrorType"], k.type) << k.model << op;
      EXPECT_EQ(res[http::field::content_type], "application/json");
      auto j = parse(res.body());
      EXPECT_FALSE(std::string_view(j["message"]).empty());
      if (std::string_view(k.model) == "m-small") {
        EXPECT_EQ(std::string_view(j["message"]), "Input is too long for requested model.");
      }
    }
  }
}

TEST_F(MockBedrockServer, ExceptionsAndFaultsInsideTheStream) {
  Config c;
  for (auto name : {"throttle", "anthropic.modelerr", "cut", "bad", "nodone", "amazon.nova-bad"})
    c.models[name].tokens = 5;
  c.models["throttle"].faults.push_back(
      Fault{always(), error_act(ErrorType::rate_limit, 429, ActionKind::stream_error, 2)});
  c.models["anthropic.modelerr"].faults.push_back(
      Fault{always(), error_act(ErrorType::model_error, 424, ActionKind::stream_error, 1)});
  c.models["cut"].faults.push_back(Fault{always(), act(ActionKind::cut, 2)});
  c.models["bad"].faults.push_back(Fault{always(), act(ActionKind::malformed, 1)});
  c.models["amazon.nova-bad"].faults.push_back(Fault{always(), act(ActionKind::malformed, 1)});
  c.models["nodone"].faults.push_back(Fault{always(), act(ActionKind::omit_done)});
  start(c);
  {
    Client client(port());
    const auto res = client.call(Client::post("/model/throttle/converse-stream", kConverseBody));
    EXPECT_EQ(res.result_int(), 200);
    const auto msgs = frames(res.body());
    ASSERT_EQ(msgs.size(), 1u + 2 + 1);
    EXPECT_EQ(es::event_type(msgs[2]), "contentBlockDelta");
    EXPECT_EQ(es::message_type(msgs.back()), es::MessageType::exception);
    EXPECT_EQ(es::exception_type(msgs.back()), "throttlingException");
    EXPECT_EQ(es::content_type(msgs.back()), "application/json");
    EXPECT_FALSE(std::string_view(parse(msgs.back().payload)["message"]).empty());
    // The HTTP body ended properly: the connection is reusable.
    EXPECT_EQ(client.get("/healthz").result_int(), 200);

    const auto inv = client.call(Client::post("/model/anthropic.modelerr/invoke-with-response-stream",
                                              R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"messages":[{"role":"user","content":"x"}]})"));
    EXPECT_EQ(inv.result_int(), 200);
    const auto invm = frames(inv.body());
    ASSERT_EQ(invm.size(), 2u + 1 + 1);  // message_start, block start, 1 delta, exception
    EXPECT_EQ(es::exception_type(invm.back()), "modelStreamErrorException");
    EXPECT_EQ(std::uint64_t(parse(invm.back().payload)["originalStatusCode"]), 424u);

    // Non-streaming, a stream_error fault is an HTTP error.
    const auto plain = client.call(Client::post("/model/throttle/converse", kConverseBody));
    EXPECT_EQ(plain.result_int(), 429);
    EXPECT_EQ(plain["x-amzn-ErrorType"], "ThrottlingException");
  }
  {
    // A cut stream stops after whole frames and closes the connection.
    Client client(port());
    client.write(Client::post("/model/cut/converse-stream", kConverseBody));
    beast::error_code ec;
    const auto partial = client.read(ec);
    EXPECT_TRUE(ec);
    const auto msgs = frames(partial.body());
    ASSERT_EQ(msgs.size(), 1u + 2);
    EXPECT_EQ(es::event_type(msgs.back()), "contentBlockDelta");
  }
  {
    // Malformed: the frame is intact (CRCs right) but its JSON is cut off.
    Client client(port());
    const auto res = client.call(Client::post("/model/bad/converse-stream", kConverseBody));
    const auto msgs = frames(res.body());
    ASSERT_EQ(msgs.size(), 1u + 1 + 1);
    simdjson::dom::parser p;
    simdjson::dom::element ignored;
    EXPECT_NE(p.parse(msgs.back().payload).get(ignored), simdjson::SUCCESS);
    const auto inv = client.call(Client::post("/model/amazon.nova-bad/invoke-with-response-stream",
                                              R"({"messages":[{"role":"user","content":[{"text":"x"}]}]})"));
    const auto invm = frames(inv.body());
    ASSERT_EQ(invm.size(), 1u + 1 + 1);
    auto outer = parse(invm.back().payload);  // the {"bytes"} wrapper is valid JSON
    EXPECT_NE(p.parse(unbase64(std::string_view(outer["bytes"]))).get(ignored), simdjson::SUCCESS);

    // omit_done: ends after contentBlockStop, without messageStop and metadata.
    const auto nodone = client.call(Client::post("/model/nodone/converse-stream", kConverseBody));
    const auto nd = frames(nodone.body());
    ASSERT_EQ(nd.size(), 1u + 5 + 1);
    EXPECT_EQ(es::event_type(nd.back()), "contentBlockStop");
  }
}

// ---- SigV4 ----

const aws::Credentials kCreds{"AKIDMOCKEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

Request signed_post(const std::string& target, const std::string& body, const aws::Credentials& creds,
                    std::chrono::system_clock::time_point when, std::string_view region = "us-east-1",
                    std::string_view service = "bedrock") {
  Request req = Client::post(target, body, {{"accept", "application/json"}});
  const aws::HeaderField hs[] = {{"host", "127.0.0.1"}, {"content-type", "application/json"}};
  aws::SigningInput in;
  in.method = "POST";
  in.path = target;
  in.headers = hs;
  in.payload = body;
  const auto signed_headers = aws::sign(in, creds, region, service, when);
  for (const auto& [k, v] : signed_headers.fields()) req.set(k, v);
  return req;
}

ServerOptions aws_options() {
  ServerOptions o;
  o.aws_keys = ServerOptions::AwsKeys{kCreds.access_key_id, kCreds.secret_access_key, ""};
  o.aws_bearer_token = "ABSKbedrock-api-key";
  o.aws_region = "us-east-1";
  return o;
}

TEST_F(MockBedrockServer, VerifiesSigV4Signatures) {
  start(Config{}, aws_options());
  Client client(port());
  const auto now = std::chrono::system_clock::now();
  const std::string target = kHaikuPath + "/converse";

  auto good = client.call(signed_post(target, kConverseBody, kCreds, now));
  EXPECT_EQ(good.result_int(), 200) << good.body();
  // The percent-encoded path of a stream operation signs and verifies too.
  auto stream = client.call(signed_post(kLlamaPath + "/invoke-with-response-stream", R"({"prompt":"x"})", kCreds, now));
  EXPECT_EQ(stream.result_int(), 200) << stream.body();

  auto expect_rejected = [&](const Request& req, int status, std::string_view type, std::string_view message_part) {
    const auto res = client.call(req);
    EXPECT_EQ(res.result_int(), status) << res.body();
    EXPECT_EQ(res["x-amzn-ErrorType"], type) << res.body();
    auto j = parse(res.body());
    EXPECT_NE(std::string_view(j["message"]).find(message_part), std::string_view::npos) << res.body();
  };
  aws::Credentials wrong_secret = kCreds;
  wrong_secret.secret_access_key = "not-the-secret";
  expect_rejected(signed_post(target, kConverseBody, wrong_secret, now), 403, "InvalidSignatureException",
                  "The request signature we calculated does not match the signature you provided");
  // A body changed after signing.
  auto tampered = signed_post(target, kConverseBody, kCreds, now);
  tampered.body() = R"({"messages":[{"role":"user","content":[{"text":"other"}]}]})";
  tampered.prepare_payload();
  expect_rejected(tampered, 403, "InvalidSignatureException", "");
  aws::Credentials unknown = kCreds;
  unknown.access_key_id = "AKIDUNKNOWN";
  expect_rejected(signed_post(target, kConverseBody, unknown, now), 403, "UnrecognizedClientException",
                  "security token included in the request is invalid");
  expect_rejected(signed_post(target, kConverseBody, kCreds, now - std::chrono::minutes(10)), 403,
                  "InvalidSignatureException", "Signature expired");
  expect_rejected(signed_post(target, kConverseBody, kCreds, now + std::chrono::minutes(10)), 403,
                  "InvalidSignatureException", "Signature not yet current");
  expect_rejected(signed_post(target, kConverseBody, kCreds, now, "eu-west-1"), 403,
                  "InvalidSignatureException", "region");
  expect_rejected(signed_post(target, kConverseBody, kCreds, now, "us-east-1", "bedrock-runtime"), 403,
                  "InvalidSignatureException", "service");
  expect_rejected(Client::post(target, kConverseBody), 403, "MissingAuthenticationTokenException",
                  "Missing Authentication Token");
  // A stream request refused for its signature gets a JSON error, not an event stream.
  const auto refused = client.call(signed_post(kHaikuPath + "/converse-stream", kConverseBody, wrong_secret, now));
  EXPECT_EQ(refused.result_int(), 403);
  EXPECT_EQ(refused[http::field::content_type], "application/json");

  // Bedrock API keys.
  EXPECT_EQ(client.call(Client::post(target, kConverseBody, {{"authorization", "Bearer ABSKbedrock-api-key"}})).result_int(), 200);
  expect_rejected(Client::post(target, kConverseBody, {{"authorization", "Bearer ABSKwrong"}}), 403,
                  "AccessDeniedException", "API Key");

  // Every attempt is recorded; the bearer token never is.
  const auto stats_text = client.get("/_mock/stats").body();
  auto stats = parse(stats_text);
  EXPECT_EQ(std::uint64_t(stats["models"][kHaiku]["attempts"]), 12u);
  EXPECT_EQ(std::string_view(stats["models"][kHaiku]["requests"].at(1)["error"]), "auth");
  const auto last_text = client.get("/_mock/last-request").body();
  EXPECT_EQ(last_text.find("ABSKwrong"), std::string::npos) << last_text;
  auto last = parse(last_text);
  EXPECT_EQ(std::string_view(last["bedrock"]["headers"]["authorization"]), "Bearer <redacted>");
}

TEST_F(MockBedrockServer, BearerOnlyRejectsSignedRequests) {
  ServerOptions o;
  o.aws_bearer_token = "ABSKonly";
  start(Config{}, o);
  Client client(port());
  const auto res = client.call(signed_post(kHaikuPath + "/converse", kConverseBody, kCreds,
                                           std::chrono::system_clock::now()));
  EXPECT_EQ(res.result_int(), 403);
  EXPECT_EQ(res["x-amzn-ErrorType"], "UnrecognizedClientException");
  EXPECT_EQ(client.call(Client::post(kHaikuPath + "/converse", kConverseBody, {{"authorization", "Bearer ABSKonly"}})).result_int(), 200);
}

TEST_F(MockBedrockServer, UnknownOperationsAndMethods) {
  start(Config{});
  Client client(port());
  const auto unknown = client.call(Client::post("/model/m/generate", kConverseBody));
  EXPECT_EQ(unknown.result_int(), 404);
  Request get{http::verb::get, kHaikuPath + "/converse", 11};
  get.set(http::field::host, "127.0.0.1");
  const auto wrong_method = client.call(get);
  EXPECT_EQ(wrong_method.result_int(), 405);
  EXPECT_FALSE(wrong_method["x-amzn-ErrorType"].empty());
}

}  // namespace
}  // namespace bulwark::mock
