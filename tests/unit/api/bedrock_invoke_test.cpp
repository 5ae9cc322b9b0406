#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/bedrock/invoke.hpp"
#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
namespace iv = bulwark::api::bedrock::invoke;
using bulwark::ErrorKind;
using iv::Family;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }

cn::ChatRequest chat() {
  auto r = oa::decode_request(R"({"model":"m","max_tokens":64,"temperature":0.4,"top_p":0.9,"messages":[
    {"role":"system","content":"Be kind."},
    {"role":"user","content":"Hi"},
    {"role":"assistant","content":"Hello!"},
    {"role":"user","content":"Joke?"}]})");
  EXPECT_TRUE(r.has_value());
  return *r;
}

cn::ResponseBuilder fold(const std::vector<cn::StreamEvent>& ev) {
  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  return b;
}
}  // namespace

TEST(BedrockInvokeFamily, FromModelIdsAndInferenceProfiles) {
  EXPECT_EQ(iv::family_of("anthropic.claude-3-5-sonnet-20241022-v2:0"), Family::anthropic);
  EXPECT_EQ(iv::family_of("us.anthropic.claude-3-7-sonnet-20250219-v1:0"), Family::anthropic);
  EXPECT_EQ(iv::family_of("meta.llama3-1-70b-instruct-v1:0"), Family::llama3);
  EXPECT_EQ(iv::family_of("eu.meta.llama3-2-3b-instruct-v1:0"), Family::llama3);
  EXPECT_EQ(iv::family_of("amazon.titan-text-express-v1"), Family::titan_text);
  EXPECT_EQ(iv::family_of("apac.amazon.nova-pro-v1:0"), Family::nova);
  EXPECT_EQ(iv::family_of("arn:aws:bedrock:us-east-1:123:inference-profile/us.amazon.nova-lite-v1:0"), Family::nova);
  EXPECT_EQ(iv::family_of("cohere.command-r-v1:0"), std::nullopt);
  EXPECT_EQ(iv::family_of("meta.llama2-13b-chat-v1"), std::nullopt);
}

TEST(BedrockInvokeLlama, PromptFollowsTheLlama3Template) {
  auto body = iv::encode_request(chat(), Family::llama3, "meta.llama3-8b-instruct-v1:0");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("prompt"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nJoke?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(o.at("max_gen_len"), 64);
  EXPECT_EQ(o.at("temperature").as_double(), 0.4);
  EXPECT_EQ(o.at("top_p").as_double(), 0.9);

  // The prompt reads back into the same conversation.
  auto back = iv::decode_request(*body, Family::llama3);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->system, std::vector<std::string>{"Be kind."});
  ASSERT_EQ(back->messages.size(), 3u);
  EXPECT_EQ(back->messages[1].role, cn::Role::assistant);
  EXPECT_EQ(std::get<cn::TextPart>(back->messages[2].content[0]).text, "Joke?");
  EXPECT_EQ(back->max_tokens, 64);

  // A final assistant turn is continued, not closed.
  cn::ChatRequest prefill = chat();
  prefill.messages.push_back(cn::Message{cn::Role::assistant, {cn::TextPart{"Why"}}, {}});
  auto prompt = iv::llama3_prompt(prefill);
  ASSERT_TRUE(prompt.has_value());
  EXPECT_TRUE(prompt->ends_with("<|start_header_id|>assistant<|end_header_id|>\n\nWhy"));

  // A raw prompt is one user message.
  auto raw = iv::decode_request(R"({"prompt":"Tell me a joke","max_gen_len":10})", Family::llama3);
  ASSERT_TRUE(raw.has_value());
  ASSERT_EQ(raw->messages.size(), 1u);
  EXPECT_EQ(std::get<cn::TextPart>(raw->messages[0].content[0]).text, "Tell me a joke");
}

