// The polling requests' checks (tunnel/polling_codec.hpp): every request the door accepts or
// refuses, read from bytes whole and cut at every offset, and the responses' framing.
#include "tunnel/polling_codec.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <variant>

#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::tunnel {
namespace {

constexpr std::string_view door = "/edgerelay";
const std::string id = "0123456789abcdef0123456789abcdef";

/// The head of `text` fed in two pieces cut at `cut` (the whole text when cut is its size).
request_head head_of(std::string_view text, std::size_t cut) {
  request_head_reader reader;
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  head_result r = reader.feed(std::span(p, cut));
  if (std::holds_alternative<need_more>(r)) {
    r = reader.feed(std::span(p + cut, text.size() - cut));
  }
  auto* parsed_head = std::get_if<parsed<request_head>>(&r);
  if (parsed_head == nullptr) {
    ADD_FAILURE() << "head did not parse at cut " << cut << ": " << text;
    return {};
  }
  return parsed_head->value;
}

/// Parses `text` at every cut; every cut must give the same verdict, which is returned.
std::variant<poll_request, poll_refusal> parse_at_every_cut(const std::string& text) {
  const auto whole = parse_poll_request(head_of(text, text.size()), door);
  for (std::size_t cut = 0; cut < text.size(); ++cut) {
    const auto part = parse_poll_request(head_of(text, cut), door);
    EXPECT_EQ(part.index(), whole.index()) << "cut " << cut;
    if (const auto* a = std::get_if<poll_request>(&part)) {
      const auto& w = std::get<poll_request>(whole);
      EXPECT_EQ(a->op, w.op);
      EXPECT_EQ(a->seq, w.seq);
      EXPECT_EQ(a->id, w.id);
      EXPECT_EQ(a->target, w.target);
    } else {
      EXPECT_EQ(std::get<poll_refusal>(part).status, std::get<poll_refusal>(whole).status) << "cut " << cut;
    }
  }
  return whole;
}

std::string req(std::string_view method, std::string_view target, std::string_view extra = {}) {
  return std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: gw\r\n" + std::string(extra) + "\r\n";
}

unsigned refused_with(const std::string& text) {
  const auto r = parse_at_every_cut(text);
  const auto* no = std::get_if<poll_refusal>(&r);
  return no == nullptr ? 0 : no->status;
}

TEST(PollingCodec, OpenTakesAPercentDecodedTarget) {
  const auto r = parse_at_every_cut(
      req("POST", "/edgerelay/poll/open?target=%5B2001:db8::7%5D:22", "Authorization: Basic YTpi\r\n"));
  const auto& p = std::get<poll_request>(r);
  EXPECT_EQ(p.op, poll_op::open);
  EXPECT_EQ(p.target, "[2001:db8::7]:22");
  ASSERT_TRUE(p.authorization);
  EXPECT_EQ(*p.authorization, "Basic YTpi");
}

TEST(PollingCodec, AbsoluteFormThroughAProxy) {
  const auto r = parse_at_every_cut(req("POST", "http://gw.example.com:8080/edgerelay/poll/open?target=backend:sql"));
  EXPECT_EQ(std::get<poll_request>(r).target, "backend:sql");
}

TEST(PollingCodec, UpCarriesSeqControlAndLength) {
  const auto r = parse_at_every_cut(req("POST", "/edgerelay/poll/" + id + "/up?seq=18446744073709551615&x=1",
                                        "Content-Length: 65536\r\nEdgerelay-Control: FIN\r\n"));
  const auto& p = std::get<poll_request>(r);
  EXPECT_EQ(p.op, poll_op::up);
  EXPECT_EQ(p.id, id);
  EXPECT_EQ(p.seq, 18446744073709551615ULL);
  EXPECT_EQ(p.control, poll_control::fin);
  EXPECT_EQ(p.body_size, 65536U);
  const auto b = parse_at_every_cut(
      req("POST", "/edgerelay/poll/" + id + "/up?seq=3", "Content-Length: 0\r\nEdgerelay-Control: break\r\n"));
  EXPECT_EQ(std::get<poll_request>(b).control, poll_control::brk);
}

TEST(PollingCodec, DownAndClose) {
  EXPECT_EQ(std::get<poll_request>(parse_at_every_cut(req("GET", "/edgerelay/poll/" + id + "/down?seq=7"))).seq, 7U);
  EXPECT_EQ(std::get<poll_request>(parse_at_every_cut(req("POST", "/edgerelay/poll/" + id + "/close"))).op,
            poll_op::close);
}

TEST(PollingCodec, Refusals) {
  const std::string up = "/edgerelay/poll/" + id + "/up";
  EXPECT_EQ(refused_with(req("POST", "/other/poll/open?target=a:1")), 404U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/nope")), 404U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/0123456789ABCDEF0123456789ABCDEF/close")), 404U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/" + id + "/sideways")), 404U);
  EXPECT_EQ(refused_with(req("GET", "/edgerelay/poll/open?target=a:1")), 405U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/" + id + "/down?seq=1")), 405U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/open")), 400U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/open?target=")), 400U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/open?target=a%0a:1")), 400U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/open?target=a:1&target=b:2")), 400U);
  EXPECT_EQ(refused_with(req("POST", up, "Content-Length: 1\r\n")), 400U);              // no seq
  EXPECT_EQ(refused_with(req("POST", up + "?seq=-1", "Content-Length: 1\r\n")), 400U);  // not a number
  EXPECT_EQ(refused_with(req("POST", up + "?seq=+1", "Content-Length: 1\r\n")), 400U);  // a sign
  EXPECT_EQ(refused_with(req("POST", up + "?seq=18446744073709551616", "Content-Length: 1\r\n")), 400U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1&seq=2", "Content-Length: 1\r\n")), 400U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1")), 411U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1", "Transfer-Encoding: chunked\r\n")), 411U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1", "Content-Length: 65537\r\n")), 413U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1", "Content-Length: 0\r\nEdgerelay-Control: reset\r\n")), 400U);
  EXPECT_EQ(refused_with(req("POST", up + "?seq=1",
                             "Content-Length: 0\r\nEdgerelay-Control: fin\r\nEdgerelay-Control: fin\r\n")),
            400U);
  EXPECT_EQ(refused_with(req("GET", "/edgerelay/poll/" + id + "/down?seq=1", "Edgerelay-Control: fin\r\n")), 400U);
  EXPECT_EQ(refused_with(req("GET", "/edgerelay/poll/" + id + "/down?seq=1", "Content-Length: 3\r\n")), 400U);
  EXPECT_EQ(refused_with(req("POST", "/edgerelay/poll/open?target=a:1",
                             "Authorization: Basic YTpi\r\nAuthorization: Basic YTpj\r\n")),
            400U);
}

