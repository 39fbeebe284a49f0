// Unit tests of forward proxying: head rewriting, the response-head reader and body tracking at every split.
#include "tunnel/forward_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/tunnel/tunnel_split.hpp"

namespace edgerelay::tunnel {
namespace {

using tunnel_test::all_chunkings;
using tunnel_test::b;
using tunnel_test::bytes;
using tunnel_test::chunk_list;
using tunnel_test::describe;
using tunnel_test::text;

request_head head_of(const std::string& raw) {
  request_head_reader reader;
  auto r = reader.feed(b(raw));
  EXPECT_TRUE(std::holds_alternative<parsed<request_head>>(r)) << raw;
  if (auto* p = std::get_if<parsed<request_head>>(&r)) {
    return std::move(p->value);
  }
  return {};
}

TEST(ForwardRequest, RewritesToOriginFormAndDropsHopByHop) {
  const request_head h = head_of(
      "GET http://example.com:8080/a?b=1 HTTP/1.1\r\nHost: wrong.example\r\nUser-Agent: t\r\n"
      "Proxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\nConnection: X-Hop, keep-alive\r\n"
      "Keep-Alive: timeout=5\r\nX-Hop: secret\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
      "Accept: */*\r\nVia: 1.0 fred\r\n\r\n");
  EXPECT_EQ(text(build_forward_request(h, true)),
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\nVia: 1.0 fred\r\n"
            "Via: 1.1 edgerelay\r\n\r\n");
}

TEST(ForwardRequest, SetsHostFromUriWhenMissing) {
  EXPECT_EQ(text(build_forward_request(head_of("GET http://h.example HTTP/1.1\r\n\r\n"), true)),
            "GET / HTTP/1.1\r\nHost: h.example\r\nVia: 1.1 edgerelay\r\n\r\n");
  EXPECT_EQ(text(build_forward_request(head_of("GET http://[::1]:81/x HTTP/1.1\r\n\r\n"), true)),
            "GET /x HTTP/1.1\r\nHost: [::1]:81\r\nVia: 1.1 edgerelay\r\n\r\n");
}

unsigned status_of(const std::string& raw) {
  request_head_reader reader;
  auto r = reader.feed(b(raw));
  const auto* e = std::get_if<http_error>(&r);
  return e != nullptr ? e->status : 0;
}

/// What a request reader fed `chunks` in order ends with: the error reply's bytes, "parsed", or
/// "need_more".
template <class Chunks>
std::string request_outcome(const Chunks& chunks) {
  request_head_reader reader;
  for (const auto& c : chunks) {
    auto r = reader.feed(c);
    if (auto* e = std::get_if<http_error>(&r)) {
      return text(e->reply);
    }
    if (std::holds_alternative<parsed<request_head>>(r)) {
      return "parsed";
    }
  }
  return "need_more";
}

TEST(ForwardRequest, RefusesInvalidUrlHost) {
  // Exact bytes a client would send and get back; the whole head at every split.
  const bytes in =
      b("GET http://a\x01"
        "b/ HTTP/1.1\r\nHost: a\r\n\r\n");
  const std::string expected_reply =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
      "400 Bad Request\n";
  for (const auto& chunks : all_chunkings(in)) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(request_outcome(chunks), expected_reply);
  }
  // Hosts Beast lets through in a request-target but that are no host name or address.
  for (const std::string& host : std::vector<std::string>{"bad%name", "bad%00name", "a~b", "0x", "256.1.1.1",
                                                          "1.2.3.4.5", "a..b", std::string(64, 'l') + ".example"}) {
    SCOPED_TRACE(host);
    EXPECT_EQ(status_of("GET http://" + host + "/ HTTP/1.1\r\n\r\n"), 400u);
    EXPECT_EQ(status_of("GET http://" + host + ":8080/x HTTP/1.1\r\n\r\n"), 400u);
  }
}

TEST(ForwardRequest, NumericUrlHostIsSentAsDottedQuad) {
  const request_head h = head_of("GET http://2130706433:8080/x HTTP/1.1\r\nHost: 2130706433:8080\r\n\r\n");
  EXPECT_EQ(h.authority, (authority_target{"127.0.0.1", 8080, false}));
  EXPECT_EQ(text(build_forward_request(h, true)),
            "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nVia: 1.1 edgerelay\r\n\r\n");
  EXPECT_EQ(head_of("GET http://0x7f.1/ HTTP/1.1\r\n\r\n").authority, (authority_target{"127.0.0.1", 80, false}));
  EXPECT_EQ(head_of("GET http://0/ HTTP/1.1\r\n\r\n").authority, (authority_target{"0.0.0.0", 80, false}));
}

TEST(ForwardRequest, ConnectionNamingAFramingFieldGives400) {
  const std::string reply400 =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
      "400 Bad Request\n";
  for (const std::string& raw :
       {std::string("POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: Content-Length\r\n"
                    "Content-Length: 5\r\n\r\nhello"),
        std::string(
            "POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\nProxy-Connection: keep-alive, Transfer-Encoding\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        std::string("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: host\r\n\r\n"),
        std::string("CONNECT a.example:443 HTTP/1.1\r\nConnection: Host\r\n\r\n")}) {
    const bytes in = b(raw);  // all_chunkings returns views into it
    for (const auto& chunks : all_chunkings(in)) {
      SCOPED_TRACE(describe(chunks) + " in " + raw);
      EXPECT_EQ(request_outcome(chunks), reply400);
    }
  }
}

TEST(ForwardRequest, KeepsBodyFramingFields) {
  const request_head chunked = head_of(
      "POST http://h/u HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nContent-Type: a/b\r\n\r\n");
  EXPECT_EQ(text(build_forward_request(chunked, false)),
            "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: a/b\r\nVia: 1.1 edgerelay\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_EQ(request_body_framing(chunked), (body_framing{body_kind::chunked, 0}));
  const request_head sized = head_of("PUT http://h/u HTTP/1.0\r\nContent-Length: 12\r\n\r\n");
  EXPECT_EQ(text(build_forward_request(sized, true)),
            "PUT /u HTTP/1.0\r\nHost: h\r\nContent-Length: 12\r\nVia: 1.0 edgerelay\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(request_body_framing(sized), (body_framing{body_kind::content_length, 12}));
  EXPECT_EQ(request_body_framing(head_of("GET http://h/ HTTP/1.1\r\n\r\n")), (body_framing{body_kind::none, 0}));
}

TEST(ForwardRequest, HopByHopNames) {
  EXPECT_TRUE(is_hop_by_hop("connection", ""));
  EXPECT_TRUE(is_hop_by_hop("PROXY-AUTHORIZATION", ""));
  EXPECT_TRUE(is_hop_by_hop("X-Foo", "close, x-foo"));
  EXPECT_FALSE(is_hop_by_hop("X-Foo", "close, x-foobar"));
  EXPECT_FALSE(is_hop_by_hop("Host", ""));
  EXPECT_FALSE(is_hop_by_hop("Content-Length", "keep-alive"));
}

/// Response reader transcript: result plus the bytes left for the body.
std::string drive_response(const chunk_list& chunks, std::string_view method) {
  response_head_reader reader(method);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    auto r = reader.feed(chunks[i]);
    if (auto* e = std::get_if<http_error>(&r)) {
      return "error " + std::to_string(e->status);
    }
    if (auto* p = std::get_if<parsed<response_head>>(&r)) {
      const response_head& h = p->value;
      std::string out = "status=" + std::to_string(h.status) + " reason=" + h.reason +
                        " consumed=" + std::to_string(p->consumed) +
                        " kind=" + std::to_string(static_cast<int>(h.framing.kind)) +
                        " len=" + std::to_string(h.framing.length) + " keep=" + (h.keep_alive ? "1" : "0");
      // leftover() plus the chunks after the head: the body bytes the driver passes on.
      bytes rest(reader.leftover().begin(), reader.leftover().end());
      for (std::size_t j = i + 1; j < chunks.size(); ++j) {
        rest.insert(rest.end(), chunks[j].begin(), chunks[j].end());
      }
      return out + " body=" + text(rest);
    }
  }
  return "need_more";
}

std::string response_all_splits(const std::string& raw, std::string_view method = "GET") {
  const bytes input = b(raw);
  const auto chunkings = all_chunkings(input);
  const std::string whole = drive_response(chunkings.front(), method);
  for (const auto& chunks : chunkings) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(drive_response(chunks, method), whole);
  }
  return whole;
}

TEST(ForwardResponse, FramingAtEverySplit) {
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP"),
            "status=200 reason=OK consumed=38 kind=1 len=5 keep=1 body=helloHTTP");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "status=200 reason=OK consumed=47 kind=2 len=0 keep=1 body=5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(response_all_splits("HTTP/1.0 200 OK\r\n\r\nall of it"),
            "status=200 reason=OK consumed=19 kind=3 len=0 keep=0 body=all of it");
}

