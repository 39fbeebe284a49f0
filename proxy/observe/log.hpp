// Operator log (text on stderr) and string building without <format> (GCC 12 has none).
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// Appends the pieces of a log line: strings, integers, error codes (their message).
inline void append(std::string& out, std::string_view s) {
  out.append(s);
}
inline void append(std::string& out, const char* s) {
  out.append(s);
}
inline void append(std::string& out, const std::string& s) {
  out.append(s);
}
inline void append(std::string& out, char c) {
  out.push_back(c);
}
template <std::integral T>
void append(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}
inline void append(std::string& out, const boost::system::error_code& ec) {
  out.append(ec.message());
}

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (append(out, parts), ...);
  return out;
}

namespace log {

using level = config::log_level;

/// Set once at start and on reload; read by every thread (a relaxed atomic inside).
void set_level(level l) noexcept;
bool enabled(level l) noexcept;

/// The line "ts level component: message\n". The message is escaped (append_log_escaped): it is
/// built from what clients sent (names, users, SNI, paths), and must not be able to end the line
/// or forge another.
std::string format_line(level l, std::string_view component, std::string_view message);

/// Hands format_line(...) to the log writer (log_sink.hpp), which writes it to stderr without
/// blocking the caller.
void write(level l, std::string_view component, std::string_view message) noexcept;

template <class... Parts>
void debug(std::string_view component, const Parts&... parts) {
  if (enabled(level::debug)) write(level::debug, component, concat(parts...));
}
template <class... Parts>
void info(std::string_view component, const Parts&... parts) {
  if (enabled(level::info)) write(level::info, component, concat(parts...));
}
template <class... Parts>
void warn(std::string_view component, const Parts&... parts) {
  if (enabled(level::warn)) write(level::warn, component, concat(parts...));
}
template <class... Parts>
void error(std::string_view component, const Parts&... parts) {
  if (enabled(level::error)) write(level::error, component, concat(parts...));
}

/// "2026-11-22T06:31:27.123Z" for the current time.
std::string timestamp();

}  // namespace log
}  // namespace edgerelay::proxy
