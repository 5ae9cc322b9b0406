#pragma once
// Shared by anthropic_upstream_test.cpp and bedrock_upstream_test.cpp: reading what the
// upstream edge produced (OpenAI SSE) back into canonical form, and a blocking client
// for the in-process bulwark-mock.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/canonical/stream.hpp"
#include "api/openai/translate.hpp"
#include "config/config.hpp"
#include "providers/openai/openai.hpp"
#include "providers/upstream.hpp"

namespace bulwark::providers::testing {

struct OpenAIStreamResult {
  api::canonical::ResponseBuilder built;
  std::vector<openai::StreamEvent> inspected;  // what the pipeline's inspect_event sees
  std::vector<std::string> events;
  bool done = false;
  std::optional<std::string> error_message;
};

// Splits OpenAI SSE text into events and reads each as the pipeline and a client would.
inline OpenAIStreamResult read_openai_sse(std::string_view sse) {
  OpenAIStreamResult r;
  openai::SseSplitter splitter;
  api::openai::StreamDecoder decoder;
  splitter.feed(sse, [&](std::string_view event) {
    r.events.emplace_back(event);
    const auto ev = openai::inspect_event(event);
    r.inspected.push_back(ev);
    if (ev.kind == openai::StreamEvent::Kind::done) r.done = true;
    if (ev.kind == openai::StreamEvent::Kind::error) r.error_message = ev.error_message;
    std::vector<api::canonical::StreamEvent> out;
    EXPECT_TRUE(decoder.feed_sse(event, out)) << event;
    for (const auto& e : out) r.built.add(e);
  });
  EXPECT_FALSE(splitter.has_partial()) << "OpenAI SSE must end on an event boundary";
  return r;
}

// Feeds `bytes` one byte at a time (the worst split), then finish().
inline std::string convert_bytewise(OpenAIStream& s, std::string_view bytes, Status* failure = nullptr) {
  std::string out;
  for (char c : bytes) {
    auto ok = s.feed(std::string_view(&c, 1), out);
    if (!ok) {
      if (failure) *failure = ok;
      return out;
    }
  }
  auto ok = s.finish(out);
  if (failure) *failure = ok;
  return out;
}

inline resilience::HeaderLookup headers_of(std::vector<std::pair<std::string, std::string>> h) {
  return [h = std::move(h)](std::string_view name) -> std::optional<std::string_view> {
    for (const auto& [k, v] : h)
      if (k == name) return std::string_view(v);
    return std::nullopt;
  };
}

// Sends a built request to 127.0.0.1:port and reads the whole answer.
inline boost::beast::http::response<boost::beast::http::string_body> roundtrip(std::uint16_t port,
                                                                                const UpstreamRequest& req) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  sock.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::write(sock, req);
  boost::beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  boost::beast::error_code ec;
  http::read(sock, buf, parser, ec);
  EXPECT_FALSE(ec) << ec.message();
  return parser.release();
}

inline config::Endpoint loopback(std::uint16_t port) {
  config::Endpoint e;
  e.tls = false;
  e.host = "127.0.0.1";
  e.port = port;
  return e;
}

constexpr std::string_view kOpenAIRequest =
    R"({"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"say four words please"}],"max_tokens":50,"temperature":0.5})";

}  // namespace bulwark::providers::testing
