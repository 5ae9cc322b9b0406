#pragma once
// application/vnd.amazon.eventstream: the binary framing of Bedrock's streaming responses
// (InvokeModelWithResponseStream, ConverseStream).
//
//   [total length u32][headers length u32][prelude CRC32 u32]
//   [headers: name_len u8, name, type u8, value]...[payload][message CRC32 u32]
//
// Big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything before it.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bulwark::bedrock::eventstream {

// Limits of AWS's own codec (aws-c-event-stream): 16 MiB per message, 128 KiB of headers,
// header names up to 127 bytes (the encoder keeps to it so every SDK can read what it
// writes; the decoder takes any name the length byte allows).
inline constexpr std::size_t kPreludeSize = 12;
inline constexpr std::size_t kMinMessageSize = 16;  // prelude + message CRC
inline constexpr std::size_t kMaxMessageSize = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxHeadersSize = 128 * 1024;
inline constexpr std::size_t kMaxHeaderNameSize = 127;
inline constexpr std::size_t kMaxHeaderValueSize = 32767;

enum class HeaderType : std::uint8_t {
  bool_true = 0,
  bool_false = 1,
  byte = 2,
  int16 = 3,
  int32 = 4,
  int64 = 5,
  bytes = 6,
  string = 7,
  timestamp = 8,
  uuid = 9,
};

// Distinct from string so a byte-array header re-encodes as type 6.
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};
using Timestamp = std::chrono::sys_time<std::chrono::milliseconds>;
using Uuid = std::array<std::uint8_t, 16>;

using HeaderValue = std::variant<bool, std::int8_t, std::int16_t, std::int32_t, std::int64_t,
                                 Bytes, std::string, Timestamp, Uuid>;
HeaderType type_of(const HeaderValue& v) noexcept;

struct Header {
  std::string name;
  HeaderValue value;
  bool operator==(const Header&) const = default;
};

struct Message {
  std::vector<Header> headers;  // wire order
  std::string payload;

  const HeaderValue* find(std::string_view name) const noexcept;
  // The value of a string header; nullopt when absent or of another type.
  std::optional<std::string_view> string_header(std::string_view name) const noexcept;
  bool operator==(const Message&) const = default;
};

enum class MessageType : std::uint8_t { event, exception, error, unknown };
MessageType message_type(const Message& m) noexcept;  // from :message-type
std::optional<std::string_view> event_type(const Message& m) noexcept;      // :event-type
std::optional<std::string_view> exception_type(const Message& m) noexcept;  // :exception-type
std::optional<std::string_view> content_type(const Message& m) noexcept;    // :content-type
std::optional<std::string_view> error_code(const Message& m) noexcept;      // :error-code
std::optional<std::string_view> error_message(const Message& m) noexcept;   // :error-message

enum class ErrorKind : std::uint8_t {
  prelude_crc_mismatch,
  message_crc_mismatch,
  message_too_large,   // total length above kMaxMessageSize (or the decoder's cap)
  headers_too_large,   // headers length above kMaxHeadersSize
  invalid_length,      // total below 16, or headers not fitting in the message
  invalid_header,      // truncated header, unknown type, value overrunning the headers
  truncated,           // the stream ended inside a message
  value_too_large,     // encoding: a header name or value over its wire limit
};

struct Error {
  ErrorKind kind = ErrorKind::invalid_header;
  std::string message;
};

// ---- Encoding ----

std::expected<void, Error> encode_to(const Message& m, std::string& out);  // appends
std::expected<std::string, Error> encode(const Message& m);

// A Bedrock event: :message-type event, :event-type, :content-type.
Message make_event(std::string_view event_type, std::string payload,
                   std::string_view content_type = "application/json");
// A modeled exception, as Bedrock streams ThrottlingException and friends mid-stream.
Message make_exception(std::string_view exception_type, std::string payload,
                       std::string_view content_type = "application/json");

// ---- Decoding ----

// Decodes one complete message (the whole buffer, nothing more).
std::expected<Message, Error> decode(std::span<const std::uint8_t> bytes);
std::expected<Message, Error> decode(std::string_view bytes);

// Incremental decoder: feed() byte slices as they arrive, split anywhere; next() yields
// each complete message. The first error is final: the stream cannot be resynchronized.
class Decoder {
 public:
  explicit Decoder(std::size_t max_message_size = kMaxMessageSize) noexcept
      : max_message_size_(max_message_size) {}

  void feed(std::span<const std::uint8_t> bytes);
  void feed(std::string_view bytes);

  // A message, nullopt when more bytes are needed, or the error.
  std::expected<std::optional<Message>, Error> next();

  // At end of stream: an error when a partial message is buffered.
  std::expected<void, Error> finish() const;

  std::size_t buffered() const noexcept { return buffer_.size() - offset_; }
  bool failed() const noexcept { return error_.has_value(); }

 private:
  std::size_t max_message_size_;
  std::string buffer_;
  std::size_t offset_ = 0;
  std::optional<Error> error_;
};

}  // namespace bulwark::bedrock::eventstream
