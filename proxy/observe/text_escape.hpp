// Escaping of client-chosen text for the logs: what a client sends must not become a line break,
// a terminal escape or bytes a log reader cannot decode.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgerelay::proxy {

/// The length of the well-formed UTF-8 sequence that `s` starts with (Unicode table 3-7: no
/// overlong forms, no surrogates, nothing above U+10FFFF), or 0 when it starts with none.
std::size_t utf8_sequence_length(std::string_view s) noexcept;

/// True for a well-formed UTF-8 sequence of a C1 control (U+0080-U+009F, encoded C2 80-C2 9F): some
/// terminals act on them as on ESC sequences.
bool is_c1_control(std::string_view sequence) noexcept;

/// Appends `s` for an operator-log line: every control byte (below 0x20, 0x7f, and the bytes of a
/// C1 control) and every byte that is not part of well-formed UTF-8 becomes `\xNN` (lowercase
/// hex), and a backslash becomes `\\`, so the escaped text reads back unambiguously.
void append_log_escaped(std::string& out, std::string_view s);

}  // namespace edgerelay::proxy
