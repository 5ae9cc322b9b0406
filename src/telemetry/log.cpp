#include "telemetry/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace bulwark::log {
namespace {
std::atomic<Level> g_level{Level::info};

constexpr std::string_view level_name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

void append_timestamp(std::string& out) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto secs = time_point_cast<seconds>(now);
  const auto ms = duration_cast<milliseconds>(now - secs).count();
  const std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out.append(buf, static_cast<std::size_t>(n));
}
}  // namespace

void set_level(Level level) noexcept { g_level.store(level, std::memory_order_relaxed); }
bool enabled(Level level) noexcept { return level >= g_level.load(std::memory_order_relaxed); }

std::optional<Level> parse_level(std::string_view name) noexcept {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error})
    if (level_name(l) == name) return l;
  return std::nullopt;
}

std::string format(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(160);
  line += "{\"ts\":\"";
  append_timestamp(line);
  line += "\",\"level\":\"";
  line += level_name(level);
  line += "\",\"event\":";
  append_json_string(line, event);
  for (const Field& f : fields) {
    line.push_back(',');
    append_json_string(line, f.key);
    line.push_back(':');
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string_view>) {
            append_json_string(line, v);
          } else if constexpr (std::is_same_v<V, bool>) {
            line += v ? "true" : "false";
          } else if constexpr (std::is_same_v<V, double>) {
            char buf[32];
            const int n = std::snprintf(buf, sizeof buf, "%.6g", v);
            line.append(buf, static_cast<std::size_t>(n));
          } else {
            line += std::to_string(v);
          }
        },
        f.value);
  }
  line += "}\n";
  return line;
}

void emit(Level level, std::string_view event, std::initializer_list<Field> fields) {
  const std::string line = format(level, event, fields);
  // One write per line: atomic for lines up to PIPE_BUF on pipes, and never interleaved mid-line on files.
  [[maybe_unused]] const auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace bulwark::log