TEST(ForwardResponse, NoBodyCases) {
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"),
            "status=200 reason=OK consumed=38 kind=0 len=0 keep=1 body=");
  EXPECT_EQ(response_all_splits("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1"),
            "status=204 reason=No Content consumed=27 kind=0 len=0 keep=1 body=HTTP/1.1");
  EXPECT_EQ(response_all_splits("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
            "status=304 reason=Not Modified consumed=49 kind=0 len=0 keep=1 body=");
  EXPECT_EQ(response_all_splits("HTTP/1.1 100 Continue\r\n\r\n"),
            "status=100 reason=Continue consumed=25 kind=0 len=0 keep=1 body=");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            "status=200 reason=OK consumed=57 kind=0 len=0 keep=0 body=");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"),
            "status=200 reason=OK consumed=44 kind=3 len=0 keep=0 body=zz");
}

TEST(ForwardResponse, MalformedGives502) {
  EXPECT_EQ(response_all_splits("HTTP/1.1 2x0 OK\r\n\r\n"), "error 502");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), "error 502");
  EXPECT_EQ(response_all_splits("SSH-2.0-OpenSSH_9.2\r\n\r\n"), "error 502");
  response_head_reader reader("GET");
  auto r = reader.feed(b("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a') + "\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<http_error>(r));
  EXPECT_EQ(std::get<http_error>(r).reply, error_reply(502));
}