TEST(PollingCodec, PathTest) {
  EXPECT_TRUE(is_poll_path(head_of(req("GET", "/edgerelay/poll/x"), 0), door));
  EXPECT_FALSE(is_poll_path(head_of(req("GET", "/edgerelay/pollx"), 0), door));
  EXPECT_FALSE(is_poll_path(head_of(req("GET", "/edgerelay"), 0), door));
  EXPECT_FALSE(is_poll_path(head_of(req("GET", "/x?/edgerelay/poll/"), 0), door));
}

TEST(PollingCodec, Ids) {
  std::array<std::uint8_t, poll_id_bytes> raw{};
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::uint8_t>(i * 17);
  const std::string text = poll_id_text(raw);
  EXPECT_EQ(text, "00112233445566778899aabbccddeeff");
  EXPECT_TRUE(is_poll_id(text));
  EXPECT_FALSE(is_poll_id(text.substr(1)));
  EXPECT_FALSE(is_poll_id("00112233445566778899AABBCCDDEEFF"));
}

TEST(PollingCodec, ResponsesAreCompleteAndUncached) {
  const poll_header h[] = {{"Edgerelay-Seq", "4"}};
  const std::string r = poll_response(200, h, "abc", true);
  EXPECT_EQ(r,
            "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 3\r\nContent-Type: "
            "application/octet-stream\r\nConnection: keep-alive\r\nEdgerelay-Seq: 4\r\n\r\nabc");
  const std::string e = poll_error_response(409, "up seq out of order", "conflict");
  EXPECT_NE(e.find("HTTP/1.1 409 Conflict\r\n"), std::string::npos);
  EXPECT_NE(e.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(e.find("Edgerelay-Result: conflict\r\n"), std::string::npos);
  EXPECT_NE(e.find("Content-Length: 20\r\n"), std::string::npos);
  EXPECT_EQ(poll_response(204, {}, {}, true).find("Content-Type"), std::string::npos);
}

TEST(PollingCodec, PercentDecode) {
  EXPECT_EQ(percent_decode("a%3Ab%3a"), "a:b:");
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("%zz"));
  EXPECT_FALSE(percent_decode("%00"));
  EXPECT_FALSE(percent_decode("%7f"));
}

}  // namespace
}  // namespace edgerelay::tunnel
