// Unit tests of the request-head reader (every split offset, leftover bytes, 431) and the reply bytes.
#include "tunnel/http_connect_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

#include "tests/unit/tunnel/tunnel_split.hpp"

namespace edgerelay::tunnel {
namespace {

using tunnel_test::all_chunkings;
using tunnel_test::b;
using tunnel_test::bytes;
using tunnel_test::cat;
using tunnel_test::chunk_list;
using tunnel_test::describe;
using tunnel_test::text;

const char* form_name(target_form f) {
  switch (f) {
    case target_form::origin: return "origin";
    case target_form::absolute: return "absolute";
    case target_form::authority: return "authority";
    case target_form::asterisk: return "asterisk";
  }
  return "?";
}

/// What a driver sees, as one string: the result, and the bytes the tunnel would get (leftover plus
/// every chunk fed after the head completed).
std::string drive(const chunk_list& chunks, request_reader_options options = {}) {
  request_head_reader reader(options);
  std::string out = "need_more";
  bytes tunnel;
  bool done = false;
  for (const auto& c : chunks) {
    if (done) {
      tunnel.insert(tunnel.end(), c.begin(), c.end());
      continue;
    }
    auto r = reader.feed(c);
    if (auto* e = std::get_if<http_error>(&r)) {
      return "error " + std::to_string(e->status) + " " + text(e->reply);
    }
    if (auto* p = std::get_if<parsed<request_head>>(&r)) {
      const request_head& h = p->value;
      out = "done consumed=" + std::to_string(p->consumed) + " method=" + h.method + " target=" + h.target +
            " version=" + std::to_string(h.version) + " form=" + form_name(h.form) +
            " authority=" + to_string(h.authority) + " path=" + h.path + " fields=" + std::to_string(h.fields.size());
      const auto left = reader.leftover();
      tunnel.assign(left.begin(), left.end());
      done = true;
    }
  }
  return out + " tunnel=" + text(tunnel);
}

/// Same transcript for the whole input, every two-way split and byte by byte.
std::string drive_all_splits(const bytes& input, request_reader_options options = {}) {
  const auto chunkings = all_chunkings(input);
  const std::string whole = drive(chunkings.front(), options);
  for (const auto& chunks : chunkings) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(drive(chunks, options), whole);
  }
  return whole;
}

parsed<request_head> parse_ok(const bytes& input) {
  request_head_reader reader;
  auto r = reader.feed(input);
  EXPECT_TRUE(std::holds_alternative<parsed<request_head>>(r));
  if (auto* p = std::get_if<parsed<request_head>>(&r)) {
    return std::move(*p);
  }
  return {};
}

unsigned parse_status(const bytes& input) {
  request_head_reader reader;
  auto r = reader.feed(input);
  if (auto* e = std::get_if<http_error>(&r)) {
    return e->status;
  }
  return std::holds_alternative<need_more>(r) ? 1 : 0;
}

TEST(HttpConnectReader, ConnectAtEverySplitKeepsOptimisticData) {
  const bytes input =
      b("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
        "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n\x16\x03\x01 hello");
  EXPECT_EQ(drive_all_splits(input),
            "done consumed=104 method=CONNECT target=example.com:443 version=11 form=authority "
            "authority=example.com:443 path= fields=2 tunnel=\x16\x03\x01 hello");
}

TEST(HttpConnectReader, ConnectFieldsExtracted) {
  const auto p =
      parse_ok(b("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n"
                 "Proxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\n"
                 "Connection: x-a\r\nconnection: x-b\r\nUpgrade: foo\r\n\r\n"));
  const request_head& h = p.value;
  EXPECT_TRUE(h.is_connect());
  EXPECT_EQ(h.form, target_form::authority);
  EXPECT_EQ(h.authority, (authority_target{"2001:db8::1", 8443, true}));
  EXPECT_EQ(to_string(h.authority), "[2001:db8::1]:8443");
  EXPECT_EQ(h.host.value_or(""), "[2001:db8::1]:8443");
  EXPECT_EQ(h.proxy_authorization.value_or(""), "Basic YTpi");
  EXPECT_EQ(h.proxy_connection.value_or(""), "keep-alive");
  EXPECT_EQ(h.connection.value_or(""), "x-a, x-b");
  EXPECT_EQ(h.upgrade.value_or(""), "foo");
  EXPECT_FALSE(h.transfer_encoding.has_value());
  EXPECT_EQ(h.field("PROXY-AUTHORIZATION").value_or(""), "Basic YTpi");
  EXPECT_FALSE(h.field("Via").has_value());
  EXPECT_TRUE(h.keep_alive);
}

TEST(HttpConnectReader, ConnectTargets) {
  struct row {
    const char* target;
    unsigned status;  // 0 = accepted
  };
  const row rows[] = {
      {"a.example:1", 0},
      {"a.example:65535", 0},
      {"10.0.0.1:80", 0},
      {"[::1]:22", 0},
      {"a_b.example:080", 0},
      {"a.example", 400},
      {"a.example:", 400},
      {"a.example:0", 400},
      {"a.example:65536", 400},
      {"a.example:99999", 400},
      {"a.example:123456", 400},
      {"a.example:8x", 400},
      {"::1:22", 400},
      {"[::1]", 400},
      {"[::1]22", 400},
      {"[zz::1]:22", 400},
      {"[fe80::1%25eth0]:22", 400},
      {":443", 400},
      {"a@b:443", 400},
      {"/path", 400},
      {"http://a.example:80/", 400},
      {"a.example:+80", 400},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.target);
    EXPECT_EQ(parse_status(b(std::string("CONNECT ") + r.target + " HTTP/1.1\r\n\r\n")), r.status);
  }
}

