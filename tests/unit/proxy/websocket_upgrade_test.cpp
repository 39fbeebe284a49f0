// The WebSocket door's pure parts: control messages and the upgrade checks, status by status.
#include <gtest/gtest.h>

#include <variant>

#include "proxy/inbound/websocket_door.hpp"
#include "proxy/outbound/gateway/websocket_wire.hpp"

namespace edgerelay::proxy {
namespace {

using gateway::control_op;
using gateway::parse_control;

TEST(WebSocketControl, OpsAndTheirSpellings) {
  EXPECT_EQ(parse_control(R"({"op":"fin"})"), control_op::fin);
  EXPECT_EQ(parse_control(" { \"op\" : \"break\" } "), control_op::break_query);
  EXPECT_EQ(parse_control(R"({"v":2,"op":"fin","why":"done","x":null,"y":true,"z":-1.5e3})"), control_op::fin);
  EXPECT_EQ(parse_control(R"({"op":"teleport"})"), control_op::unknown);
  for (const char* bad : {"", "fin", "{}", "{\"op\":1}", "{\"op\":\"fin\"", "{\"op\":\"fin\"} x", "[\"fin\"]",
                          "{\"op\":\"fin\",\"op\":\"break\"}", "{\"op\":\"fin\",}", "{\"a\":{}}", "{'op':'fin'}"}) {
    EXPECT_EQ(parse_control(bad), control_op::malformed) << bad;
  }
  EXPECT_EQ(parse_control(gateway::control_text(control_op::fin)), control_op::fin);
  EXPECT_EQ(parse_control(gateway::control_text(control_op::break_query)), control_op::break_query);
}

tunnel::request_head upgrade(std::string target) {
  tunnel::request_head h;
  h.method = "GET";
  h.target = target;
  h.path = target;
  h.upgrade = "websocket";
  h.connection = "keep-alive, Upgrade";
  h.fields = {{"Upgrade", "websocket"},
              {"Connection", "keep-alive, Upgrade"},
              {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
              {"Sec-WebSocket-Version", "13"}};
  return h;
}

unsigned status_of(const tunnel::request_head& h) {
  const auto r = check_websocket_upgrade(h, "/edgerelay");
  const auto* no = std::get_if<websocket_refusal>(&r);
  return no == nullptr ? 101 : no->status;
}

TEST(WebSocketUpgrade, AcceptedAskDecodesTheTarget) {
  auto h = upgrade("/edgerelay?x=1&target=%5B2001:db8::7%5D:22");
  h.fields.push_back({"Sec-WebSocket-Protocol", "other, edgerelay.v1"});
  h.fields.push_back({"Authorization", "Basic YTpi"});
  const auto r = check_websocket_upgrade(h, "/edgerelay");
  ASSERT_TRUE(std::holds_alternative<websocket_ask>(r));
  const auto& ask = std::get<websocket_ask>(r);
  EXPECT_EQ(ask.target, "[2001:db8::7]:22");
  EXPECT_EQ(ask.subprotocol, "edgerelay.v1");
  EXPECT_EQ(ask.authorization, "Basic YTpi");
  EXPECT_FALSE(ask.udp);
  EXPECT_TRUE(is_websocket_upgrade(h));
}

TEST(WebSocketUpgrade, EachMissingPieceHasItsStatus) {
  EXPECT_EQ(status_of(upgrade("/edgerelay?target=a:1")), 101u);
  EXPECT_EQ(status_of(upgrade("/other?target=a:1")), 404u);
  EXPECT_EQ(status_of(upgrade("/edgerelay/?target=a:1")), 404u);
  EXPECT_EQ(status_of(upgrade("/edgerelay")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?target=")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?target=a:1&target=b:2")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?target=a%0a:1")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?target=a%2:1")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?udp=1&target=a:1")), 400u);
  EXPECT_EQ(status_of(upgrade("/edgerelay?udp=1")), 101u);
  auto post = upgrade("/edgerelay?target=a:1");
  post.method = "POST";
  EXPECT_EQ(status_of(post), 400u);
  auto old = upgrade("/edgerelay?target=a:1");
  old.version = 10;
  EXPECT_EQ(status_of(old), 400u);
  auto no_conn = upgrade("/edgerelay?target=a:1");
  no_conn.connection = "keep-alive";
  EXPECT_EQ(status_of(no_conn), 400u);
  auto v8 = upgrade("/edgerelay?target=a:1");
  v8.fields[3].value = "8";
  EXPECT_EQ(status_of(v8), 426u);
  auto short_key = upgrade("/edgerelay?target=a:1");
  short_key.fields[2].value = "abc";
  EXPECT_EQ(status_of(short_key), 400u);
  auto other_proto = upgrade("/edgerelay?target=a:1");
  other_proto.fields.push_back({"Sec-WebSocket-Protocol", "chat"});
  EXPECT_EQ(status_of(other_proto), 400u);
  auto two_auth = upgrade("/edgerelay?target=a:1");
  two_auth.fields.push_back({"Authorization", "Basic YTpi"});
  two_auth.fields.push_back({"authorization", "Basic YTpj"});
  EXPECT_EQ(status_of(two_auth), 400u);
}

TEST(WebSocketUpgrade, StatusesAndRefusalBytes) {
  EXPECT_EQ(websocket_status(outcome::success), 101u);
  EXPECT_EQ(websocket_status(outcome::denied), 403u);
  EXPECT_EQ(websocket_status(outcome::bad_credentials), 401u);
  EXPECT_EQ(websocket_status(outcome::connection_refused), 502u);
  EXPECT_EQ(websocket_status(outcome::connect_timeout), 504u);
  EXPECT_EQ(websocket_status(outcome::malformed), 400u);
  const auto reply = websocket_error_reply(401, outcome::bad_credentials, "credentials needed");
  const std::string text(reply.begin(), reply.end());
  EXPECT_EQ(text,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n"
            "Edgerelay-Result: bad_credentials\r\nContent-Length: 19\r\nConnection: close\r\n"
            "WWW-Authenticate: Basic realm=\"edgerelay\"\r\n\r\ncredentials needed\n");
}

}  // namespace
}  // namespace edgerelay::proxy
