// Unit tests of the 602SQL framing and tunnel translators, including docs/602sql.md byte for byte.
#include "sql602/codec.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/tunnel/tunnel_split.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::tunnel::sql602 {
namespace {

using tunnel_test::all_chunkings;
using tunnel_test::b;
using tunnel_test::bytes;
using tunnel_test::cat;
using tunnel_test::chunk_list;
using tunnel_test::describe;
using tunnel_test::hex;
using tunnel_test::text;

/// Hex for short byte strings; size and FNV-1a hash for long ones, so a mismatch stays readable.
std::string short_hex(std::span<const std::uint8_t> in) {
  if (in.size() <= 256) {
    return hex(in);
  }
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto c : in) {
    h = (h ^ c) * 1099511628211ULL;
  }
  return "[" + std::to_string(in.size()) + " bytes, fnv " + std::to_string(h) + "]";
}

/// Feeds chunks the way the proxy does (feed(chunk), then feed({}) until need_more) and records
/// every event. Frames are shown in hex, replies as text.
std::vector<std::string> drive_client(const chunk_list& chunks, limits lim = {}) {
  client_translator t(lim);
  std::vector<std::string> events;
  for (const auto& c : chunks) {
    c2s_event e = t.feed(c);
    while (!std::holds_alternative<c2s::need_more>(e)) {
      if (auto* f = std::get_if<c2s::frame>(&e)) {
        events.push_back("frame " + hex(f->bytes));
      } else if (auto* cf = std::get_if<c2s::close_frame>(&e)) {
        events.push_back("close " + hex(cf->bytes));
      } else {
        events.push_back("reject " + text(std::get<c2s::reject>(e).reply));
      }
      e = t.feed({});
    }
  }
  events.push_back(t.finished() ? "finished" : (t.at_boundary() ? "boundary" : "partial"));
  return events;
}

std::vector<std::string> drive_server(const chunk_list& chunks, limits lim = {}, bool expect_connresult = true) {
  server_translator t(lim, expect_connresult);
  std::vector<std::string> events;
  for (const auto& c : chunks) {
    s2c_event e = t.feed(c);
    while (!std::holds_alternative<s2c::need_more>(e)) {
      if (auto* r = std::get_if<s2c::response>(&e)) {
        events.push_back("response " + short_hex(r->bytes));
      } else if (std::holds_alternative<s2c::connected>(e)) {
        events.push_back("connected");
      } else if (auto* rf = std::get_if<s2c::refused>(&e)) {
        events.push_back("refused " + std::to_string(rf->kse));
      } else if (std::holds_alternative<s2c::close_client>(e)) {
        events.push_back("close_client");
      } else {
        events.push_back("protocol_error " + std::string(std::get<s2c::protocol_error>(e).reason));
      }
      e = t.feed({});
    }
  }
  events.push_back(t.finished() ? "finished" : "open");
  return events;
}

template <class Drive>
std::vector<std::string> same_at_every_split(const bytes& input, Drive drive) {
  const auto chunkings = all_chunkings(input);
  const auto whole = drive(chunkings.front());
  for (const auto& chunks : chunkings) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(drive(chunks), whole);
  }
  return whole;
}

std::vector<std::string> client_all(const bytes& input, limits lim = {}) {
  return same_at_every_split(input, [&](const chunk_list& c) { return drive_client(c, lim); });
}

std::vector<std::string> server_all(const bytes& input, limits lim = {}) {
  return same_at_every_split(input, [&](const chunk_list& c) { return drive_server(c, lim); });
}

bytes post(const bytes& body) {
  return cat({b("POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"), body});
}

const bytes connresult_ok = {0x0A, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xF7, 0x00};