TEST(BedrockInvokeTextFamilies, RefuseImagesToolsAndOtherFeatures) {
  struct Case {
    std::string_view openai_body;
    std::string_view param;
  };
  for (Family f : {Family::llama3, Family::titan_text}) {
    for (const Case& c : {
             Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]})", "messages[0].content[0]"},
             Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]})", "tools"},
             Case{R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}]})", "messages[0].content[0]"},
             Case{R"({"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":"r"}]})", "messages[0].content[0]"},
             Case{R"({"model":"m","n":2,"messages":[{"role":"user","content":"x"}]})", "n"},
             Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]})", "messages[0].content[0]"},
         }) {
      auto req = oa::decode_request(c.openai_body);
      ASSERT_TRUE(req.has_value()) << c.openai_body;
      auto body = iv::encode_request(*req, f, "x");
      ASSERT_FALSE(body.has_value()) << iv::to_string(f) << " " << c.openai_body;
      EXPECT_EQ(body.error().kind, ErrorKind::bad_request);
      EXPECT_EQ(body.error().param, c.param) << iv::to_string(f) << " " << c.openai_body << " -> " << body.error().message;
    }
  }
  cn::ChatRequest stop = chat();
  stop.stop = {"\n\n"};
  auto llama = iv::encode_request(stop, Family::llama3, "x");
  ASSERT_FALSE(llama.has_value());
  EXPECT_EQ(llama.error().param, "stop");
  EXPECT_TRUE(iv::encode_request(stop, Family::titan_text, "x").has_value());  // Titan has stopSequences
}

TEST(BedrockInvokeLlama, ResponseAndStreamChunks) {
  auto r = iv::decode_response(R"({"generation":"Why did...","prompt_token_count":20,"generation_token_count":5,"stop_reason":"length"})", Family::llama3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(cn::text_of(*r), "Why did...");
  EXPECT_EQ(r->stop_reason, cn::StopReason::max_tokens);
  EXPECT_EQ(r->usage, (cn::Usage{20, 5, 0, 0}));
  const auto o = json(iv::encode_response(*r, Family::llama3));
  EXPECT_EQ(o.at("stop_reason"), "length");
  EXPECT_EQ(o.at("prompt_token_count"), 20);

  iv::StreamDecoder d(Family::llama3);
  std::vector<cn::StreamEvent> ev;
  for (std::string_view c : {
           R"({"generation":"Hel","prompt_token_count":8,"generation_token_count":1,"stop_reason":null})",
           R"({"generation":"lo","prompt_token_count":null,"generation_token_count":2,"stop_reason":null})",
           R"({"generation":"","prompt_token_count":null,"generation_token_count":3,"stop_reason":"stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":8,"outputTokenCount":3,"invocationLatency":100,"firstByteLatency":20}})",
       })
    ASSERT_TRUE(d.feed(c, ev).has_value());
  EXPECT_TRUE(d.done());
  auto b = fold(ev);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(cn::text_of(b.response()), "Hello");
  EXPECT_EQ(b.response().stop_reason, cn::StopReason::end_turn);
  EXPECT_EQ(b.response().usage, (cn::Usage{8, 3, 0, 0}));

  iv::StreamEncoder enc(Family::llama3);
  std::vector<std::string> chunks;
  for (const auto& e : ev) enc.encode(e, chunks);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(json(chunks[0]).at("generation"), "Hel");
  EXPECT_EQ(json(chunks[0]).at("prompt_token_count"), 8);
  EXPECT_TRUE(json(chunks[1]).at("prompt_token_count").is_null());
  EXPECT_TRUE(json(chunks[1]).at("stop_reason").is_null());
  EXPECT_EQ(json(chunks[2]).at("stop_reason"), "stop");
  EXPECT_EQ(json(chunks[2]).at("amazon-bedrock-invocationMetrics").at("outputTokenCount"), 3);
}

TEST(BedrockInvokeTitan, RequestResponseAndStream) {
  auto body = iv::encode_request(chat(), Family::titan_text, "amazon.titan-text-express-v1");
  ASSERT_TRUE(body.has_value());
  const auto o = json(*body);
  EXPECT_EQ(o.at("inputText"), "Be kind.\n\nUser: Hi\nBot: Hello!\nUser: Joke?\nBot:");
  EXPECT_EQ(o.at("textGenerationConfig").at("maxTokenCount"), 64);
  EXPECT_EQ(o.at("textGenerationConfig").at("topP").as_double(), 0.9);

  cn::ChatRequest single;
  single.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"Just this"}}, {}});
  single.stop = {"User:"};
  const auto s = json(*iv::encode_request(single, Family::titan_text, "t"));
  EXPECT_EQ(s.at("inputText"), "Just this");
  EXPECT_EQ(s.at("textGenerationConfig").at("stopSequences").at(0), "User:");
  auto back = iv::decode_request(boost::json::serialize(s), Family::titan_text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->stop, std::vector<std::string>{"User:"});

  auto r = iv::decode_response(R"({"inputTextTokenCount":6,"results":[{"tokenCount":3,"outputText":" A pun.","completionReason":"CONTENT_FILTERED"}]})", Family::titan_text);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->stop_reason, cn::StopReason::content_filter);
  EXPECT_EQ(r->usage, (cn::Usage{6, 3, 0, 0}));
  EXPECT_EQ(json(iv::encode_response(*r, Family::titan_text)).at("results").at(0).at("completionReason"), "CONTENT_FILTERED");
  EXPECT_EQ(json(oa::encode_response(*r)).at("choices").at(0).at("finish_reason"), "content_filter");

  iv::StreamDecoder d(Family::titan_text);
  std::vector<cn::StreamEvent> ev;
  ASSERT_TRUE(d.feed(R"({"outputText":"Once","index":0,"totalOutputTextTokenCount":1,"completionReason":null,"inputTextTokenCount":4})", ev));
  ASSERT_TRUE(d.feed(R"({"outputText":" upon","index":0,"totalOutputTextTokenCount":2,"completionReason":"LENGTH"})", ev));
  auto b = fold(ev);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(cn::text_of(b.response()), "Once upon");
  EXPECT_EQ(b.response().stop_reason, cn::StopReason::max_tokens);
  EXPECT_EQ(b.response().usage, (cn::Usage{4, 2, 0, 0}));

  iv::StreamEncoder enc(Family::titan_text);
  std::vector<std::string> chunks;
  for (const auto& e : ev) enc.encode(e, chunks);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(json(chunks[0]).at("inputTextTokenCount"), 4);
  EXPECT_EQ(json(chunks[2]).at("completionReason"), "LENGTH");
  EXPECT_EQ(json(chunks[2]).at("totalOutputTextTokenCount"), 2);
}

