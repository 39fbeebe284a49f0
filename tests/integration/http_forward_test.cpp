// Plain forward proxying (absolute-form requests), proxy auth on them, and the listener fallback,
// through a real gateway against an in-test origin server: exact bytes in, exact bytes out.
#include <gtest/gtest.h>

#include <boost/asio/write.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "config/password.hpp"
#include "tests/integration/harness.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;

/// What the origin saw of one request.
struct seen_request {
  std::size_t connection = 0;
  std::string method;
  std::string target;
  std::multimap<std::string, std::string> fields;  // lower-case names
  std::string body;
  bool has(const std::string& name) const { return fields.count(name) > 0; }
  std::string get(const std::string& name) const {
    const auto it = fields.find(name);
    return it == fields.end() ? std::string("<none>") : it->second;
  }
};

const bytes big_body = pattern(3 * 1024 * 1024 + 17, 42);

/// A small HTTP/1.1 origin: parses requests with Beast's sans-I/O parser, answers by path with
/// fixed bytes (so the tests know exactly what the gateway must pass on).
class origin {
 public:
  explicit origin(const std::string& address = "127.0.0.1")
      : server_(
            [this](tcp::socket s) {
              std::size_t index = 0;
              {
                std::lock_guard lock(mu_);
                index = connections_++;
              }
              return serve(std::move(s), index);
            },
            address) {}
  std::uint16_t port() const { return server_.port(); }
  std::string authority() const { return "127.0.0.1:" + std::to_string(port()); }
  std::size_t connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }
  std::vector<seen_request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  static std::string respond(const seen_request& r) {
    if (r.target == "/hello") {
      return r.method == "HEAD" ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                                : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    }
    if (r.target == "/echo") {
      return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
    }
    if (r.target == "/chunked") {
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    }
    if (r.target == "/big") {
      return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big_body.size()) + "\r\n\r\n" +
             std::string(big_body.begin(), big_body.end());
    }
    if (r.target == "/close") {
      return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close";
    }
    if (r.target == "/garbage") {
      return "this is not http\r\n\r\n";
    }
    if (r.target == "/interim") {
      return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    }
    return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  }

  net::awaitable<void> serve(tcp::socket s, std::size_t index) {
    std::vector<char> buf(64 * 1024);
    std::string pending;
    for (int n = 0; n < 10000; ++n) {
      http::request_parser<http::string_body> p;
      p.body_limit(64 * 1024 * 1024);
      p.eager(true);
      while (!p.is_done()) {
        error_code ec;
        std::size_t used = 0;
        if (!pending.empty()) {
          used = p.put(net::buffer(pending), ec);
          pending.erase(0, used);
          if (ec && ec != http::error::need_more) co_return;
        }
        if (p.is_done()) break;
        if (pending.empty() || used == 0) {
          auto [rec, got] = co_await s.async_read_some(net::buffer(buf), use_ec);
          if (rec) co_return;
          pending.append(buf.data(), got);
        }
      }
      seen_request r;
      r.connection = index;
      const auto& req = p.get();
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.fields.emplace(name, std::string(f.value()));
      }
      r.body = req.body();
      {
        std::lock_guard lock(mu_);
        requests_.push_back(r);
      }
      const std::string reply = respond(r);
      auto [wec, w] = co_await net::async_write(s, net::buffer(reply), use_ec);
      if (wec || r.target == "/close" || !req.keep_alive()) {
        error_code ignored;
        s.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  mutable std::mutex mu_;
  std::size_t connections_ = 0;
  std::vector<seen_request> requests_;
  loopback_server server_;  // last: stops before the state above goes
};

std::string forward_config(const std::string& listener_extra = "", const std::string& top_extra = "",
                           const std::string& to = "[\"127.0.0.0/8\"]") {
  return R"(
listeners:
  - name: test
    bind: "127.0.0.1:0"
    protocols: [http, socks5, socks4]
)" + listener_extra +
         top_extra + R"(
rules:
  - name: loopback
    action: allow
    from: ["127.0.0.0/8"]
    to: )" +
         to + R"(
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 10s, shutdown_grace: 1s}
log: {level: error, access: off}
)";
}

std::string hello_request(const origin& o, const std::string& extra = "") {
  return "GET http://" + o.authority() + "/hello HTTP/1.1\r\nHost: " + o.authority() + "\r\n" + extra + "\r\n";
}

const std::string hello_response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 edgerelay\r\n\r\nhello";

std::string text_of(const bytes& b) {
  return std::string(b.begin(), b.end());
}

