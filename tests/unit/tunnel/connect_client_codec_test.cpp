// Unit tests of the HTTP CONNECT client codec: the request it builds and the response heads it
// reads, fed whole, at every cut, byte by byte and in exact reads.
#include <gtest/gtest.h>

#include <string>

#include "tests/unit/tunnel/tunnel_split.hpp"
#include "tunnel/connect_client_codec.hpp"

namespace {

namespace tunnel = edgerelay::tunnel;
using edgerelay::tunnel_test::all_chunkings;
using edgerelay::tunnel_test::b;
using edgerelay::tunnel_test::bytes;
using edgerelay::tunnel_test::describe;
using edgerelay::tunnel_test::text;

std::string outcome(const tunnel::connect_result& r) {
  if (const auto* e = std::get_if<tunnel::connect_step::established>(&r)) {
    return "established " + std::to_string(e->response.status);
  }
  if (const auto* f = std::get_if<tunnel::connect_step::refused>(&r)) {
    return "refused " + std::to_string(f->response.status) + " " + f->response.reason +
           (f->response.proxy_authenticate ? " challenge=" + *f->response.proxy_authenticate : "");
  }
  if (const auto* m = std::get_if<tunnel::connect_step::malformed>(&r)) {
    return "malformed " + std::string(m->what);
  }
  return "need_more";
}

/// The outcome and leftover of one chunking; the first decided result wins.
std::pair<std::string, std::string> drive(const edgerelay::tunnel_test::chunk_list& chunks) {
  tunnel::connect_response_reader reader(256);
  std::string first = "need_more";
  for (const auto c : chunks) {
    const std::string o = outcome(reader.feed(c));
    if (first == "need_more") first = o;
  }
  return {first, text(reader.leftover())};
}

std::pair<std::string, std::string> expect_same(const bytes& in) {
  const auto whole = drive({in});
  for (const auto& chunks : all_chunkings(in)) {
    SCOPED_TRACE(describe(chunks));
    EXPECT_EQ(drive(chunks), whole);
  }
  return whole;
}

/// Exact reads, as the hop does: the count of bytes taken.
std::size_t exact(const bytes& in) {
  tunnel::connect_response_reader reader(256);
  std::size_t taken = 0;
  while (reader.wanted() > 0 && taken < in.size()) {
    const std::size_t n = std::min(reader.wanted(), in.size() - taken);
    (void)reader.feed(std::span<const std::uint8_t>(in).subspan(taken, n));
    taken += n;
  }
  return taken;
}

TEST(ConnectClient, Request) {
  EXPECT_EQ(text(tunnel::connect_request("db.internal:5002", "", "")),
            "CONNECT db.internal:5002 HTTP/1.1\r\nHost: db.internal:5002\r\n\r\n");
  EXPECT_EQ(text(tunnel::connect_request("[::1]:443", "alice", "pa:ss")),
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic YWxpY2U6cGE6c3M=\r\n\r\n");
  EXPECT_TRUE(tunnel::connect_request("a:1\r\nX: y", "", "").empty());
  EXPECT_TRUE(tunnel::connect_request("a:1", "us:er", "p").empty());
  EXPECT_TRUE(tunnel::connect_request("a:1", "u", "p\n").empty());
  EXPECT_TRUE(tunnel::connect_request("", "", "").empty());
}

TEST(ConnectClient, EstablishedKeepsTunnelBytes) {
  const bytes in = b("HTTP/1.1 200 Connection established\r\nVia: squid\r\n\r\nSSH-2.0");
  EXPECT_EQ(expect_same(in), std::make_pair(std::string("established 200"), std::string("SSH-2.0")));
  EXPECT_EQ(exact(in), in.size() - 7);
  EXPECT_EQ(expect_same(b("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")).first, "established 200");
}

TEST(ConnectClient, RefusalsAndChallenge) {
  EXPECT_EQ(expect_same(b("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
                          "realm=\"corp\"\r\nContent-Length: 5\r\n\r\nhello"))
                .first,
            "refused 407 Proxy Authentication Required challenge=Basic realm=\"corp\"");
  EXPECT_EQ(expect_same(b("HTTP/1.1 403 Forbidden\r\n\r\n")).first, "refused 403 Forbidden");
  EXPECT_EQ(expect_same(b("HTTP/1.1 503 Service Unavailable\r\n\r\n")).first, "refused 503 Service Unavailable");
}

TEST(ConnectClient, Malformed) {
  EXPECT_EQ(expect_same(b("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")).first,
            "malformed 2xx response to CONNECT declares a body");
  EXPECT_EQ(expect_same(b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")).first,
            "malformed 2xx response to CONNECT declares a body");
  EXPECT_EQ(expect_same(b("SSH-2.0-OpenSSH\r\n\r\n")).first, "malformed malformed response head");
  EXPECT_EQ(expect_same(b("HTTP/2.0 200 OK\r\n\r\n")).first, "malformed malformed response head");
  EXPECT_EQ(expect_same(bytes(300, 'A')).first, "malformed response head too large");
  EXPECT_EQ(expect_same(b("HTTP/1.1 200 OK\r\n")).first, "need_more");
}

TEST(ConnectClient, WantedNeverPassesTheHead) {
  tunnel::connect_response_reader reader;
  EXPECT_EQ(reader.wanted(), 4U);
  (void)reader.feed(b("HTTP/1.1 200 OK\r"));
  EXPECT_EQ(reader.wanted(), 3U);
  (void)reader.feed(b("\n"));
  EXPECT_EQ(reader.wanted(), 2U);
  (void)reader.feed(b("\r"));
  EXPECT_EQ(reader.wanted(), 1U);
  EXPECT_EQ(outcome(reader.feed(b("\n"))), "established 200");
  EXPECT_EQ(reader.wanted(), 0U);
}

}  // namespace
