#pragma once
// Structured logs: one JSON object per line on stderr, written with a single write(2)
// so lines from different workers never interleave. Never pass a secret or a prompt.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <optional>
#include <type_traits>
#include <variant>

#include "core/json_write.hpp"

namespace bulwark::log {

enum class Level : std::uint8_t { debug, info, warn, error };

struct Field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, double, bool> value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
    requires std::is_integral_v<I>
  Field(std::string_view k, I v) : key(k), value(static_cast<std::int64_t>(v)) {}
};

void set_level(Level level) noexcept;
bool enabled(Level level) noexcept;
std::optional<Level> parse_level(std::string_view name) noexcept;

// Formats the line (exposed for tests); emit() writes it.
std::string format(Level level, std::string_view event, std::initializer_list<Field> fields);
void emit(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void debug(std::string_view e, std::initializer_list<Field> f = {}) { if (enabled(Level::debug)) emit(Level::debug, e, f); }
inline void info(std::string_view e, std::initializer_list<Field> f = {}) { if (enabled(Level::info)) emit(Level::info, e, f); }
inline void warn(std::string_view e, std::initializer_list<Field> f = {}) { if (enabled(Level::warn)) emit(Level::warn, e, f); }
inline void error(std::string_view e, std::initializer_list<Field> f = {}) { if (enabled(Level::error)) emit(Level::error, e, f); }

// JSON string escaping shared by the log and other hand-written JSON on hot paths.
inline void append_json_string(std::string& out, std::string_view s) { json::append_string(out, s); }

}  // namespace bulwark::log