TEST(BedrockInvokeClaude, BodyResponseAndStreamChunks) {
  cn::ChatRequest req = chat();
  req.stream = true;
  req.top_k = 3;
  auto body = iv::encode_request(req, Family::anthropic, "anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body).as_object();
  EXPECT_EQ(o.at("anthropic_version"), "bedrock-2023-05-31");
  EXPECT_FALSE(o.contains("model"));
  EXPECT_FALSE(o.contains("stream"));
  EXPECT_EQ(o.at("top_k"), 3);
  EXPECT_EQ(o.at("system"), "Be kind.");
  auto back = iv::decode_request(*body, Family::anthropic);  // no model: fine for InvokeModel
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->messages.size(), 3u);

  // Stream chunks are Anthropic events; the last one carries Bedrock's invocation metrics.
  iv::StreamDecoder d(Family::anthropic);
  std::vector<cn::StreamEvent> ev;
  for (std::string_view c : {
           R"({"type":"message_start","message":{"id":"msg_bdrk_1","model":"claude","usage":{"input_tokens":9,"output_tokens":1}}})",
           R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
           R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Yo"}})",
           R"({"type":"content_block_stop","index":0})",
           R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}})",
           R"({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":2,"invocationLatency":5,"firstByteLatency":1}})",
       })
    ASSERT_TRUE(d.feed(c, ev).has_value());
  auto b = fold(ev);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(cn::text_of(b.response()), "Yo");
  EXPECT_EQ(b.response().usage, (cn::Usage{9, 2, 0, 0}));

  iv::StreamEncoder enc(Family::anthropic, {.id = "msg_bdrk_1", .model = "claude", .id_seed = 0});
  std::vector<std::string> chunks;
  for (const auto& e : ev) enc.encode(e, chunks);
  ASSERT_EQ(chunks.size(), 6u);
  EXPECT_EQ(json(chunks[0]).at("type"), "message_start");
  EXPECT_EQ(json(chunks[5]).at("type"), "message_stop");
  EXPECT_EQ(json(chunks[5]).at("amazon-bedrock-invocationMetrics").at("inputTokenCount"), 9);
}

TEST(BedrockInvokeNova, BodyUsesTheConverseSchemaWithNovaSpellings) {
  cn::ChatRequest req = chat();
  req.top_k = 50;
  req.tools.push_back(cn::Tool{"f", "", ""});
  req.tool_choice.mode = cn::ToolChoice::Mode::required;
  auto body = iv::encode_request(req, Family::nova, "amazon.nova-pro-v1:0");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("schemaVersion"), "messages-v1");
  EXPECT_EQ(o.at("inferenceConfig").at("topK"), 50);
  EXPECT_EQ(o.at("inferenceConfig").at("maxTokens"), 64);
  EXPECT_EQ(o.at("system").at(0).at("text"), "Be kind.");
  EXPECT_TRUE(o.at("toolConfig").at("toolChoice").as_object().contains("any"));
  EXPECT_EQ(o.at("toolConfig").at("tools").at(0).at("toolSpec").at("inputSchema").at("json").at("type"), "object");
  auto back = iv::decode_request(*body, Family::nova);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->top_k, 50);

  auto r = iv::decode_response(R"({"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn",
    "usage":{"inputTokens":3,"outputTokens":1,"totalTokens":14,"cacheReadInputTokenCount":10,"cacheWriteInputTokenCount":0}})", Family::nova);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->usage, (cn::Usage{3, 1, 10, 0}));
  const auto e = json(iv::encode_response(*r, Family::nova));
  EXPECT_EQ(e.at("usage").at("cacheReadInputTokenCount"), 10);
  EXPECT_FALSE(e.as_object().contains("metrics"));
}

