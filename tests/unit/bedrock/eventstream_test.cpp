#include "providers/bedrock/eventstream.hpp"

#include <gtest/gtest.h>

#include <boost/crc.hpp>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace es = bulwark::bedrock::eventstream;

namespace {

const std::filesystem::path kVectors = std::filesystem::path(BULWARK_FIXTURES_DIR) / "eventstream";
const std::vector<std::string> kPositive{"all_headers", "empty_message", "int32_header",
                                         "payload_no_headers", "payload_one_str_header"};
const std::vector<std::string> kNegative{"corrupted_header_len", "corrupted_headers",
                                         "corrupted_length", "corrupted_payload"};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  unsigned acc = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::uint32_t be32(std::string_view s, std::size_t at) {
  auto b = reinterpret_cast<const unsigned char*>(s.data() + at);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

void put32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::uint32_t crc(std::string_view s) {
  boost::crc_32_type c;
  c.process_bytes(s.data(), s.size());
  return c.checksum();
}

// A message with correct CRCs around arbitrary (possibly malformed) headers bytes, and
// optionally lying lengths.
std::string frame(std::string_view headers, std::string_view payload,
                  std::optional<std::uint32_t> total_override = std::nullopt,
                  std::optional<std::uint32_t> headers_override = std::nullopt) {
  std::string out;
  put32(out, total_override.value_or(static_cast<std::uint32_t>(16 + headers.size() + payload.size())));
  put32(out, headers_override.value_or(static_cast<std::uint32_t>(headers.size())));
  put32(out, crc(out));
  out.append(headers).append(payload);
  put32(out, crc(out));
  return out;
}

// Feeds `bytes` in slices of `step` and collects every message until an error.
struct Drained {
  std::vector<es::Message> messages;
  std::optional<es::Error> error;
};
Drained drain(std::string_view bytes, std::size_t step, es::Decoder d = es::Decoder{}) {
  Drained out;
  for (std::size_t i = 0; i < bytes.size() && !out.error; i += step) {
    d.feed(bytes.substr(i, step));
    while (true) {
      auto r = d.next();
      if (!r) {
        out.error = r.error();
        break;
      }
      if (!*r) break;
      out.messages.push_back(std::move(**r));
    }
  }
  if (!out.error) {
    if (auto f = d.finish(); !f) out.error = f.error();
  }
  return out;
}

void expect_matches_decoded_json(const es::Message& m, const boost::json::object& doc) {
  const auto& headers = doc.at("headers").as_array();
  ASSERT_EQ(m.headers.size(), headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto& h = headers[i].as_object();
    const es::Header& got = m.headers[i];
    SCOPED_TRACE(got.name);
    EXPECT_EQ(got.name, h.at("name").as_string());
    auto type = static_cast<es::HeaderType>(h.at("type").to_number<int>());
    EXPECT_EQ(es::type_of(got.value), type);
    const auto& v = h.at("value");
    switch (type) {
      case es::HeaderType::bool_true:
      case es::HeaderType::bool_false: EXPECT_EQ(std::get<bool>(got.value), v.as_bool()); break;
      case es::HeaderType::byte: EXPECT_EQ(std::get<std::int8_t>(got.value), v.to_number<int>()); break;
      case es::HeaderType::int16: EXPECT_EQ(std::get<std::int16_t>(got.value), v.to_number<int>()); break;
      case es::HeaderType::int32: EXPECT_EQ(std::get<std::int32_t>(got.value), v.to_number<std::int32_t>()); break;
      case es::HeaderType::int64: EXPECT_EQ(std::get<std::int64_t>(got.value), v.to_number<std::int64_t>()); break;
      case es::HeaderType::timestamp:
        EXPECT_EQ(std::get<es::Timestamp>(got.value).time_since_epoch().count(), v.to_number<std::int64_t>());
        break;
      case es::HeaderType::bytes:
        EXPECT_EQ(std::get<es::Bytes>(got.value).data, base64_decode(v.as_string()));
        break;
      case es::HeaderType::string:
        EXPECT_EQ(std::get<std::string>(got.value), base64_decode(v.as_string()));
        break;
      case es::HeaderType::uuid: {
        const auto& u = std::get<es::Uuid>(got.value);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(u.data()), u.size()), base64_decode(v.as_string()));
        break;
      }
    }
  }
  EXPECT_EQ(m.payload, base64_decode(doc.at("payload").as_string()));
}

class PositiveVector : public ::testing::TestWithParam<std::string> {};