// docs/602sql.md, HTTP leg C>G and native leg G>S.
TEST(Sql602WorkedExample, ClientToServerByteForByte) {
  const bytes input = cat({b("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
                           {0xF1, 0x00, 0x00, 0x0B, 0x00},
                           b("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
                           {0xFF, 0x35, 0x35},
                           {0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEE}});
  // The spec spells the second POST out in hex; check our literal matches it.
  const bytes second_post = {0x50, 0x4F, 0x53, 0x54, 0x20, 0x2F, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E,
                             0x31, 0x0D, 0x0A, 0x43, 0x6F, 0x6E, 0x74, 0x65, 0x6E, 0x74, 0x2D, 0x4C, 0x65, 0x6E,
                             0x67, 0x74, 0x68, 0x3A, 0x20, 0x33, 0x0D, 0x0A, 0x0D, 0x0A, 0xFF, 0x35, 0x35};
  EXPECT_EQ(bytes(input.begin() + 43, input.begin() + 43 + 41), second_post);
  EXPECT_EQ(client_all(input), (std::vector<std::string>{
                                   "frame 0d 00 00 00 04 00 00 00 f1 00 00 0b 00",
                                   "frame 0b 00 00 00 02 00 00 00 ff 35 35",
                                   "close 09 00 00 00 00 00 00 00 ee",
                                   "finished",
                               }));
}

// docs/602sql.md, native leg S>G and HTTP leg G>C.
TEST(Sql602WorkedExample, ServerToClientByteForByte) {
  const bytes input = cat({connresult_ok, {0x0C, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0xFE, 0x00, 0x00, 0x00}});
  const bytes expected_response = {0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E, 0x31, 0x20, 0x32, 0x30, 0x30, 0x20, 0x4F,
                                   0x4B, 0x0D, 0x0A, 0x43, 0x6F, 0x6E, 0x74, 0x65, 0x6E, 0x74, 0x2D, 0x4C, 0x65, 0x6E,
                                   0x67, 0x74, 0x68, 0x3A, 0x20, 0x34, 0x0D, 0x0A, 0x0D, 0x0A, 0xFE, 0x00, 0x00, 0x00};
  EXPECT_EQ(server_all(input), (std::vector<std::string>{"connected", "response " + hex(expected_response), "open"}));
}

TEST(Sql602WorkedExample, CloseFrameBuilder) {
  EXPECT_EQ(hex(close_con_frame()), "09 00 00 00 00 00 00 00 ee");
  EXPECT_EQ(hex(connresult_frame(kse_connection)), "0a 00 00 00 01 00 00 00 f7 0f");
  const bytes keepalive_request = {0x35, 0x35};
  EXPECT_EQ(hex(encode_frame(data_type::request, keepalive_request)), "0b 00 00 00 02 00 00 00 ff 35 35");
}

TEST(Sql602Server, SplitAnswerOf20000Bytes) {
  bytes payload(20000);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<std::uint8_t>(i * 7);
  }
  const bytes input = cat({connresult_ok,
                           {0x89, 0x3E, 0x00, 0x00, 0x20, 0x4E, 0x00, 0x00, 0xFE},
                           bytes(payload.begin(), payload.begin() + 16000),
                           {0xA9, 0x0F, 0x00, 0x00, 0x20, 0x4E, 0x00, 0x00, 0xFE},
                           bytes(payload.begin() + 16000, payload.end())});
  const bytes expected = cat({b("HTTP/1.1 200 OK\r\nContent-Length: 20001\r\n\r\n"), {0xFE}, payload});
  const std::vector<std::string> want = {"connected", "response " + short_hex(expected), "open"};
  std::span<const std::uint8_t> in(input);
  EXPECT_EQ(drive_server({in}), want);
  for (const std::size_t cut : {10U, 11U, 18U, 19U, 20U, 16018U, 16019U, 16022U, 16027U, 16028U, 20027U}) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(drive_server({in.first(cut), in.subspan(cut)}), want);
  }
  chunk_list single;
  for (std::size_t i = 0; i < in.size(); ++i) {
    single.push_back(in.subspan(i, 1));
  }
  EXPECT_EQ(drive_server(single), want);
  // The stock server's single frame gives the same response.
  const bytes one_frame = cat({connresult_ok, {0x29, 0x4E, 0x00, 0x00, 0x20, 0x4E, 0x00, 0x00, 0xFE}, payload});
  EXPECT_EQ(drive_server({one_frame}), want);
}

TEST(Sql602Server, SplitMessageAtEverySplit) {
  // DT_ANSWER "00 00 07 AA" in frames of 1, 0, 3 payload bytes.
  const bytes input = cat({connresult_ok,
                           {0x0A, 0, 0, 0, 0x04, 0, 0, 0, 0xFE, 0x00},
                           {0x09, 0, 0, 0, 0x04, 0, 0, 0, 0xFE},
                           {0x0C, 0, 0, 0, 0x04, 0, 0, 0, 0xFE, 0x00, 0x07, 0xAA}});
  EXPECT_EQ(
      server_all(input),
      (std::vector<std::string>{
          "connected",
          "response " + hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), {0xFE, 0x00, 0x00, 0x07, 0xAA}})),
          "open"}));
}

