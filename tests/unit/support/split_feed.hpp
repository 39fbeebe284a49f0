// Feeds SOCKS input at every split point and byte by byte and checks the outcome never changes
// (Beast's parsegrind idea, docs/architecture.md).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "socks/parse_result.hpp"
#include "socks/server.hpp"
#include "socks/target.hpp"

namespace edgerelay::test {

using bytes = std::vector<std::uint8_t>;

inline std::string hex(std::span<const std::uint8_t> in) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const auto b : in) {
    if (!out.empty()) {
      out.push_back(' ');
    }
    out.push_back(digits[b >> 4U]);
    out.push_back(digits[b & 0xFU]);
  }
  return out;
}

inline bytes concat(std::initializer_list<std::span<const std::uint8_t>> parts) {
  bytes out;
  for (const auto part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

/// How the fake driver answers the machine's questions.
struct driver_script {
  bool auth_ok = true;
  socks::reply_code connect_code = socks::reply_code::succeeded;
  socks::bound_address bound{};
  /// Set: a BIND is answered first with on_bind_listening(*bind_listening), then on_connect().
  std::optional<socks::bound_address> bind_listening;
};

/// What a driver saw, as text so a mismatch prints a readable diff.
struct transcript {
  /// "send <hex>", "send+close <hex>", "authenticate user=<u> password=<p>",
  /// "connect cmd=<n> target=<t> user=<u>", "failed <reason>", in order.
  std::vector<std::string> events;
  /// "need_more" (input ran out), "closed" (after a send+close), "failed", "established".
  std::string end;
  /// Once established: leftover() plus every chunk fed later, i.e. what the tunnel gets.
  bytes tunnel;
  friend bool operator==(const transcript&, const transcript&) = default;
  friend void PrintTo(const transcript& t, std::ostream* os) {
    for (const auto& e : t.events) {
      *os << "\n  " << e;
    }
    *os << "\n  end: " << t.end << "\n  tunnel: " << hex(t.tunnel);
  }
};

/// Drives a fresh socks_server the way proxy/session/session.cpp does: feed a chunk; after a non-closing
/// send feed({}); answer authenticate/connect from `script`; stop at close or failure.
inline transcript drive(const socks::server_options& options, const driver_script& script,
                        const std::vector<std::span<const std::uint8_t>>& chunks) {
  socks::socks_server server(options);
  transcript t;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (server.established()) {
      t.tunnel.insert(t.tunnel.end(), chunks[i].begin(), chunks[i].end());
      continue;
    }
    socks::step_t step = server.feed(chunks[i]);
    for (;;) {
      if (std::holds_alternative<socks::step::need_more>(step)) {
        break;
      }
      if (const auto* send = std::get_if<socks::step::send>(&step)) {
        t.events.push_back((send->close_after ? "send+close " : "send ") + hex(send->bytes));
        if (send->close_after) {
          t.end = "closed";
          return t;
        }
        if (server.established()) {
          const auto rest = server.leftover();
          t.tunnel.assign(rest.begin(), rest.end());
          break;
        }
        step = server.feed({});
      } else if (const auto* auth = std::get_if<socks::step::authenticate>(&step)) {
        t.events.push_back("authenticate user=" + auth->user + " password=" + auth->password);
        step = server.on_auth(script.auth_ok);
      } else if (const auto* connect = std::get_if<socks::step::connect>(&step)) {
        t.events.push_back("connect cmd=" + std::to_string(static_cast<int>(connect->cmd)) +
                           " target=" + socks::to_string(connect->target) + " user=" + connect->user);
        if (connect->cmd == socks::command::bind && script.bind_listening) {
          const socks::step_t first = server.on_bind_listening(*script.bind_listening);
          if (const auto* listening = std::get_if<socks::step::send>(&first)) {
            t.events.push_back("send " + hex(listening->bytes));
          } else {
            t.events.push_back("failed " + std::string(std::get<socks::step::failed>(first).reason));
            t.end = "failed";
            return t;
          }
        }
        step = server.on_connect(script.connect_code, script.bound);
      } else {
        t.events.push_back("failed " + std::string(std::get<socks::step::failed>(step).reason));
        t.end = "failed";
        return t;
      }
    }
  }
  t.end = server.established() ? "established" : "need_more";
  return t;
}

inline transcript drive_whole(const socks::server_options& options, const driver_script& script,
                              std::span<const std::uint8_t> input) {
  return drive(options, script, {input});
}

/// Runs `input` whole, split in two at every offset, and byte by byte, expects the same transcript
/// each time, and returns it.
inline transcript expect_same_at_every_split(const socks::server_options& options, const driver_script& script,
                                             std::span<const std::uint8_t> input) {
  const transcript whole = drive_whole(options, script, input);
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    SCOPED_TRACE("split at " + std::to_string(cut));
    EXPECT_EQ(drive(options, script, {input.first(cut), input.subspan(cut)}), whole);
  }
  std::vector<std::span<const std::uint8_t>> single;
  for (std::size_t i = 0; i < input.size(); ++i) {
    single.push_back(input.subspan(i, 1));
  }
  SCOPED_TRACE("byte by byte");
  EXPECT_EQ(drive(options, script, single), whole);
  return whole;
}

/// Every strict prefix of `input` must either wait for more (having done a prefix of the full
/// run's events) or already reach the full run's end (an error decided early, or payload cut short).
inline void expect_truncations_wait(const socks::server_options& options, const driver_script& script,
                                    std::span<const std::uint8_t> input) {
  const transcript full = drive_whole(options, script, input);
  for (std::size_t len = 0; len < input.size(); ++len) {
    SCOPED_TRACE("truncated to " + std::to_string(len));
    const transcript t = drive_whole(options, script, input.first(len));
    if (t.end == "need_more") {
      ASSERT_LE(t.events.size(), full.events.size());
      EXPECT_TRUE(std::equal(t.events.begin(), t.events.end(), full.events.begin()));
    } else {
      EXPECT_EQ(t.events, full.events);
      EXPECT_EQ(t.end, full.end);
      EXPECT_TRUE(t.tunnel.size() <= full.tunnel.size() &&
                  std::equal(t.tunnel.begin(), t.tunnel.end(), full.tunnel.begin()));
    }
  }
}

/// Codec grind: every strict prefix of `input` gives need_more (with at_least past the prefix and,
/// for a message, not past its end) or the very result of the full input; and bytes appended
/// after a complete message change nothing (consumed is exact).
template <class T, class Parse>
void expect_prefix_consistent(Parse parse, std::span<const std::uint8_t> input) {
  const socks::parse_result<T> full = parse(input);
  ASSERT_FALSE(std::holds_alternative<socks::need_more>(full)) << "input is not a whole message";
  for (std::size_t len = 0; len < input.size(); ++len) {
    SCOPED_TRACE("prefix " + std::to_string(len));
    const socks::parse_result<T> r = parse(input.first(len));
    if (const auto* more = std::get_if<socks::need_more>(&r)) {
      EXPECT_GT(more->at_least, len);
      if (const auto* done = std::get_if<socks::parsed<T>>(&full)) {
        EXPECT_LE(more->at_least, done->consumed);
      }
    } else {
      EXPECT_TRUE(r == full);
    }
  }
  bytes longer(input.begin(), input.end());
  longer.insert(longer.end(), {0x00, 0xFF, 0x05, 0x01});
  EXPECT_TRUE(parse(std::span<const std::uint8_t>(longer)) == full);
}

}  // namespace edgerelay::test