TEST_P(PositiveVector, DecodesToItsDecodedFormAndReencodesByteIdentically) {
  std::string encoded = slurp(kVectors / "encoded" / "positive" / GetParam());
  auto doc = boost::json::parse(slurp(kVectors / "decoded" / "positive" / GetParam())).as_object();
  auto m = es::decode(encoded);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  expect_matches_decoded_json(*m, doc);

  auto again = es::encode(*m);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, encoded);
  EXPECT_EQ(again->size(), doc.at("total_length").to_number<std::size_t>());
  EXPECT_EQ(be32(*again, 4), doc.at("headers_length").to_number<std::uint32_t>());
  EXPECT_EQ(be32(*again, 8), doc.at("prelude_crc").to_number<std::uint32_t>());
  EXPECT_EQ(be32(*again, again->size() - 4), doc.at("message_crc").to_number<std::uint32_t>());
}

TEST_P(PositiveVector, DecodesWhenFedOneByteAtATime) {
  std::string encoded = slurp(kVectors / "encoded" / "positive" / GetParam());
  Drained d = drain(encoded, 1);
  ASSERT_FALSE(d.error) << d.error->message;
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0], *es::decode(encoded));
}

INSTANTIATE_TEST_SUITE_P(AwsVectors, PositiveVector, ::testing::ValuesIn(kPositive));

class NegativeVector : public ::testing::TestWithParam<std::string> {};

TEST_P(NegativeVector, IsRejectedWholeAndOneByteAtATime) {
  std::string encoded = slurp(kVectors / "encoded" / "negative" / GetParam());
  ASSERT_FALSE(encoded.empty());
  auto whole = es::decode(encoded);
  ASSERT_FALSE(whole.has_value());
  // A lying length corrupts the CRC-protected prelude; a changed byte after it, the message.
  bool prelude = GetParam() == "corrupted_header_len" || GetParam() == "corrupted_length";
  EXPECT_EQ(whole.error().kind,
            prelude ? es::ErrorKind::prelude_crc_mismatch : es::ErrorKind::message_crc_mismatch);

  for (std::size_t step : {std::size_t{1}, std::size_t{5}, encoded.size()}) {
    Drained d = drain(encoded, step);
    EXPECT_TRUE(d.messages.empty()) << "step " << step;
    ASSERT_TRUE(d.error.has_value()) << "step " << step;
    EXPECT_EQ(d.error->kind, whole.error().kind) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(AwsVectors, NegativeVector, ::testing::ValuesIn(kNegative));

TEST(EventStreamDecoder, SeveralMessagesSplitAnywhere) {
  std::string stream;
  std::vector<es::Message> expected;
  for (const auto& name : kPositive) {
    std::string bytes = slurp(kVectors / "encoded" / "positive" / name);
    expected.push_back(*es::decode(bytes));
    stream += bytes;
  }
  for (std::size_t step : {1, 2, 3, 7, 13, 16, 64, 1000}) {
    Drained d = drain(stream, step);
    ASSERT_FALSE(d.error) << "step " << step << ": " << d.error->message;
    EXPECT_EQ(d.messages, expected) << "step " << step;
  }
}

TEST(EventStreamDecoder, AStreamEndingInsideAMessageIsTruncated) {
  std::string bytes = slurp(kVectors / "encoded" / "positive" / "all_headers");
  for (std::size_t cut : {std::size_t{5}, std::size_t{12}, bytes.size() - 1}) {
    es::Decoder d;
    d.feed(std::string_view(bytes).substr(0, cut));
    auto r = d.next();
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(d.buffered(), cut);
    auto f = d.finish();
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().kind, es::ErrorKind::truncated);
  }
  EXPECT_EQ(es::decode(std::string_view(bytes).substr(0, 40)).error().kind, es::ErrorKind::truncated);
}

TEST(EventStreamDecoder, OversizedLengthFailsAtThePreludeWithoutWaitingForTheBody) {
  std::string prelude;
  put32(prelude, 16 * 1024 * 1024 + 1);
  put32(prelude, 0);
  put32(prelude, crc(prelude));
  es::Decoder d;
  d.feed(prelude);
  auto r = d.next();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, es::ErrorKind::message_too_large);
  EXPECT_TRUE(d.failed());

  // A decoder with a lower cap refuses a message the protocol would allow.
  std::string msg = frame("", std::string(100, 'x'));
  Drained capped = drain(msg, msg.size(), es::Decoder{64});
  ASSERT_TRUE(capped.error);
  EXPECT_EQ(capped.error->kind, es::ErrorKind::message_too_large);
}

TEST(EventStreamDecoder, InconsistentLengthsAreRejected) {
  EXPECT_EQ(es::decode(frame("", "", 15)).error().kind, es::ErrorKind::invalid_length);
  EXPECT_EQ(es::decode(frame("", "abc", std::nullopt, 4)).error().kind, es::ErrorKind::invalid_length);
  EXPECT_EQ(es::decode(frame("", "", std::nullopt, 128 * 1024 + 1)).error().kind,
            es::ErrorKind::headers_too_large);
  std::string two = frame("", "a") + "x";
  EXPECT_EQ(es::decode(two).error().kind, es::ErrorKind::invalid_length);
}