TEST(Sql602Server, RequestWithProgressGivesThreeResponses) {
  const bytes nums = {0x11, 0, 0, 0, 0x08, 0, 0, 0, 0xFB, 1, 0, 0, 0, 2, 0, 0, 0};
  const bytes answer = {0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0, 0};
  const bytes input = cat({connresult_ok, nums, nums, answer});
  const std::string nums_resp =
      hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), {0xFB, 1, 0, 0, 0, 2, 0, 0, 0}}));
  EXPECT_EQ(server_all(input),
            (std::vector<std::string>{
                "connected", "response " + nums_resp, "response " + nums_resp,
                "response " + hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), {0xFE, 0, 0, 0}})), "open"}));
}

TEST(Sql602Server, UnsolicitedMessagesAreForwarded) {
  // DT_MESSAGE "hi\0" with no POST outstanding, DT_SERVERDOWN (native n = 0 -> body F6 00),
  // DT_KEEPALIVE and a second DT_CONNRESULT (both dropped), then DT_CLOSE_CON.
  const bytes input = cat({connresult_ok,
                           {0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xEF, 'h', 'i', 0x00},
                           {0x09, 0, 0, 0, 0, 0, 0, 0, 0xF0},
                           {0x0A, 0, 0, 0, 0x01, 0, 0, 0, 0xF7, 0x00},
                           {0x09, 0, 0, 0, 0, 0, 0, 0, 0xF6},
                           {0x09, 0, 0, 0, 0, 0, 0, 0, 0xEE},
                           {0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0, 0}});
  EXPECT_EQ(server_all(input),
            (std::vector<std::string>{
                "connected",
                "response " + hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), {0xEF, 'h', 'i', 0x00}})),
                "response " + hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), {0xF6, 0x00}})),
                "close_client",
                "finished",
            }));
}

TEST(Sql602Server, ConnectResultHandling) {
  EXPECT_EQ(server_all({0x0A, 0, 0, 0, 0x01, 0, 0, 0, 0xF7, 16}), (std::vector<std::string>{"refused 16", "finished"}));
  EXPECT_EQ(server_all({0x0B, 0, 0, 0, 0x02, 0, 0, 0, 0xF7, 0, 0}),
            (std::vector<std::string>{"refused 15", "finished"}));
  EXPECT_EQ(server_all({0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0, 0}),
            (std::vector<std::string>{"refused 15", "finished"}));
  EXPECT_EQ(server_all({0x05, 0, 0, 0, 0x01, 0, 0, 0, 0xF7, 0}), (std::vector<std::string>{"refused 15", "finished"}));
  // Without the connect-result stage the first frame is an ordinary message.
  const bytes answer = {0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0, 0};
  EXPECT_EQ(drive_server({answer}, {}, false),
            (std::vector<std::string>{
                "response " + hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), {0xFE, 0, 0, 0}})), "open"}));
}

TEST(Sql602Server, BadFramesAreProtocolErrors) {
  limits small;
  small.max_message = 100;
  auto run = [&](const bytes& frames) { return server_all(cat({connresult_ok, frames}), small); };
  EXPECT_EQ(run({0x08, 0, 0, 0, 0, 0, 0, 0, 0xFE}),
            (std::vector<std::string>{"connected", "protocol_error native frame total_len < 9", "finished"}));
  EXPECT_EQ(
      run({0x0C, 0, 0, 0, 0x02, 0, 0, 0, 0xFE, 0, 0, 0}),
      (std::vector<std::string>{"connected", "protocol_error native frame payload larger than msg_total", "finished"}));
  EXPECT_EQ(run({0x0A, 0, 0, 0, 101, 0, 0, 0, 0xFE, 0}),
            (std::vector<std::string>{"connected", "protocol_error native message above the cap", "finished"}));
  EXPECT_EQ(run({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}),
            (std::vector<std::string>{"connected", "protocol_error native message above the cap", "finished"}));
  // A split message interrupted by another type, or continued with another msg_total, or overrun.
  EXPECT_EQ(run({0x0A, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0x0A, 0, 0, 0, 0x03, 0, 0, 0, 0xFB, 0}),
            (std::vector<std::string>{"connected", "protocol_error split native message interrupted by another message",
                                      "finished"}));
  EXPECT_EQ(run({0x0A, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0x0A, 0, 0, 0, 0x04, 0, 0, 0, 0xFE, 0}),
            (std::vector<std::string>{"connected", "protocol_error split native message interrupted by another message",
                                      "finished"}));
  EXPECT_EQ(
      run({0x0A, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0x0C, 0, 0, 0, 0x03, 0, 0, 0, 0xFE, 0, 0, 0}),
      (std::vector<std::string>{"connected", "protocol_error split native message longer than msg_total", "finished"}));
  EXPECT_EQ(check_frame_header(frame_header{9, 0, 0xFE}), frame_check::ok);
  EXPECT_EQ(check_frame_header(frame_header{0, 0, 0xFE}), frame_check::too_short);
  EXPECT_EQ(check_frame_header(frame_header{default_max_message + 9, default_max_message, 0xFE}), frame_check::ok);
  EXPECT_EQ(check_frame_header(frame_header{default_max_message + 10, default_max_message + 1, 0xFE}),
            frame_check::too_large);
}