TEST(ForwardResponse, ConnectionNamingAFramingFieldGives502) {
  // A hop that honoured this Connection would drop the Content-Length and read the body as the
  // next response.
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"),
            "error 502");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nConnection: close, transfer-encoding\r\n\r\n"), "error 502");
  EXPECT_EQ(response_all_splits("HTTP/1.1 200 OK\r\nConnection: Host\r\nContent-Length: 0\r\n\r\n"), "error 502");
}

TEST(ForwardResponse, TransferEncodingDropsContentLength) {
  // RFC 9112 section 6.3: a non-chunked Transfer-Encoding frames the body until close; a
  // Content-Length passed on would make the client stop early and read the rest as a response.
  response_head_reader reader("GET");
  auto r = reader.feed(b("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<parsed<response_head>>(r));
  const response_head& h = std::get<parsed<response_head>>(r).value;
  EXPECT_EQ(text(build_forward_response(h, "close")),
            "HTTP/1.1 200 OK\r\nVia: 1.1 edgerelay\r\nConnection: close\r\n\r\n");
}

TEST(ForwardResponse, BuildsClientHead) {
  response_head_reader reader("GET");
  auto r =
      reader.feed(b("HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
                    "Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTransfer-Encoding: chunked\r\n"
                    "Upgrade: h2c\r\nContent-Type: text/plain\r\n\r\n"));
  ASSERT_TRUE(std::holds_alternative<parsed<response_head>>(r));
  const response_head& h = std::get<parsed<response_head>>(r).value;
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.field("server").value_or(""), "s");
  EXPECT_EQ(text(build_forward_response(h, "close")),
            "HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
            "Via: 1.1 edgerelay\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(text(build_forward_response(h, "")),
            "HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
            "Via: 1.1 edgerelay\r\n\r\n");
}

/// Tracker transcript: bytes passed through, final state, and what is left for the next message.
std::string track(const chunk_list& chunks, body_framing framing) {
  body_tracker t(framing);
  std::string body;
  std::string rest;
  std::string end = "more";
  for (const auto& c : chunks) {
    if (end != "more") {
      rest += text(c);
      continue;
    }
    const body_step s = t.feed(c);
    body += text(c.first(s.consumed));
    if (s.state == body_state::done) {
      end = "done";
      rest += text(c.subspan(s.consumed));
    } else if (s.state == body_state::error) {
      end = "error " + std::string(s.error);
    }
  }
  return end + " through=" + std::to_string(t.bytes_through()) + " body=[" + body + "] next=[" + rest + "]";
}

std::string track_all(const std::string& raw, body_framing framing) {
  const bytes input = b(raw);
  const auto chunkings = all_chunkings(input);
  const std::string whole = track(chunkings.front(), framing);
  for (const auto& chunks : chunkings) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(track(chunks, framing), whole);
  }
  return whole;
}

