// Operator log: levels, timestamps, escaped messages; whole lines go to the log writer.
#include "proxy/observe/log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>

#include "proxy/observe/log_sink.hpp"
#include "proxy/observe/text_escape.hpp"

namespace edgerelay::proxy::log {
namespace {
std::atomic<int> current_level{static_cast<int>(level::info)};

std::string_view name_of(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}

}  // namespace

void set_level(level l) noexcept {
  current_level.store(static_cast<int>(l), std::memory_order_relaxed);
}

bool enabled(level l) noexcept {
  return static_cast<int>(l) >= current_level.load(std::memory_order_relaxed);
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string out(buf, n);
  out.push_back('.');
  if (millis < 100) out.push_back('0');
  if (millis < 10) out.push_back('0');
  append(out, millis);
  out.push_back('Z');
  return out;
}

std::string format_line(level l, std::string_view component, std::string_view message) {
  std::string line = timestamp();
  line.reserve(line.size() + component.size() + message.size() + 12);
  line.push_back(' ');
  line.append(name_of(l));
  line.push_back(' ');
  line.append(component);
  line.append(": ");
  append_log_escaped(line, message);
  line.push_back('\n');
  return line;
}

void write(level l, std::string_view component, std::string_view message) noexcept {
  try {
    emit(stream::operator_log, format_line(l, component, message));
  } catch (...) {
    // Out of memory while logging: drop the line rather than the process.
  }
}

}  // namespace edgerelay::proxy::log
