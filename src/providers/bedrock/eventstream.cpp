#include "providers/bedrock/eventstream.hpp"

#include <boost/crc.hpp>

#include <cstring>

namespace bulwark::bedrock::eventstream {
namespace {

std::uint32_t crc32(const void* data, std::size_t n) {
  boost::crc_32_type crc;
  crc.process_bytes(data, n);
  return crc.checksum();
}

std::uint32_t read_u32(const char* p) noexcept {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         std::uint32_t{b[3]};
}

std::uint64_t read_be(const char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void put_be(std::string& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::unexpected<Error> fail(ErrorKind k, std::string msg) {
  return std::unexpected(Error{k, std::move(msg)});
}

std::size_t value_size(const HeaderValue& v) {
  switch (type_of(v)) {
    case HeaderType::bool_true:
    case HeaderType::bool_false: return 0;
    case HeaderType::byte: return 1;
    case HeaderType::int16: return 2;
    case HeaderType::int32: return 4;
    case HeaderType::int64:
    case HeaderType::timestamp: return 8;
    case HeaderType::bytes: return 2 + std::get<Bytes>(v).data.size();
    case HeaderType::string: return 2 + std::get<std::string>(v).size();
    case HeaderType::uuid: return 16;
  }
  return 0;
}

// Parses the headers block; every read is bounds-checked against the block.
std::expected<std::vector<Header>, Error> parse_headers(std::string_view block) {
  std::vector<Header> headers;
  std::size_t pos = 0;
  auto need = [&](std::size_t n) { return block.size() - pos >= n; };
  auto bad = [](std::string what) { return fail(ErrorKind::invalid_header, std::move(what)); };
  while (pos < block.size()) {
    std::size_t name_len = static_cast<unsigned char>(block[pos++]);
    if (name_len == 0) return bad("header with an empty name");
    if (!need(name_len + 1)) return bad("header name overruns the headers");
    Header h;
    h.name.assign(block.substr(pos, name_len));
    pos += name_len;
    auto type = static_cast<unsigned char>(block[pos++]);
    const char* p = block.data() + pos;
    switch (type) {
      case 0: h.value = true; break;
      case 1: h.value = false; break;
      case 2:
        if (!need(1)) return bad("byte header truncated");
        h.value = static_cast<std::int8_t>(static_cast<std::uint8_t>(p[0]));
        pos += 1;
        break;
      case 3:
        if (!need(2)) return bad("short header truncated");
        h.value = static_cast<std::int16_t>(static_cast<std::uint16_t>(read_be(p, 2)));
        pos += 2;
        break;
      case 4:
        if (!need(4)) return bad("int header truncated");
        h.value = static_cast<std::int32_t>(static_cast<std::uint32_t>(read_be(p, 4)));
        pos += 4;
        break;
      case 5:
      case 8: {
        if (!need(8)) return bad("long/timestamp header truncated");
        auto v = static_cast<std::int64_t>(read_be(p, 8));
        if (type == 5)
          h.value = v;
        else
          h.value = Timestamp{std::chrono::milliseconds{v}};
        pos += 8;
        break;
      }
      case 6:
      case 7: {
        if (!need(2)) return bad("byte array/string length truncated");
        std::size_t len = read_be(p, 2);
        pos += 2;
        if (!need(len)) return bad("byte array/string value overruns the headers");
        std::string data(block.substr(pos, len));
        if (type == 6)
          h.value = Bytes{std::move(data)};
        else
          h.value = std::move(data);
        pos += len;
        break;
      }
      case 9: {
        if (!need(16)) return bad("uuid header truncated");
        Uuid u{};
        std::memcpy(u.data(), p, 16);
        h.value = u;
        pos += 16;
        break;
      }
      default: return bad("unknown header value type " + std::to_string(type));
    }
    headers.push_back(std::move(h));
  }
  return headers;
}

struct Prelude {
  std::uint32_t total;
  std::uint32_t headers;
};

// Checks the 12-byte prelude before the rest of the message is awaited, so a corrupt or
// hostile length fails at once instead of making the decoder buffer up to 4 GiB.
std::expected<Prelude, Error> check_prelude(const char* p, std::size_t max_message_size) {
  Prelude pr{read_u32(p), read_u32(p + 4)};
  std::uint32_t expected = read_u32(p + 8);
  if (crc32(p, 8) != expected) return fail(ErrorKind::prelude_crc_mismatch, "prelude CRC32 mismatch");
  if (pr.total < kMinMessageSize)
    return fail(ErrorKind::invalid_length, "total length " + std::to_string(pr.total) + " below 16");
  if (pr.total > max_message_size)
    return fail(ErrorKind::message_too_large,
                "total length " + std::to_string(pr.total) + " above the limit of " +
                    std::to_string(max_message_size));
  if (pr.headers > kMaxHeadersSize)
    return fail(ErrorKind::headers_too_large,
                "headers length " + std::to_string(pr.headers) + " above the limit of 131072");
  if (pr.headers > pr.total - kMinMessageSize)
    return fail(ErrorKind::invalid_length, "headers length exceeds the message");
  return pr;
}

// The whole message is present and its prelude checked.
std::expected<Message, Error> decode_checked(std::string_view msg, const Prelude& pr) {
  std::uint32_t expected = read_u32(msg.data() + msg.size() - 4);
  if (crc32(msg.data(), msg.size() - 4) != expected)
    return fail(ErrorKind::message_crc_mismatch, "message CRC32 mismatch");
  auto headers = parse_headers(msg.substr(kPreludeSize, pr.headers));
  if (!headers) return std::unexpected(std::move(headers.error()));
  Message m;
  m.headers = std::move(*headers);
  std::size_t payload_start = kPreludeSize + pr.headers;
  m.payload.assign(msg.substr(payload_start, pr.total - payload_start - 4));
  return m;
}

}  // namespace

HeaderType type_of(const HeaderValue& v) noexcept {
  switch (v.index()) {
    case 0: return std::get<bool>(v) ? HeaderType::bool_true : HeaderType::bool_false;
    case 1: return HeaderType::byte;
    case 2: return HeaderType::int16;
    case 3: return HeaderType::int32;
    case 4: return HeaderType::int64;
    case 5: return HeaderType::bytes;
    case 6: return HeaderType::string;
    case 7: return HeaderType::timestamp;
    default: return HeaderType::uuid;
  }
}

const HeaderValue* Message::find(std::string_view name) const noexcept {
  for (const auto& h : headers)
    if (h.name == name) return &h.value;
  return nullptr;
}

std::optional<std::string_view> Message::string_header(std::string_view name) const noexcept {
  const HeaderValue* v = find(name);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(v)) return std::string_view(*s);
  return std::nullopt;
}

MessageType message_type(const Message& m) noexcept {
  auto t = m.string_header(":message-type");
  if (!t) return MessageType::unknown;
  if (*t == "event") return MessageType::event;
  if (*t == "exception") return MessageType::exception;
  if (*t == "error") return MessageType::error;
  return MessageType::unknown;
}
std::optional<std::string_view> event_type(const Message& m) noexcept { return m.string_header(":event-type"); }
std::optional<std::string_view> exception_type(const Message& m) noexcept {
  return m.string_header(":exception-type");
}
std::optional<std::string_view> content_type(const Message& m) noexcept { return m.string_header(":content-type"); }
std::optional<std::string_view> error_code(const Message& m) noexcept { return m.string_header(":error-code"); }
std::optional<std::string_view> error_message(const Message& m) noexcept {
  return m.string_header(":error-message");
}

std::expected<void, Error> encode_to(const Message& m, std::string& out) {
  std::size_t headers_size = 0;
  for (const auto& h : m.headers) {
    if (h.name.empty() || h.name.size() > kMaxHeaderNameSize)
      return fail(ErrorKind::value_too_large, "header name must be 1..127 bytes");
    std::size_t vs = value_size(h.value);
    if ((std::holds_alternative<Bytes>(h.value) || std::holds_alternative<std::string>(h.value)) &&
        vs - 2 > kMaxHeaderValueSize)
      return fail(ErrorKind::value_too_large, "header '" + h.name + "' value above 32767 bytes");
    headers_size += 1 + h.name.size() + 1 + vs;
  }
  if (headers_size > kMaxHeadersSize)
    return fail(ErrorKind::headers_too_large, "headers above 131072 bytes");
  std::size_t total = kPreludeSize + headers_size + m.payload.size() + 4;
  if (total > kMaxMessageSize) return fail(ErrorKind::message_too_large, "message above 16 MiB");

  std::size_t start = out.size();
  out.reserve(start + total);
  put_be(out, total, 4);
  put_be(out, headers_size, 4);
  put_be(out, crc32(out.data() + start, 8), 4);
  for (const auto& h : m.headers) {
    out.push_back(static_cast<char>(h.name.size()));
    out.append(h.name);
    HeaderType t = type_of(h.value);
    out.push_back(static_cast<char>(t));
    switch (t) {
      case HeaderType::bool_true:
      case HeaderType::bool_false: break;
      case HeaderType::byte: put_be(out, static_cast<std::uint8_t>(std::get<std::int8_t>(h.value)), 1); break;
      case HeaderType::int16: put_be(out, static_cast<std::uint16_t>(std::get<std::int16_t>(h.value)), 2); break;
      case HeaderType::int32: put_be(out, static_cast<std::uint32_t>(std::get<std::int32_t>(h.value)), 4); break;
      case HeaderType::int64: put_be(out, static_cast<std::uint64_t>(std::get<std::int64_t>(h.value)), 8); break;
      case HeaderType::timestamp:
        put_be(out, static_cast<std::uint64_t>(std::get<Timestamp>(h.value).time_since_epoch().count()), 8);
        break;
      case HeaderType::bytes: {
        const auto& d = std::get<Bytes>(h.value).data;
        put_be(out, d.size(), 2);
        out.append(d);
        break;
      }
      case HeaderType::string: {
        const auto& s = std::get<std::string>(h.value);
        put_be(out, s.size(), 2);
        out.append(s);
        break;
      }
      case HeaderType::uuid: {
        const auto& u = std::get<Uuid>(h.value);
        out.append(reinterpret_cast<const char*>(u.data()), u.size());
        break;
      }
    }
  }
  out.append(m.payload);
  put_be(out, crc32(out.data() + start, out.size() - start), 4);
  return {};
}

std::expected<std::string, Error> encode(const Message& m) {
  std::string out;
  auto r = encode_to(m, out);
  if (!r) return std::unexpected(std::move(r.error()));
  return out;
}

Message make_event(std::string_view event_type, std::string payload, std::string_view content_type) {
  Message m;
  m.headers.push_back({":event-type", std::string(event_type)});
  m.headers.push_back({":content-type", std::string(content_type)});
  m.headers.push_back({":message-type", std::string("event")});
  m.payload = std::move(payload);
  return m;
}

Message make_exception(std::string_view exception_type, std::string payload,
                       std::string_view content_type) {
  Message m;
  m.headers.push_back({":exception-type", std::string(exception_type)});
  m.headers.push_back({":content-type", std::string(content_type)});
  m.headers.push_back({":message-type", std::string("exception")});
  m.payload = std::move(payload);
  return m;
}

std::expected<Message, Error> decode(std::string_view bytes) {
  if (bytes.size() < kPreludeSize) return fail(ErrorKind::truncated, "message shorter than its prelude");
  auto pr = check_prelude(bytes.data(), kMaxMessageSize);
  if (!pr) return std::unexpected(std::move(pr.error()));
  if (bytes.size() < pr->total) return fail(ErrorKind::truncated, "message shorter than its total length");
  if (bytes.size() > pr->total)
    return fail(ErrorKind::invalid_length, "bytes after the message's total length");
  return decode_checked(bytes, *pr);
}

std::expected<Message, Error> decode(std::span<const std::uint8_t> bytes) {
  return decode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void Decoder::feed(std::string_view bytes) {
  if (error_) return;
  // Compact once the consumed prefix dominates, keeping appends amortized O(1).
  if (offset_ > 0 && offset_ * 2 >= buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
}

void Decoder::feed(std::span<const std::uint8_t> bytes) {
  feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::expected<std::optional<Message>, Error> Decoder::next() {
  if (error_) return std::unexpected(*error_);
  std::size_t avail = buffer_.size() - offset_;
  if (avail < kPreludeSize) return std::optional<Message>{};
  const char* p = buffer_.data() + offset_;
  auto pr = check_prelude(p, max_message_size_);
  if (!pr) {
    error_ = pr.error();
    return std::unexpected(std::move(pr.error()));
  }
  if (avail < pr->total) return std::optional<Message>{};
  auto m = decode_checked(std::string_view(p, pr->total), *pr);
  if (!m) {
    error_ = m.error();
    return std::unexpected(std::move(m.error()));
  }
  offset_ += pr->total;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return std::optional<Message>{std::move(*m)};
}

std::expected<void, Error> Decoder::finish() const {
  if (error_) return std::unexpected(*error_);
  if (buffered() != 0)
    return std::unexpected(Error{ErrorKind::truncated, "stream ended inside a message (" +
                                                           std::to_string(buffered()) + " bytes buffered)"});
  return {};
}

}  // namespace bulwark::bedrock::eventstream