TEST(BedrockInvokeNova, StreamChunksWrapConverseEvents) {
  iv::StreamDecoder d(Family::nova);
  std::vector<cn::StreamEvent> ev;
  for (std::string_view c : {
           R"({"messageStart":{"role":"assistant"}})",
           R"({"contentBlockDelta":{"delta":{"text":"Hi"},"contentBlockIndex":0}})",
           R"({"contentBlockStop":{"contentBlockIndex":0}})",
           R"({"contentBlockStart":{"start":{"toolUse":{"toolUseId":"tooluse_n","name":"f"}},"contentBlockIndex":1}})",
           R"({"contentBlockDelta":{"delta":{"toolUse":{"input":"{\"x\""}},"contentBlockIndex":1}})",
           R"({"contentBlockDelta":{"delta":{"toolUse":{"input":":1}"}},"contentBlockIndex":1}})",
           R"({"contentBlockStop":{"contentBlockIndex":1}})",
           R"({"messageStop":{"stopReason":"tool_use"}})",
           R"({"metadata":{"usage":{"inputTokens":7,"outputTokens":2},"metrics":{},"trace":{}},"amazon-bedrock-invocationMetrics":{"inputTokenCount":7,"outputTokenCount":2,"invocationLatency":9,"firstByteLatency":3}})",
       })
    ASSERT_TRUE(d.feed(c, ev).has_value()) << c;
  EXPECT_TRUE(d.done());
  auto b = fold(ev);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(std::get<cn::ToolCallPart>(b.response().content.at(1)).arguments, "{\"x\":1}");
  EXPECT_EQ(b.response().stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(b.response().usage, (cn::Usage{7, 2, 0, 0}));

  // Without a metadata event, the invocation metrics complete the answer.
  iv::StreamDecoder m(Family::nova);
  ev.clear();
  ASSERT_TRUE(m.feed(R"({"contentBlockDelta":{"delta":{"text":"x"},"contentBlockIndex":0}})", ev));
  ASSERT_TRUE(m.feed(R"({"messageStop":{"stopReason":"end_turn"},"amazon-bedrock-invocationMetrics":{"inputTokenCount":2,"outputTokenCount":1}})", ev));
  EXPECT_TRUE(m.done());
  EXPECT_EQ(fold(ev).response().usage, (cn::Usage{2, 1, 0, 0}));

  iv::StreamEncoder enc(Family::nova);
  std::vector<std::string> chunks;
  enc.encode(cn::MessageStart{}, chunks);
  enc.encode(cn::TextDelta{0, "Hey"}, chunks);
  enc.encode(cn::MessageDelta{cn::StopReason::end_turn, {}, cn::Usage{1, 1, 0, 0}, std::nullopt}, chunks);
  enc.encode(cn::MessageStop{}, chunks);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_EQ(json(chunks[0]).at("messageStart").at("role"), "assistant");
  EXPECT_EQ(json(chunks[1]).at("contentBlockDelta").at("delta").at("text"), "Hey");
  EXPECT_EQ(json(chunks[3]).at("messageStop").at("stopReason"), "end_turn");
  EXPECT_EQ(json(chunks[4]).at("metadata").at("usage").at("inputTokens"), 1);
}

TEST(BedrockInvokeChunks, BytesPayloadRoundTrip) {
  const std::string chunk = R"({"generation":"é\u0000 ok"})";
  for (std::string_view s : {std::string_view(chunk), std::string_view("a"), std::string_view("ab"), std::string_view("abc"), std::string_view("")}) {
    const std::string payload = iv::chunk_payload(s);
    auto back = iv::chunk_json(payload);
    ASSERT_TRUE(back.has_value()) << payload;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(iv::chunk_payload("abc"), R"({"bytes":"YWJj"})");
  EXPECT_EQ(iv::chunk_json(R"({"bytes":"not base64!"})").error().kind, ErrorKind::upstream_protocol);
  EXPECT_FALSE(iv::chunk_json(R"({"nope":1})").has_value());
}