TEST(HttpForward, GetIsForwardedWithViaAndWithoutHopByHopFields) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send(hello_request(o,
                       "Proxy-Connection: keep-alive\r\nConnection: X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n"
                       "Keep-Alive: 300\r\nTE: trailers\r\n"));
  EXPECT_EQ(text_of(c.read_exact(hello_response.size())), hello_response);
  const auto seen = o.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/hello");
  EXPECT_EQ(seen[0].get("host"), o.authority());
  EXPECT_EQ(seen[0].get("via"), "1.1 edgerelay");
  EXPECT_EQ(seen[0].get("x-keep"), "2");
  for (const char* gone : {"x-drop", "proxy-connection", "keep-alive", "te", "proxy-authorization"}) {
    EXPECT_FALSE(seen[0].has(gone)) << gone;
  }
}

TEST(HttpForward, KeepAliveReusesTheUpstreamAndSwitchesOrigins) {
  origin o;
  origin other;
  gateway gw(forward_config());
  client c(gw.endpoint());
  for (int i = 0; i < 5; ++i) {
    c.send(hello_request(o));
    ASSERT_EQ(text_of(c.read_exact(hello_response.size())), hello_response) << i;
  }
  EXPECT_EQ(o.connections(), 1u);
  c.send(hello_request(other));
  EXPECT_EQ(text_of(c.read_exact(hello_response.size())), hello_response);
  c.send(hello_request(o));
  EXPECT_EQ(text_of(c.read_exact(hello_response.size())), hello_response);
  EXPECT_EQ(other.connections(), 1u);
  EXPECT_EQ(o.requests().size(), 6u);
}

TEST(HttpForward, PipelinedRequestsAnswerInOrder) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send(hello_request(o) + "GET http://" + o.authority() + "/chunked HTTP/1.1\r\nHost: x\r\n\r\n" + hello_request(o));
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nVia: 1.1 edgerelay\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  EXPECT_EQ(text_of(c.read_exact(hello_response.size() + chunked.size() + hello_response.size())),
            hello_response + chunked + hello_response);
}

TEST(HttpForward, ContentLengthBodiesStreamBothWays) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("POST http://" + o.authority() + "/echo HTTP/1.1\r\nHost: " + o.authority() +
         "\r\nContent-Length: " + std::to_string(big_body.size()) + "\r\n\r\n");
  c.send(big_body);
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big_body.size()) + "\r\nVia: 1.1 edgerelay\r\n\r\n";
  EXPECT_EQ(text_of(c.read_exact(head.size())), head);
  EXPECT_TRUE(c.read_exact(big_body.size()) == big_body);
  // And a large download on the same connection.
  c.send("GET http://" + o.authority() + "/big HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(text_of(c.read_exact(head.size())), head);
  EXPECT_TRUE(c.read_exact(big_body.size()) == big_body);
}

TEST(HttpForward, ChunkedRequestBodyPassesUnchanged) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("POST http://" + o.authority() + "/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  c.send(std::string("4\r\nWiki\r\n"));
  std::this_thread::sleep_for(20ms);
  c.send(std::string("5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n"));
  const std::string body = "Wikipedia in\r\n\r\nchunks.";
  const std::string expected =
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nVia: 1.1 edgerelay\r\n\r\n" + body;
  EXPECT_EQ(text_of(c.read_exact(expected.size())), expected);
  ASSERT_EQ(o.requests().size(), 1u);
  EXPECT_EQ(o.requests()[0].get("transfer-encoding"), "chunked");
  EXPECT_EQ(o.requests()[0].body, body);
}

TEST(HttpForward, ResponseUntilCloseClosesTheClient) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("GET http://" + o.authority() + "/close HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(
      text_of(c.read_to_eof()),
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nVia: 1.1 edgerelay\r\nConnection: close\r\n\r\nuntil close");
}

TEST(HttpForward, HeadResponseHasNoBodyAndTheConnectionGoesOn) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("HEAD http://" + o.authority() + "/hello HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 edgerelay\r\n\r\n";
  EXPECT_EQ(text_of(c.read_exact(head.size())), head);
  c.send(hello_request(o));
  EXPECT_EQ(text_of(c.read_exact(hello_response.size())), hello_response);
}

TEST(HttpForward, Http10ClientGetsItsAnswerThenClose) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("GET http://" + o.authority() + "/hello HTTP/1.0\r\n\r\n");
  EXPECT_EQ(text_of(c.read_to_eof()),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 edgerelay\r\nConnection: close\r\n\r\nhello");
  ASSERT_EQ(o.requests().size(), 1u);
  EXPECT_EQ(o.requests()[0].get("via"), "1.0 edgerelay");
}

TEST(HttpForward, DeniedTargetIs403) {
  origin o;
  gateway gw(forward_config("", "", "[\"10.0.0.0/8\"]"));
  client c(gw.endpoint());
  c.send(hello_request(o));
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(403));
  EXPECT_EQ(o.connections(), 0u);
}