TEST(EventStreamDecoder, MalformedHeadersBehindValidCrcsAreInvalidHeaders) {
  const std::vector<std::string> bad{
      std::string("\x01" "a" "\x0a", 3),                 // unknown type 10
      std::string("\x05" "ab", 3),                       // name overruns the block
      std::string("\x01" "a" "\x07" "\x00\x05" "ab", 7),  // string overruns the block
      std::string("\x01" "a" "\x04" "\x00\x00", 5),       // int truncated
      std::string("\x01" "a" "\x09" "0123", 7),           // uuid truncated
      std::string("\x00" "\x00", 2),                      // empty name
  };
  for (const auto& headers : bad) {
    std::string msg = frame(headers, "payload");
    auto r = es::decode(msg);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, es::ErrorKind::invalid_header) << r.error().message;
    Drained d = drain(msg, 1);
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, es::ErrorKind::invalid_header);
  }
}

TEST(EventStreamDecoder, AnErrorIsFinal) {
  std::string bad = slurp(kVectors / "encoded" / "negative" / "corrupted_payload");
  std::string good = slurp(kVectors / "encoded" / "positive" / "empty_message");
  es::Decoder d;
  d.feed(bad);
  ASSERT_FALSE(d.next().has_value());
  d.feed(good);
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.finish().has_value());
}

TEST(EventStreamEncoder, RoundTripsEveryHeaderType) {
  es::Message m;
  m.headers = {
      {"t", true},
      {"f", false},
      {"b", std::int8_t{-128}},
      {"s", std::int16_t{-2}},
      {"i", std::int32_t{-40972}},
      {"l", std::int64_t{-42424242424242}},
      {"bytes", es::Bytes{std::string("\x00\xff\x10", 3)}},
      {"str", std::string("h\xc3\xa9llo")},
      {"ts", es::Timestamp{std::chrono::milliseconds{1700000000123}}},
      {"uuid", es::Uuid{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
  };
  m.payload = std::string("\x00payload\xff", 9);
  auto bytes = es::encode(m);
  ASSERT_TRUE(bytes.has_value());
  auto back = es::decode(*bytes);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, m);
}

TEST(EventStreamEncoder, RefusesValuesOverTheWireLimits) {
  es::Message long_name;
  long_name.headers.push_back({std::string(128, 'n'), true});
  EXPECT_EQ(es::encode(long_name).error().kind, es::ErrorKind::value_too_large);
  es::Message long_value;
  long_value.headers.push_back({"v", std::string(32768, 'v')});
  EXPECT_EQ(es::encode(long_value).error().kind, es::ErrorKind::value_too_large);
  es::Message at_limit;
  at_limit.headers.push_back({std::string(127, 'n'), std::string(32767, 'v')});
  EXPECT_TRUE(es::encode(at_limit).has_value());
  // Decoding accepts the longest name the length byte can state.
  std::string name255 = std::string(1, '\xff') + std::string(255, 'n') + '\x00';
  auto long_decoded = es::decode(frame(name255, ""));
  ASSERT_TRUE(long_decoded.has_value()) << long_decoded.error().message;
  EXPECT_EQ(long_decoded->headers.at(0).name.size(), 255u);
  es::Message huge;
  huge.payload.assign(16 * 1024 * 1024, 'p');
  EXPECT_EQ(es::encode(huge).error().kind, es::ErrorKind::message_too_large);
}

TEST(EventStreamMessage, BedrockEventAndExceptionHelpers) {
  auto ev = es::make_event("contentBlockDelta", R"({"delta":{"text":"hi"},"contentBlockIndex":0})");
  auto decoded = es::decode(*es::encode(ev));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(es::message_type(*decoded), es::MessageType::event);
  EXPECT_EQ(es::event_type(*decoded), "contentBlockDelta");
  EXPECT_EQ(es::content_type(*decoded), "application/json");
  EXPECT_FALSE(es::exception_type(*decoded).has_value());

  auto ex = es::make_exception("throttlingException", R"({"message":"Too many requests"})");
  EXPECT_EQ(es::message_type(ex), es::MessageType::exception);
  EXPECT_EQ(es::exception_type(ex), "throttlingException");

  es::Message err;
  err.headers = {{":message-type", std::string("error")},
                 {":error-code", std::string("InternalFailure")},
                 {":error-message", std::string("boom")}};
  EXPECT_EQ(es::message_type(err), es::MessageType::error);
  EXPECT_EQ(es::error_code(err), "InternalFailure");
  EXPECT_EQ(es::error_message(err), "boom");

  es::Message odd;
  odd.headers = {{":message-type", std::int32_t{1}}};
  EXPECT_EQ(es::message_type(odd), es::MessageType::unknown);
  EXPECT_FALSE(odd.string_header(":message-type").has_value());
}

}  // namespace
