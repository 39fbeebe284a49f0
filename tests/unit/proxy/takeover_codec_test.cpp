// The takeover protocol's codec: every message round-trips whole and split at every offset, and
// bad frames are refused with a reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "proxy/runtime/takeover.hpp"

namespace edgerelay::proxy::takeover {
namespace {

std::vector<message> samples() {
  offer o;
  o.binary_version = "1.2.3";
  o.sockets.push_back({socket_kind::tcp, "socks", "127.0.0.1", 1080, 2});
  o.sockets.push_back({socket_kind::udp, "sql", "::1", 5001, 1});
  o.sockets.push_back({socket_kind::admin, "", "127.0.0.1", 9090, 1});
  return {hello{protocol_version, "1.2.4"}, fd_batch{4},        o,           ready{}, done{17},
          refusal{"shutting down"},         offer{"0.0.1", {}}, hello{7, ""}};
}

std::vector<std::uint8_t> concat_all(const std::vector<message>& ms) {
  std::vector<std::uint8_t> out;
  for (const auto& m : ms) {
    const auto f = encode(m);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

/// Feeds `bytes` in two pieces split at `at`, collecting every message as soon as it is whole.
std::vector<message> decode_split(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  decoder d;
  std::vector<message> out;
  auto drain = [&] {
    for (;;) {
      auto r = d.next();
      if (auto* m = std::get_if<message>(&r)) {
        out.push_back(std::move(*m));
        continue;
      }
      EXPECT_FALSE(std::holds_alternative<decoder::error>(r)) << std::get<decoder::error>(r).what;
      return;
    }
  };
  d.feed(std::span(bytes).first(at));
  drain();
  d.feed(std::span(bytes).subspan(at));
  drain();
  return out;
}

TEST(takeover_codec, every_message_round_trips_split_at_every_offset) {
  const auto ms = samples();
  const auto bytes = concat_all(ms);
  for (std::size_t at = 0; at <= bytes.size(); ++at) {
    EXPECT_EQ(decode_split(bytes, at), ms) << "split at " << at;
  }
}

TEST(takeover_codec, byte_by_byte_gives_nothing_before_a_frame_is_whole) {
  const auto bytes = encode(done{1234567890123ULL});
  decoder d;
  for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
    d.feed(std::span(bytes).subspan(i, 1));
    EXPECT_TRUE(std::holds_alternative<decoder::need_more>(d.next())) << "after byte " << i;
  }
  d.feed(std::span(bytes).last(1));
  auto r = d.next();
  ASSERT_TRUE(std::holds_alternative<message>(r));
  EXPECT_EQ(std::get<done>(std::get<message>(r)).sessions, 1234567890123ULL);
}

std::string error_of(std::vector<std::uint8_t> bytes) {
  decoder d;
  d.feed(bytes);
  auto r = d.next();
  if (auto* e = std::get_if<decoder::error>(&r)) return e->what;
  return "(no error)";
}

TEST(takeover_codec, bad_frames_are_refused_with_a_reason) {
  EXPECT_NE(error_of({0, 0, 0, 0}).find("a frame of 0 bytes"), std::string::npos);
  EXPECT_NE(error_of({0x7f, 0, 0, 0, 1}).find("expected 1-"), std::string::npos);
  EXPECT_NE(error_of({0, 0, 0, 1, 99}).find("unknown type 99"), std::string::npos);
  // A hello whose string claims more bytes than the frame holds.
  EXPECT_NE(error_of({0, 0, 0, 5, 1, 0, 1, 0, 9}).find("longer than its frame"), std::string::npos);
  // A ready with a payload it does not have.
  EXPECT_NE(error_of({0, 0, 0, 2, 4, 0}).find("bytes after the end"), std::string::npos);
  // A batch of no descriptors, and of more than one sendmsg carries.
  EXPECT_NE(error_of({0, 0, 0, 3, 2, 0, 0}).find("a batch of 0"), std::string::npos);
  EXPECT_NE(error_of({0, 0, 0, 3, 2, 0x01, 0x00}).find("a batch of 256"), std::string::npos);
  // An offer with a socket of kind 9.
  offer o{"v", {{socket_kind::tcp, "a", "127.0.0.1", 1, 1}}};
  auto bytes = encode(o);
  bytes[5 + 2 + 1 + 2] = 9;  // after length, type, version string "v" and the count
  EXPECT_NE(error_of(bytes).find("unknown kind 9"), std::string::npos);
  // An offer of a socket without a descriptor.
  EXPECT_NE(error_of(encode(offer{"v", {{socket_kind::udp, "u", "::1", 2, 0}}})).find("no descriptor"),
            std::string::npos);
}

TEST(takeover_codec, an_error_sticks) {
  decoder d;
  const std::vector<std::uint8_t> bad{0, 0, 0, 1, 99};
  d.feed(bad);
  EXPECT_TRUE(std::holds_alternative<decoder::error>(d.next()));
  d.feed(encode(ready{}));
  EXPECT_TRUE(std::holds_alternative<decoder::error>(d.next()));
}

TEST(takeover_sockets, fixed_ports_match_by_address_and_port_zero_by_name) {
  std::vector<inherited_socket> in;
  in.push_back({socket_kind::tcp, "old-name", tcp::endpoint(net::ip::make_address("127.0.0.1"), 1080), {}, false});
  in.push_back({socket_kind::tcp, "any", tcp::endpoint(net::ip::make_address("127.0.0.1"), 40001), {}, false});
  in.push_back({socket_kind::udp, "any", tcp::endpoint(net::ip::make_address("127.0.0.1"), 40002), {}, false});
  inherited_sockets s(std::move(in));
  const auto loopback = net::ip::make_address("127.0.0.1");
  // A rename on the same fixed address carries on; another port does not.
  EXPECT_TRUE(s.find(socket_kind::tcp, "new-name", tcp::endpoint(loopback, 1080)).has_value());
  EXPECT_FALSE(s.find(socket_kind::tcp, "old-name", tcp::endpoint(loopback, 1081)).has_value());
  // Port 0 keeps the port the running instance was given, for the same name only.
  EXPECT_EQ(s.find(socket_kind::tcp, "any", tcp::endpoint(loopback, 0)), tcp::endpoint(loopback, 40001));
  EXPECT_FALSE(s.find(socket_kind::tcp, "other", tcp::endpoint(loopback, 0)).has_value());
  EXPECT_FALSE(s.find(socket_kind::tcp, "any", tcp::endpoint(net::ip::make_address("127.0.0.2"), 0)).has_value());
  // Kinds do not mix, and a socket is claimed once.
  EXPECT_EQ(s.find(socket_kind::udp, "any", tcp::endpoint(loopback, 0)), tcp::endpoint(loopback, 40002));
  s.claim(socket_kind::tcp, "any", tcp::endpoint(loopback, 0));
  EXPECT_FALSE(s.find(socket_kind::tcp, "any", tcp::endpoint(loopback, 0)).has_value());
  EXPECT_EQ(s.unclaimed(), (std::vector<std::string>{"old-name", "any"}));
}

TEST(takeover_path, configured_wins_and_the_default_depends_on_the_config_path) {
  EXPECT_EQ(socket_path("/run/x.sock", "/etc/edgerelay.yaml"), "/run/x.sock");
  const auto a = socket_path("", "/nonexistent/a.yaml");
  const auto b = socket_path("", "/nonexistent/b.yaml");
  EXPECT_NE(a, b);
  EXPECT_EQ(a, socket_path("", "/nonexistent/a.yaml"));
  EXPECT_TRUE(a.ends_with(".takeover")) << a;
}

}  // namespace
}  // namespace edgerelay::proxy::takeover