TEST(HttpForward, RefusedTargetIs502) {
  std::uint16_t port = 0;
  {
    origin gone;
    port = gone.port();
  }
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("GET http://127.0.0.1:" + std::to_string(port) + "/ HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(502));
}

TEST(HttpForward, InterimResponseIsPassedOnBeforeTheFinalOne) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("GET http://" + o.authority() + "/interim HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string interim = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n";
  const std::string got = text_of(c.read_some(4096));
  std::string all = got;
  while (all.find("\r\n\r\nok") == std::string::npos && all.size() < 4096) {
    const bytes more = c.read_some(4096);
    if (more.empty()) break;
    all += text_of(more);
  }
  EXPECT_EQ(all.rfind(interim, 0), 0u) << all;
  EXPECT_NE(all.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << all;
  EXPECT_EQ(all.substr(all.size() - 6), "\r\n\r\nok") << all;
}

TEST(HttpForward, MalformedUpstreamResponseIs502) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("GET http://" + o.authority() + "/garbage HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(502));
}

TEST(HttpForward, BadChunkedRequestBodyEndsTheConnection) {
  origin o;
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("POST http://" + o.authority() +
         "/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "zz\r\nnot hex\r\n0\r\n\r\n" +
         hello_request(o));
  // 400, and the request behind the bad body never runs.
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(400));
  EXPECT_EQ(o.requests().size(), 0u);
}

TEST(HttpForward, ProxyAuthentication) {
  origin o;
  const std::string hash = config::hash_password("s3cret", 1000);
  gateway gw(forward_config("    auth: password\n", "users:\n  - {name: alice, password: \"" + hash + "\"}\n"));
  {
    client c(gw.endpoint());
    c.send(hello_request(o));
    const bytes reply = c.read_to_eof();
    EXPECT_EQ(reply, tunnel::error_reply(407));
    EXPECT_NE(text_of(reply).find("Proxy-Authenticate: Basic realm=\"edgerelay\"\r\n"), std::string::npos);
  }
  {
    client c(gw.endpoint());
    c.send(hello_request(o, "Proxy-Authorization: " + tunnel::encode_basic_auth("alice", "wrong") + "\r\n"));
    EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(407));
  }
  client c(gw.endpoint());
  const std::string creds = "Proxy-Authorization: " + tunnel::encode_basic_auth("alice", "s3cret") + "\r\n";
  c.send(hello_request(o, creds));
  EXPECT_EQ(text_of(c.read_exact(hello_response.size())), hello_response);
  // Each request carries its own credentials; one without them is refused.
  c.send(hello_request(o));
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(407));
  ASSERT_EQ(o.requests().size(), 1u);
  EXPECT_FALSE(o.requests()[0].has("proxy-authorization"));
}

TEST(HttpFallback, RequestToTheGatewayIs404ByDefault) {
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send(std::string("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"));
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(404));
}

TEST(HttpFallback, RequestToTheGatewayGoesToTheFallbackBackend) {
  origin web;
  gateway gw(
      forward_config("    fallback: web\n",
                     "backends:\n  - {name: web, host: 127.0.0.1, portbase: " + std::to_string(web.port() - 1) + "}\n",
                     "[\"backend:web\"]"));
  client c(gw.endpoint());
  c.send(std::string("GET /hello HTTP/1.1\r\nHost: www.example\r\n\r\n"));
  // The backend's bytes unchanged (an opaque relay after the first head).
  EXPECT_EQ(text_of(c.read_exact(38 + 5)), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  c.send(std::string("GET /chunked HTTP/1.1\r\nHost: www.example\r\n\r\n"));
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  EXPECT_EQ(text_of(c.read_exact(chunked.size())), chunked);
  const auto seen = web.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target, "/hello");
  EXPECT_EQ(seen[0].get("host"), "www.example");
  EXPECT_EQ(seen[0].get("via"), "1.1 edgerelay");
}

TEST(HttpFallback, FallbackBackendDeniedIs403) {
  origin web;
  gateway gw(
      forward_config("    fallback: web\n",
                     "backends:\n  - {name: web, host: 127.0.0.1, portbase: " + std::to_string(web.port() - 1) + "}\n",
                     "[\"10.0.0.0/8\"]"));
  client c(gw.endpoint());
  c.send(std::string("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"));
  EXPECT_EQ(c.read_to_eof(), tunnel::error_reply(403));
}

TEST(HttpForward, ConnectStillWorksNextToForwarding) {
  backend echo(backend_mode::echo);
  gateway gw(forward_config());
  client c(gw.endpoint());
  c.send("CONNECT 127.0.0.1:" + std::to_string(echo.port()) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  const bytes established = tunnel::connect_established_reply();
  EXPECT_EQ(c.read_exact(established.size()), established);
  c.send(std::string("ping"));
  EXPECT_EQ(to_text(c.read_exact(4)), "ping");
}

}  // namespace
}  // namespace edgerelay::testing
