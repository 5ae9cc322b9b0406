#pragma once
// Bedrock's error answers -> bulwark::Error. An error arrives three ways: an HTTP error with
// x-amzn-errortype and/or a JSON body {"__type": ..., "message": ...}, or mid-stream as an
// event-stream message with :message-type exception and :exception-type.
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "providers/bedrock/eventstream.hpp"

namespace bulwark::bedrock {

// "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/" ->
// "ValidationException"; "com.amazon.bedrock#ThrottlingException" -> "ThrottlingException";
// the event-stream member name "throttlingException" -> "ThrottlingException".
std::string normalize_error_type(std::string_view raw);

// True when a ValidationException's message says the input does not fit the model's context
// ("Input is too long for requested model", "prompt is too long: 200049 tokens > 200000
// maximum", "too many input tokens", "max_tokens ... exceeds", ...).
bool is_context_length_message(std::string_view message) noexcept;

// The mapping itself. error_type may be raw (normalized here); http_status 0 when unknown,
// in which case the exception's modeled status is used.
Error map_error(std::string_view error_type, int http_status, std::string_view message);

// An HTTP error answer: x-amzn-errortype wins over the body's __type (either may be absent);
// the message is the body's "message" or "Message".
Error map_http_error(int http_status, std::string_view errortype_header, std::string_view body);

// An exception or error message received inside an event stream.
Error map_stream_exception(const eventstream::Message& m);

// A framing failure of the event stream itself: truncated -> stream_truncated, anything
// else (bad CRC, bad lengths, bad headers) -> upstream_protocol.
Error map_decode_error(const eventstream::Error& e);

}  // namespace bulwark::bedrock