TEST(HttpConnectReader, ConnectRefusesInvalidHostNameAtEverySplit) {
  EXPECT_EQ(drive_all_splits(b("CONNECT bad%name:80 HTTP/1.1\r\nHost: bad%name:80\r\n\r\n")),
            "error 400 HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
            "Connection: close\r\n\r\n400 Bad Request\n");
}

TEST(HttpConnectReader, ConnectRefusesInvalidHostNames) {
  const std::string n253 =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd');
  for (const std::string& host : {std::string("bad%name"), std::string("a~b"), std::string(64, 'l') + ".example",
                                  n253 + "x", std::string(254, 'n'), std::string("a..b"), std::string("256.1.1.1"),
                                  std::string("0x"), std::string("1.2.3.4.5"), std::string("08"), std::string("a.1")}) {
    SCOPED_TRACE(host);
    EXPECT_EQ(parse_status(b("CONNECT " + host + ":80 HTTP/1.1\r\n\r\n")), 400u);
  }
  EXPECT_EQ(parse_status(b("CONNECT " + n253 + ":80 HTTP/1.1\r\n\r\n")), 0u);
  EXPECT_EQ(parse_status(b("CONNECT " + n253 + ".:80 HTTP/1.1\r\n\r\n")), 0u);
}

TEST(HttpConnectReader, ConnectNumericHostBecomesDottedQuad) {
  const std::pair<const char*, const char*> rows[] = {
      {"2130706433", "127.0.0.1"}, {"0x7f.1", "127.0.0.1"}, {"127.1", "127.0.0.1"},
      {"0177.0.0.1", "127.0.0.1"}, {"0", "0.0.0.0"},        {"0x0", "0.0.0.0"},
      {"0.0.0.0", "0.0.0.0"},      {"10.0.0.1", "10.0.0.1"}};
  for (const auto& [sent, canonical] : rows) {
    SCOPED_TRACE(sent);
    const std::string target = std::string(sent) + ":15930";
    EXPECT_EQ(drive_all_splits(b("CONNECT " + target + " HTTP/1.1\r\n\r\n")),
              "done consumed=" + std::to_string(8 + target.size() + 13) + " method=CONNECT target=" + target +
                  " version=11 form=authority authority=" + canonical + ":15930 path= fields=0 tunnel=");
  }
}

TEST(ParseAuthority, RefusesBytesOutsideHostNames) {
  using namespace std::string_view_literals;
  for (const std::string_view bad :
       {"a\x01b:80"sv, "a\0b:80"sv, "a b:80"sv, "a/b:80"sv, "b\xC3\xBC:80"sv, "a\x7f:80"sv, "::1:80"sv}) {
    EXPECT_FALSE(parse_authority(bad).has_value()) << tunnel_test::hex(tunnel_test::b(bad));
  }
  EXPECT_EQ(parse_authority("2130706433", false), (authority_target{"127.0.0.1", 80, false}));
  EXPECT_EQ(parse_authority("Example.COM.:8080"), (authority_target{"Example.COM.", 8080, false}));
}

