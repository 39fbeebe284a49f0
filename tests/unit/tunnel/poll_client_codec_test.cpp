// The polling client's codec (tunnel/poll_client_codec.hpp): the requests it writes are the ones
// the door's parser accepts, and every answer reads the same at every split offset.
#include "tunnel/poll_client_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "tests/unit/tunnel/tunnel_split.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::tunnel {
namespace {

using tunnel_test::all_chunkings;
using tunnel_test::b;
using tunnel_test::bytes;
using tunnel_test::describe;

const std::string id = "0123456789abcdef0123456789abcdef";

poll_client_target origin() {
  poll_client_target t;
  t.authority = "gw.example.com:8080";
  t.authorization = "Basic YWxpY2U6czNjcmV0";
  return t;
}

/// What the door makes of a request the client wrote.
std::variant<poll_request, poll_refusal> door_reads(const std::string& text) {
  request_head_reader reader;
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  const head_result r = reader.feed(std::span(p, text.size()));
  const auto* head = std::get_if<parsed<request_head>>(&r);
  if (head == nullptr) {
    ADD_FAILURE() << "the door's reader did not take: " << text;
    return poll_refusal{};
  }
  return parse_poll_request(head->value, "/edgerelay");
}

TEST(PollClientCodec, RequestsAreWhatTheDoorAccepts) {
  const auto open = door_reads(poll_open_request(origin(), "db.example.com:5432"));
  ASSERT_TRUE(std::holds_alternative<poll_request>(open));
  EXPECT_EQ(std::get<poll_request>(open).op, poll_op::open);
  EXPECT_EQ(std::get<poll_request>(open).target, "db.example.com:5432");
  EXPECT_EQ(std::get<poll_request>(open).authorization, "Basic YWxpY2U6czNjcmV0");

  const auto v6 = door_reads(poll_open_request(origin(), "[2001:db8::7]:22"));
  ASSERT_TRUE(std::holds_alternative<poll_request>(v6));
  EXPECT_EQ(std::get<poll_request>(v6).target, "[2001:db8::7]:22");

  const auto up = door_reads(poll_up_head(origin(), id, 7, 1234, poll_control::fin));
  ASSERT_TRUE(std::holds_alternative<poll_request>(up));
  EXPECT_EQ(std::get<poll_request>(up).op, poll_op::up);
  EXPECT_EQ(std::get<poll_request>(up).seq, 7U);
  EXPECT_EQ(std::get<poll_request>(up).body_size, 1234U);
  EXPECT_EQ(std::get<poll_request>(up).control, poll_control::fin);

  const auto brk = door_reads(poll_up_head(origin(), id, 0, 0, poll_control::brk));
  ASSERT_TRUE(std::holds_alternative<poll_request>(brk));
  EXPECT_EQ(std::get<poll_request>(brk).control, poll_control::brk);

  const auto down = door_reads(poll_down_request(origin(), id, 42));
  ASSERT_TRUE(std::holds_alternative<poll_request>(down));
  EXPECT_EQ(std::get<poll_request>(down).op, poll_op::down);
  EXPECT_EQ(std::get<poll_request>(down).seq, 42U);

  const auto close = door_reads(poll_close_request(origin(), id));
  ASSERT_TRUE(std::holds_alternative<poll_request>(close));
  EXPECT_EQ(std::get<poll_request>(close).op, poll_op::close);
}

TEST(PollClientCodec, AbsoluteFormCarriesProxyAuthorization) {
  poll_client_target t = origin();
  t.absolute_form = true;
  t.proxy_authorization = "Basic Ym9iOmJvYnB3";
  const std::string text = poll_down_request(t, id, 3);
  EXPECT_TRUE(text.starts_with("GET http://gw.example.com:8080/edgerelay/poll/" + id + "/down?seq=3 HTTP/1.1\r\n"))
      << text;
  EXPECT_NE(text.find("\r\nProxy-Authorization: Basic Ym9iOmJvYnB3\r\n"), std::string::npos);
  EXPECT_NE(text.find("\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n"), std::string::npos);
  const auto parsed_request = door_reads(text);
  ASSERT_TRUE(std::holds_alternative<poll_request>(parsed_request));
  // Direct to the gateway, no proxy credentials go out.
  poll_client_target direct = origin();
  direct.proxy_authorization = "Basic Ym9iOmJvYnB3";
  EXPECT_EQ(poll_down_request(direct, id, 3).find("Proxy-Authorization"), std::string::npos);
}

TEST(PollClientCodec, QueryEncoding) {
  EXPECT_EQ(poll_query_encode("backend:sql"), "backend:sql");
  EXPECT_EQ(poll_query_encode("[::1]:22"), "%5B::1%5D:22");
  EXPECT_EQ(poll_query_encode("a b&c"), "a%20b%26c");
}

/// Feeds `input` in `chunks`; returns the state and the answer, and what was left over.
struct read_out {
  poll_answer_reader::state now = poll_answer_reader::state::need_more;
  poll_answer answer;
  std::size_t leftover = 0;
  std::string what;
};

read_out read_chunks(const tunnel_test::chunk_list& chunks) {
  poll_answer_reader reader;
  read_out out;
  for (const auto& c : chunks) {
    const auto fed = reader.feed(c);
    out.now = fed.now;
    if (fed.now != poll_answer_reader::state::need_more) {
      out.leftover += c.size() - fed.consumed;
    } else {
      EXPECT_EQ(fed.consumed, c.size());
    }
  }
  out.answer = reader.answer();
  out.what = std::string(reader.what());
  return out;
}

read_out read_at_every_split(const bytes& input) {
  const read_out whole = read_chunks({input});
  for (const auto& chunks : all_chunkings(input)) {
    SCOPED_TRACE(describe(chunks));
    const read_out r = read_chunks(chunks);
    EXPECT_EQ(r.now, whole.now);
    EXPECT_EQ(r.leftover, whole.leftover);
    EXPECT_EQ(r.answer.status, whole.answer.status);
    EXPECT_EQ(r.answer.body, whole.answer.body);
    EXPECT_EQ(r.answer.seq, whole.answer.seq);
    EXPECT_EQ(r.answer.ack, whole.answer.ack);
    EXPECT_EQ(r.answer.control, whole.answer.control);
    EXPECT_EQ(r.answer.keep_alive, whole.answer.keep_alive);
  }
  return whole;
}

bytes door_answer(unsigned status, std::span<const poll_header> h, std::string_view body, bool keep_alive) {
  return b(poll_response(status, h, body, keep_alive));
}

TEST(PollClientCodec, ReadsTheDoorsAnswersAtEverySplit) {
  const poll_header down[] = {{"Edgerelay-Seq", "5"}, {"Edgerelay-Control", "fin"}};
  const read_out d = read_at_every_split(door_answer(200, down, "last bytes", true));
  EXPECT_EQ(d.now, poll_answer_reader::state::done);
  EXPECT_EQ(d.answer.status, 200U);
  EXPECT_EQ(tunnel_test::text(d.answer.body), "last bytes");
  EXPECT_EQ(d.answer.seq, 5U);
  EXPECT_EQ(d.answer.control, poll_control::fin);
  EXPECT_TRUE(d.answer.keep_alive);

  const poll_header ack[] = {{"Edgerelay-Ack", "9"}};
  const read_out u = read_at_every_split(door_answer(204, ack, "", true));
  EXPECT_EQ(u.now, poll_answer_reader::state::done);
  EXPECT_EQ(u.answer.ack, 9U);
  EXPECT_TRUE(u.answer.body.empty());

  const read_out refused = read_at_every_split(b(poll_error_response(403, "denied by rule", "denied")));
  EXPECT_EQ(refused.answer.status, 403U);
  EXPECT_EQ(refused.answer.result, "denied");
  EXPECT_FALSE(refused.answer.keep_alive);
}

TEST(PollClientCodec, TakesNothingBehindTheAnswer) {
  const poll_header down[] = {{"Edgerelay-Seq", "0"}};
  const bytes input = tunnel_test::cat({door_answer(200, down, "abc", true), b("HTTP/1.1 200 OK\r\n")});
  const read_out r = read_at_every_split(input);
  EXPECT_EQ(r.now, poll_answer_reader::state::done);
  EXPECT_EQ(r.leftover, std::string_view("HTTP/1.1 200 OK\r\n").size());
  EXPECT_EQ(tunnel_test::text(r.answer.body), "abc");
}

TEST(PollClientCodec, ProxyAnswers) {
  // Squid's 407 and an HTTP/1.0 answer that keeps nothing alive.
  const read_out auth =
      read_at_every_split(b("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n"
                            "Content-Length: 4\r\n\r\ndeny"));
  EXPECT_EQ(auth.answer.status, 407U);
  EXPECT_EQ(auth.answer.proxy_authenticate, "Basic realm=\"corp\"");
  EXPECT_TRUE(auth.answer.result.empty());
  const read_out old = read_at_every_split(b("HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(old.now, poll_answer_reader::state::done);
  EXPECT_FALSE(old.answer.keep_alive);
}

TEST(PollClientCodec, MalformedAnswers) {
  for (const std::string text :
       {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nbad\r\n\r\n"}) {
    SCOPED_TRACE(text);
    const read_out r = read_at_every_split(b(text));
    EXPECT_EQ(r.now, poll_answer_reader::state::malformed);
    EXPECT_FALSE(r.what.empty());
  }
  poll_answer_reader small(poll_max_body, 64);
  const bytes big = b("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a') + "\r\n\r\n");
  EXPECT_EQ(small.feed(big).now, poll_answer_reader::state::malformed);
}

TEST(PollClientCodec, Sequence) {
  poll_sequence s;
  poll_answer a;
  a.status = 204;
  a.ack = 1;
  EXPECT_FALSE(s.up_accepted(a));  // an ack for another seq is not ours
  a.ack = 0;
  EXPECT_TRUE(s.up_accepted(a));
  EXPECT_EQ(s.up(), 1U);
  a.status = 503;
  a.ack.reset();
  EXPECT_FALSE(s.up_accepted(a));
  EXPECT_EQ(s.up(), 1U);

  poll_answer d;
  d.status = 200;
  d.seq = 0;
  EXPECT_TRUE(s.down_answered(d));  // empty: the hold ran out, ask for 0 again
  EXPECT_EQ(s.down(), 0U);
  d.body = b("x");
  EXPECT_TRUE(s.down_answered(d));
  EXPECT_EQ(s.down(), 1U);
  EXPECT_FALSE(s.down_answered(d));  // seq 0 again: not the chunk asked for
  d.seq = 1;
  d.body.clear();
  d.control = poll_control::fin;
  EXPECT_TRUE(s.down_answered(d));
  EXPECT_EQ(s.down(), 2U);
}

}  // namespace
}  // namespace edgerelay::tunnel