const body_framing chunked{body_kind::chunked, 0};

TEST(ForwardBodyTracker, ChunkedAtEverySplit) {
  EXPECT_EQ(
      track_all("5\r\nhello\r\n1A;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nGET / HTTP/1.1\r\n", chunked),
      "done through=55 body=[5\r\nhello\r\n1A;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n] "
      "next=[GET / HTTP/1.1\r\n]");
  EXPECT_EQ(track_all("0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT", chunked),
            "done through=25 body=[0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n] next=[NEXT]");
  EXPECT_EQ(track_all("3 ;a\r\nabc\r\n000\r\n\r\n", chunked),
            "done through=18 body=[3 ;a\r\nabc\r\n000\r\n\r\n] next=[]");
  EXPECT_EQ(track_all("5\r\nhel", chunked), "more through=6 body=[5\r\nhel] next=[]");
}

TEST(ForwardBodyTracker, ChunkedErrors) {
  auto err = [](const std::string& raw) {
    const std::string t = track({b(raw)}, chunked);
    return t.substr(0, t.find(" through="));
  };
  EXPECT_EQ(err("\r\n"), "error chunk size without hex digits");
  EXPECT_EQ(err("g\r\n"), "error chunk size without hex digits");
  EXPECT_EQ(err("5\nhello\r\n"), "error bad byte in chunk size line");
  EXPECT_EQ(err("5\rhello"), "error chunk size line not ended by CRLF");
  EXPECT_EQ(err("5 \r\n"), "error whitespace after chunk size not followed by an extension");
  EXPECT_EQ(err("2\r\nabc\r\n"), "error chunk data not followed by CRLF");
  EXPECT_EQ(err("2\r\nab\n"), "error chunk data not followed by CRLF");
  EXPECT_EQ(err("11111111111111111\r\n"), "error chunk size too large");
  EXPECT_EQ(err("1;a\x01\r\n"), "error control byte in chunk extension");
  EXPECT_EQ(err("1;" + std::string(5000, 'a')), "error chunk extension too long");
  EXPECT_EQ(err("0\r\nX: 1\n\r\n"), "error bare LF in trailer section");
  EXPECT_EQ(err("0\r\nX: 1\r\r\n"), "error trailer line not ended by CRLF");
  EXPECT_EQ(err("0\r\n\rx"), "error chunked body not ended by CRLF");
  EXPECT_EQ(err("0\r\n" + std::string(70000, 'a')), "error trailer section too long");
  // The largest size is accepted (and then waits for data).
  EXPECT_EQ(err("ffffffffffffffff\r\nab"), "more");
  // After an error the tracker stays failed.
  body_tracker t(chunked);
  EXPECT_EQ(t.feed(b("x")).state, body_state::error);
  EXPECT_EQ(t.feed(b("0\r\n\r\n")).state, body_state::error);
}

TEST(ForwardBodyTracker, ContentLengthAtEverySplit) {
  EXPECT_EQ(track_all("0123456789NEXT", {body_kind::content_length, 10}),
            "done through=10 body=[0123456789] next=[NEXT]");
  EXPECT_EQ(track_all("0123", {body_kind::content_length, 10}), "more through=4 body=[0123] next=[]");
}

TEST(ForwardBodyTracker, NoneAndUntilClose) {
  body_tracker none({body_kind::none, 0});
  EXPECT_TRUE(none.done());
  EXPECT_EQ(none.feed(b("GET")).consumed, 0u);
  body_tracker zero({body_kind::content_length, 0});
  EXPECT_TRUE(zero.done());
  body_tracker until({body_kind::until_close, 0});
  EXPECT_EQ(until.feed(b("abc")).consumed, 3u);
  EXPECT_FALSE(until.done());
  EXPECT_TRUE(until.eof_is_end());
  body_tracker sized({body_kind::content_length, 5});
  EXPECT_FALSE(sized.eof_is_end());
}

}  // namespace
}  // namespace edgerelay::tunnel