TEST(HttpConnectReader, ConnectWithContentIsRejected) {
  EXPECT_EQ(parse_status(b("CONNECT a:1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")), 400u);
  EXPECT_EQ(parse_status(b("CONNECT a:1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("CONNECT a:1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), 0u);
}

TEST(HttpConnectReader, AbsoluteFormAtEverySplit) {
  const bytes input = b("GET http://Example.COM/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\nGET /next");
  EXPECT_EQ(drive_all_splits(input),
            "done consumed=62 method=GET target=http://Example.COM/a/b?x=1 version=11 form=absolute "
            "authority=Example.COM:80 path=/a/b?x=1 fields=1 tunnel=GET /next");
}

TEST(HttpConnectReader, AbsoluteFormVariants) {
  auto path_of = [](const char* target) {
    const auto p = parse_ok(b(std::string("GET ") + target + " HTTP/1.1\r\n\r\n"));
    return to_string(p.value.authority) + " " + p.value.path;
  };
  EXPECT_EQ(path_of("http://h"), "h:80 /");
  EXPECT_EQ(path_of("HTTP://h:8080"), "h:8080 /");
  EXPECT_EQ(path_of("http://h:/x"), "h:80 /x");
  EXPECT_EQ(path_of("http://h?q=1"), "h:80 /?q=1");
  EXPECT_EQ(path_of("http://[::1]:81/p"), "[::1]:81 /p");
  EXPECT_EQ(parse_status(b("GET https://h/ HTTP/1.1\r\n\r\n")), 501u);
  EXPECT_EQ(parse_status(b("GET ftp://h/ HTTP/1.1\r\n\r\n")), 501u);
  EXPECT_EQ(parse_status(b("GET http://u:p@h/ HTTP/1.1\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("GET http://h/#frag HTTP/1.1\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("GET http:///x HTTP/1.1\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("GET http://h:0/ HTTP/1.1\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("GET 1http://h/ HTTP/1.1\r\n\r\n")), 400u);
  EXPECT_EQ(parse_status(b("GET h:80 HTTP/1.1\r\n\r\n")), 400u);
}

TEST(HttpConnectReader, OriginAndAsteriskForms) {
  const auto p = parse_ok(b("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n\xF1\x00\x00\x0B\x00"));
  EXPECT_EQ(p.value.form, target_form::origin);
  EXPECT_EQ(p.value.path, "/");
  EXPECT_EQ(p.value.content_length.value_or(0), 5u);
  EXPECT_FALSE(p.value.host.has_value());  // no Host needed (602SQL tunnel)
  EXPECT_EQ(p.consumed, 38u);
  EXPECT_EQ(parse_ok(b("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")).value.form, target_form::asterisk);
  EXPECT_EQ(parse_status(b("GET * HTTP/1.1\r\n\r\n")), 400u);
}

TEST(HttpConnectReader, MalformedHeadsGive400) {
  const char* inputs[] = {
      "CONNECT\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Field: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nProxy-Authorization: a\r\nProxy-Authorization: b\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "G\x01T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n",
  };
  for (const char* in : inputs) {
    SCOPED_TRACE(in);
    EXPECT_EQ(parse_status(b(in)), 400u);
  }
}

TEST(HttpConnectReader, ErrorReplyIsComplete) {
  request_head_reader reader;
  auto r = reader.feed(b("CONNECT nope HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<http_error>(r));
  EXPECT_EQ(std::get<http_error>(r).reply, error_reply(400));
  EXPECT_TRUE(reader.leftover().empty());
  // Finished: more input is refused, not parsed.
  auto again = reader.feed(b("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(std::holds_alternative<http_error>(again));
}

TEST(HttpConnectReader, HeaderSectionOver64KiBGives431) {
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n";
  const bytes input = b(big);
  EXPECT_EQ(parse_status(input), 431u);
  // The limit is enforced before the terminator arrives, so a slow client cannot grow the buffer.
  EXPECT_EQ(parse_status(bytes(input.begin(), input.begin() + 66000)), 431u);
  request_head_reader reader;
  auto r = reader.feed(input);
  ASSERT_TRUE(std::holds_alternative<http_error>(r));
  EXPECT_EQ(text(std::get<http_error>(r).reply), text(error_reply(431)));
  // Fed in 1000-byte chunks it fails the same way.
  request_head_reader chunked_reader;
  head_result last = need_more{};
  for (std::size_t i = 0; i < input.size() && std::holds_alternative<need_more>(last); i += 1000) {
    last = chunked_reader.feed(
        std::span<const std::uint8_t>(input).subspan(i, std::min<std::size_t>(1000, input.size() - i)));
  }
  ASSERT_TRUE(std::holds_alternative<http_error>(last));
  EXPECT_EQ(std::get<http_error>(last).status, 431u);
}

TEST(HttpConnectReader, HeaderJustUnderLimitIsAccepted) {
  const std::string head = "GET / HTTP/1.1\r\nX-Big: " + std::string(60000, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse_status(b(head)), 0u);
  request_reader_options small;
  small.header_limit = 64;
  request_head_reader reader(small);
  auto r = reader.feed(b("GET / HTTP/1.1\r\nX-Big: " + std::string(100, 'a') + "\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<http_error>(r));
  EXPECT_EQ(std::get<http_error>(r).status, 431u);
}

TEST(HttpConnectReader, LimitIsOnTheWholeHeadAtEverySplit) {
  // Beast measures its limit per stage; the reader's is the whole head, CRLFCRLF included.
  request_reader_options small;
  small.header_limit = 64;
  const std::string at_limit = "GET / HTTP/1.1\r\nX: " + std::string(41, 'a') + "\r\n\r\n";
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_EQ(drive_all_splits(b(at_limit + "tail"), small).substr(0, 19), "done consumed=64 me");
  const std::string over = "GET / HTTP/1.1\r\nX: " + std::string(42, 'a') + "\r\n\r\n";
  EXPECT_EQ(drive_all_splits(b(over), small), "error 431 " + text(error_reply(431)));
  // A start line alone above the limit.
  EXPECT_EQ(drive_all_splits(b("GET /" + std::string(80, 'p') + " HTTP/1.1\r\n\r\n"), small),
            "error 431 " + text(error_reply(431)));
}

TEST(HttpConnectReader, LargeDeclaredBodyIsNotRefusedAtHead) {
  const auto p = parse_ok(b("POST http://h/ HTTP/1.1\r\nContent-Length: 100000000000\r\n\r\nab"));
  EXPECT_EQ(p.value.content_length.value_or(0), 100000000000u);
}

TEST(HttpConnectReader, KeepAliveFollowsVersionAndConnection) {
  EXPECT_TRUE(parse_ok(b("GET http://h/ HTTP/1.1\r\n\r\n")).value.keep_alive);
  EXPECT_FALSE(parse_ok(b("GET http://h/ HTTP/1.1\r\nConnection: close\r\n\r\n")).value.keep_alive);
  EXPECT_FALSE(parse_ok(b("GET http://h/ HTTP/1.0\r\n\r\n")).value.keep_alive);
  EXPECT_TRUE(parse_ok(b("GET http://h/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")).value.keep_alive);
}

TEST(HttpConnectReader, UnclassifiedModeSkipsTargetChecks) {
  request_reader_options raw;
  raw.classify_target = false;
  request_head_reader reader(raw);
  auto r = reader.feed(b("CONNECT nope HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<parsed<request_head>>(r));
  EXPECT_EQ(std::get<parsed<request_head>>(r).value.method, "CONNECT");
}

TEST(HttpConnectReader, BufferedKeepsEverything) {
  request_head_reader reader;
  const bytes first = b("POST / HTTP/1.1\r\nContent-Len");
  const bytes second = b("gth: 1\r\n\r\n\xF1zz");
  EXPECT_TRUE(std::holds_alternative<need_more>(reader.feed(first)));
  EXPECT_TRUE(std::holds_alternative<parsed<request_head>>(reader.feed(second)));
  EXPECT_EQ(text(reader.buffered()), text(cat({first, second})));
  EXPECT_EQ(text(reader.leftover()), "\xF1zz");
}

TEST(HttpConnectReply, ConnectEstablishedExactBytes) {
  EXPECT_EQ(text(connect_established_reply()), "HTTP/1.1 200 Connection established\r\n\r\n");
}

TEST(HttpConnectReply, ErrorRepliesExactBytes) {
  auto expect = [](unsigned status, const std::string& reason, const std::string& extra) {
    const std::string body = std::to_string(status) + " " + reason + "\n";
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n" + extra +
           "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  };
  EXPECT_EQ(text(error_reply(400)),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
            "Connection: close\r\n\r\n400 Bad Request\n");
  EXPECT_EQ(text(error_reply(407)),
            "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"edgerelay\"\r\n"
            "Content-Type: text/plain\r\nContent-Length: 34\r\nConnection: close\r\n\r\n"
            "407 Proxy Authentication Required\n");
  EXPECT_EQ(text(error_reply(405)),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Type: text/plain\r\n"
            "Content-Length: 23\r\nConnection: close\r\n\r\n405 Method Not Allowed\n");
  EXPECT_EQ(text(error_reply(403)), expect(403, "Forbidden", ""));
  EXPECT_EQ(text(error_reply(404)), expect(404, "Not Found", ""));
  EXPECT_EQ(text(error_reply(431)), expect(431, "Request Header Fields Too Large", ""));
  EXPECT_EQ(text(error_reply(501)), expect(501, "Not Implemented", ""));
  EXPECT_EQ(text(error_reply(502)), expect(502, "Bad Gateway", ""));
  EXPECT_EQ(text(error_reply(503)), expect(503, "Service Unavailable", ""));
  EXPECT_EQ(text(error_reply(504)), expect(504, "Gateway Timeout", ""));
  EXPECT_EQ(text(error_reply(299)), expect(500, "Internal Server Error", ""));
}

}  // namespace
}  // namespace edgerelay::tunnel