TEST(Sql602Client, CrLfBetweenRequestsIsSkipped) {
  EXPECT_EQ(client_all(cat({b("\r\n"), post({0xF1, 0, 0, 0x0B, 0}), b("\r\n\r\n"), post({0xFA})})),
            (std::vector<std::string>{"frame 0d 00 00 00 04 00 00 00 f1 00 00 0b 00",
                                      "frame 09 00 00 00 00 00 00 00 fa", "boundary"}));
}

TEST(Sql602Client, PartialInputIsNotABoundary) {
  EXPECT_EQ(drive_client({b("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n\xFF")}),
            (std::vector<std::string>{"partial"}));
  EXPECT_EQ(drive_client({b("PO")}), (std::vector<std::string>{"partial"}));
  EXPECT_EQ(drive_client({bytes{0x09, 0x00}}), (std::vector<std::string>{"partial"}));
  EXPECT_EQ(drive_client({b("\r\n")}), (std::vector<std::string>{"boundary"}));
}

TEST(Sql602Client, ExtraHeadersAndOtherTargetsAreAccepted) {
  // The stock server reads but does not check the target and other fields (5.5).
  EXPECT_EQ(client_all(b("POST /x HTTP/1.0\r\nHost: db\r\nContent-Length: 1\r\n\r\n\xEE")),
            (std::vector<std::string>{"frame 09 00 00 00 00 00 00 00 ee", "boundary"}));
}

