// The three-way result every SOCKS parser returns (ARCHITECTURE 3.4): need more, error, or a value.
#pragma once

#include <cstddef>
#include <string_view>
#include <variant>

#include "wire.hpp"

namespace edgerelay::socks {

/// The input ends inside the message. `at_least` is a lower bound on the total input size, counted
/// from the start of the span given to the parser, before the parser can decide anything new.
struct need_more {
  std::size_t at_least = 0;
  friend bool operator==(const need_more&, const need_more&) = default;
};

/// The input can never become a valid message. `reply` is the SOCKS5 REP a server should answer
/// with where a reply is possible; `what` is static text for logs.
struct protocol_error {
  reply_code reply = reply_code::general_failure;
  std::string_view what;
  friend bool operator==(const protocol_error&, const protocol_error&) = default;
};

/// A complete message: `consumed` bytes from the start of the input make up `value`.
template <class T>
struct parsed {
  T value;
  std::size_t consumed = 0;
  friend bool operator==(const parsed&, const parsed&) = default;
};

template <class T>
using parse_result = std::variant<need_more, protocol_error, parsed<T>>;

}  // namespace edgerelay::socks