TEST(Sql602Client, MalformedInputGetsSpecBytes) {
  const std::string bad = "reject HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n";
  const std::string method = "reject HTTP/1.1 405 Method not allowed\r\n\r\n";
  EXPECT_EQ(client_all(b("GET / HTTP/1.1\r\n\r\n")), (std::vector<std::string>{method, "finished"}));
  EXPECT_EQ(client_all(b("PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\n\xFF")),
            (std::vector<std::string>{method, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\n\r\n")), (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xFF\r\n0\r\n\r\n")),
            (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n\xED\x00")),
            (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n")), (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n\xF1")).front(), "partial");
  // Non-HTTP bytes other than the close frame.
  EXPECT_EQ(client_all(bytes{0x0A, 0, 0, 0, 1, 0, 0, 0, 0xF7, 0}), (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(bytes{0x09, 0, 0, 0, 0, 0, 0, 0, 0xFF}), (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(client_all(bytes{0x00}), (std::vector<std::string>{bad, "finished"}));
  // A good POST, then garbage: the frame comes first, then the reject.
  EXPECT_EQ(client_all(cat({post({0xFF, 0x35}), b("\x01")})),
            (std::vector<std::string>{"frame 0a 00 00 00 01 00 00 00 ff 35", bad, "finished"}));
}

TEST(Sql602Client, CapsOnHeaderAndBody) {
  limits small;
  small.header_limit = 64;
  small.max_message = 4;
  const std::string bad = "reject HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(client_all(b("POST / HTTP/1.1\r\nX: " + std::string(80, 'a') + "\r\nContent-Length: 1\r\n\r\n\xFF"), small),
            (std::vector<std::string>{bad, "finished"}));
  // n = 4 is allowed, n = 5 is not (Content-Length counts the type byte).
  EXPECT_EQ(drive_client({post({0xFF, 1, 2, 3, 4})}, small),
            (std::vector<std::string>{"frame 0d 00 00 00 04 00 00 00 ff 01 02 03 04", "boundary"}));
  EXPECT_EQ(drive_client({post({0xFF, 1, 2, 3, 4, 5})}, small), (std::vector<std::string>{bad, "finished"}));
  // The default cap is 64 MiB: a declared 64 MiB + 2 body is refused before any byte of it arrives.
  EXPECT_EQ(drive_client({b("POST / HTTP/1.1\r\nContent-Length: 67108866\r\n\r\n")}),
            (std::vector<std::string>{bad, "finished"}));
  EXPECT_EQ(drive_client({b("POST / HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n")}),
            (std::vector<std::string>{"partial"}));
}

TEST(Sql602Client, BytesAfterCloseFrameAreIgnored) {
  EXPECT_EQ(drive_client({bytes{0x09, 0, 0, 0, 0, 0, 0, 0, 0xEE, 'P', 'O'}, b("ST")}),
            (std::vector<std::string>{"close 09 00 00 00 00 00 00 00 ee", "finished"}));
  client_translator t;
  EXPECT_FALSE(t.close_frame_seen());
  (void)t.feed(close_con_frame());
  EXPECT_TRUE(t.close_frame_seen());
}

TEST(Sql602Detect, RecognisesTunnelFirstRequest) {
  auto detect = [](const bytes& input) {
    request_head_reader reader;
    auto r = reader.feed(input);
    if (!std::holds_alternative<parsed<request_head>>(r)) {
      return std::string("no head");
    }
    switch (detect_tunnel(std::get<parsed<request_head>>(r).value, reader.leftover())) {
      case detect_result::tunnel: return std::string("tunnel");
      case detect_result::not_tunnel: return std::string("not_tunnel");
      case detect_result::need_more: return std::string("need_more");
    }
    return std::string("?");
  };
  EXPECT_EQ(detect(post({0xF1, 0, 0, 0x0B, 0})), "tunnel");
  EXPECT_EQ(detect(b("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")), "need_more");
  EXPECT_EQ(detect(post(b("{json}"))), "not_tunnel");
  EXPECT_EQ(detect(cat({b("POST /api HTTP/1.1\r\nContent-Length: 1\r\n\r\n"), {0xF1}})), "not_tunnel");
  EXPECT_EQ(detect(b("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), "not_tunnel");
  EXPECT_EQ(detect(b("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), "not_tunnel");
  EXPECT_EQ(detect(b("GET / HTTP/1.1\r\n\r\n")), "not_tunnel");
  EXPECT_EQ(detect(cat({b("POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\n\r\n"), {0xF1}})), "not_tunnel");
  EXPECT_EQ(detect(b("CONNECT db:5002 HTTP/1.1\r\n\r\n")), "not_tunnel");
}

TEST(Sql602Detect, ReplayThroughClientTranslator) {
  // The proxy detects with request_head_reader, then replays buffered() into the translator.
  request_head_reader reader;
  const bytes input = cat({post({0xF1, 0, 0, 0x0B, 0}), post({0xFF, 0x35, 0x35})});
  ASSERT_TRUE(std::holds_alternative<parsed<request_head>>(reader.feed(input)));
  client_translator t;
  auto e = t.feed(reader.buffered());
  ASSERT_TRUE(std::holds_alternative<c2s::frame>(e));
  EXPECT_EQ(hex(std::get<c2s::frame>(e).bytes), "0d 00 00 00 04 00 00 00 f1 00 00 0b 00");
  e = t.feed({});
  ASSERT_TRUE(std::holds_alternative<c2s::frame>(e));
  EXPECT_EQ(hex(std::get<c2s::frame>(e).bytes), "0b 00 00 00 02 00 00 00 ff 35 35");
  EXPECT_TRUE(std::holds_alternative<c2s::need_more>(t.feed({})));
}

TEST(Sql602Replies, ConnectFailureExactBytes) {
  EXPECT_EQ(hex(connect_failure_reply(kse_connection, true)),
            hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), {0xFE, 0x03, 0x02, 0x00}})));  // 515
  EXPECT_EQ(hex(connect_failure_reply(255, true)),
            hex(cat({b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), {0xFE, 0xF3, 0x02, 0x00}})));  // 755
  EXPECT_EQ(text(connect_failure_reply(16, false)),
            "HTTP/1.1 450 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 46\r\n\r\n"
            "602SQL server refused the connection (KSE 16)\n");
  EXPECT_EQ(text(connect_failure_reply(kse_ip_filter, false)),
            "HTTP/1.1 403 Forbidden (from your IP addresss)\r\nContent-Type: text/plain\r\nContent-Length: 46\r\n\r\n"
            "602SQL server refused the connection (KSE 45)\n");
  EXPECT_EQ(text(method_not_allowed_reply()), "HTTP/1.1 405 Method not allowed\r\n\r\n");
  EXPECT_EQ(text(bad_request_reply()), "HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

TEST(Sql602Frames, DecodeHeader) {
  const bytes h = {0x89, 0x3E, 0x00, 0x00, 0x20, 0x4E, 0x00, 0x00, 0xFE};
  const frame_header f = decode_frame_header(std::span<const std::uint8_t, 9>(h.data(), 9));
  EXPECT_EQ(f.total_len, 16009u);
  EXPECT_EQ(f.msg_total, 20000u);
  EXPECT_EQ(f.type, 0xFE);
  EXPECT_EQ(f.payload_size(), 16000u);
}

}  // namespace
}  // namespace edgerelay::tunnel::sql602
